/**
 * Reading a Xet-backed file the way huggingface_hub does when the Hub's answer carries `X-Xet-Hash`: a read token
 * from the `xet-auth` link, the reconstruction (terms) from the CAS, then the xorb byte ranges, decompressed and
 * joined in term order. @huggingface/hub 2.17.5 implements this in its XetBlob (exported for its own tests as
 * `__internal_XetBlob`); it is used through this one file, so a change of that name touches nothing else.
 * A slice from byte `from` asks the CAS for that range only, which is how an interrupted download resumes.
 */
import { __internal_XetBlob as XetBlob, type FileDownloadInfoOutput } from "@huggingface/hub";
import { isTrueEnv } from "./hub-endpoint.js";

/** Xet, unless `HF_HUB_DISABLE_XET` says otherwise (huggingface_hub's switch). */
export function xetEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return !isTrueEnv(env.HF_HUB_DISABLE_XET);
}

/** The opener downloadBlob takes for a Xet file, or undefined when the file is not Xet-backed or Xet is off. */
export function xetOpener(info: FileDownloadInfoOutput, params: { token?: string; fetch: typeof fetch }): ((from: number) => ReadableStream<Uint8Array>) | undefined {
  const xet = info.xet;
  if (!xet || !xetEnabled()) return undefined;
  const whole = new XetBlob({
    fetch: params.fetch,
    hash: xet.hash,
    refreshUrl: xet.refreshUrl.href,
    reconstructionUrl: xet.reconstructionUrl.href,
    size: info.size,
    ...(params.token ? { accessToken: params.token } : {}),
    // Bounded memory: xorb ranges are fetched one at a time and streamed to disk.
    parallelDownloads: false,
  });
  return (from) => (from > 0 ? whole.slice(from) : whole).stream() as ReadableStream<Uint8Array>;
}
