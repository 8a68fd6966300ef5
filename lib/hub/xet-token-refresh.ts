/**
 * Xet CAS tokens are short-lived and a CAS answers 401 once one expires (or is revoked) mid-upload. The pinned
 * @huggingface/hub refreshes a token only ahead of its announced expiry and fails the whole upload on a 401, so
 * HubHttp does what xet-core does: it learns, from the answers that hand tokens out (the LFS batch's xet
 * actions, the xet-read/write-token routes), which refresh route belongs to which CAS; on a 401 from a CAS it
 * asks that route for a fresh token once and sends the request again with it, and from then on replaces the
 * stale token in every request the library sends with it.
 */
import { displayUrl } from "./hub-http.js";

interface CasGrant {
  refreshUrl: string;
  /** The Hub credential the refresh route needs (the library sends the Hub token there). */
  authorization?: string;
  token: string;
}

const BATCH = /\/info\/lfs\/objects\/batch$/;
const TOKEN_ROUTE = /\/xet-(read|write)-token\//;

function bearer(headers: Headers): string | undefined {
  return /^Bearer\s+(\S+)$/i.exec(headers.get("authorization") ?? "")?.[1];
}

export class XetTokenRefresher {
  /** By CAS origin + path prefix (the casUrl). */
  private readonly grants = new Map<string, CasGrant>();
  /** Stale token → its replacement. */
  private readonly replaced = new Map<string, string>();

  constructor(private readonly rawFetch: (url: string, init: RequestInit) => Promise<Response>) {}

  private grantFor(url: string): { casUrl: string; grant: CasGrant } | undefined {
    for (const [casUrl, grant] of this.grants) if (url.startsWith(`${casUrl}/`)) return { casUrl, grant };
    return undefined;
  }

  /** Whether this request goes to a CAS we know. */
  isCas(url: string): boolean {
    return this.grantFor(url) !== undefined;
  }

  /** The request's headers with a superseded CAS token swapped for the current one. */
  prepare(url: string, init: RequestInit): RequestInit {
    if (!this.isCas(url)) return init;
    const headers = new Headers(init.headers);
    const token = bearer(headers);
    const current = token ? this.replaced.get(token) : undefined;
    if (!current) return init;
    headers.set("Authorization", `Bearer ${current}`);
    return { ...init, headers };
  }

  /** Learns grants from answers that hand out CAS tokens. Reads a clone, never the caller's body. */
  async observe(url: string, init: RequestInit, response: Response): Promise<void> {
    if (!response.ok) return;
    const path = displayUrl(url);
    const authorization = new Headers(init.headers).get("authorization") ?? undefined;
    try {
      if (BATCH.test(path)) {
        const body = (await response.clone().json()) as { transfer?: string; objects?: { actions?: { upload?: { href?: string; header?: Record<string, string> } } }[] };
        if (body.transfer !== "xet") return;
        for (const object of body.objects ?? []) {
          const upload = object.actions?.upload;
          const casUrl = upload?.header?.["X-Xet-Cas-Url"];
          const token = upload?.header?.["X-Xet-Access-Token"];
          if (upload?.href && casUrl && token) this.grants.set(casUrl.replace(/\/+$/, ""), { refreshUrl: upload.href, authorization, token });
        }
      } else if (TOKEN_ROUTE.test(path)) {
        const body = (await response.clone().json()) as { casUrl?: string; accessToken?: string };
        if (body.casUrl && body.accessToken) {
          const casUrl = body.casUrl.replace(/\/+$/, "");
          const previous = this.grants.get(casUrl);
          if (previous && previous.token !== body.accessToken) this.replaced.set(previous.token, body.accessToken);
          this.grants.set(casUrl, { refreshUrl: url, authorization, token: body.accessToken });
        }
      }
    } catch {
      // Not JSON we understand: nothing to learn, and the caller reads its own copy.
    }
  }

  /**
   * After a 401 from a CAS: a fresh token from the refresh route, remembered as the replacement of the one the
   * request carried; undefined when there is nothing to refresh or the refresh itself fails.
   */
  async refresh(url: string, init: RequestInit): Promise<RequestInit | undefined> {
    const found = this.grantFor(url);
    if (!found) return undefined;
    const { casUrl, grant } = found;
    const stale = bearer(new Headers(init.headers));
    const response = await this.rawFetch(grant.refreshUrl, { headers: grant.authorization ? { Authorization: grant.authorization } : {} }).catch(() => undefined);
    if (!response?.ok) {
      await response?.body?.cancel().catch(() => undefined);
      return undefined;
    }
    const body = (await response.json().catch(() => ({}))) as { accessToken?: string; casUrl?: string };
    if (!body.accessToken) return undefined;
    if (stale && stale !== body.accessToken) this.replaced.set(stale, body.accessToken);
    if (grant.token !== body.accessToken) this.replaced.set(grant.token, body.accessToken);
    this.grants.set(casUrl, { ...grant, token: body.accessToken });
    const headers = new Headers(init.headers);
    headers.set("Authorization", `Bearer ${body.accessToken}`);
    return { ...init, headers };
  }
}
