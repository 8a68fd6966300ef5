/**
 * The README.md pushed with an abliterated checkpoint. A card that exists (often the base model's, carried over
 * by apply) is kept and extended: our front-matter keys are merged in and our section sits between markers, so
 * pushing again replaces that section instead of stacking copies. Without a card, one is generated.
 * Front matter: base_model, tags (with `abliterated`), library_name: transformers, and the base model's license.
 * Section: the surgery's parameters and the verification summary from abliteration.json.
 */
import type { Provenance } from "../provenance/provenance.js";
import { joinFrontMatter, readTopLevel, setTopLevel, splitFrontMatter } from "./front-matter.js";

export const CARD_BEGIN = "<!-- abliterate:begin -->";
export const CARD_END = "<!-- abliterate:end -->";

export interface BaseLicense {
  license: string;
  /** For `license: other`: the name and link the Hub shows. */
  licenseName?: string;
  licenseLink?: string;
}

export interface ModelCardParams {
  /** The repo being pushed to. */
  repo: string;
  /** abliteration.json of the folder, when it has one. */
  provenance?: Provenance;
  /** README.md already in the folder. */
  existing?: string;
  /** License of the base model, when known; used only when the card has none. */
  baseLicense?: BaseLicense;
  /** Hub endpoint, for links. */
  endpoint: string;
}

/** The license keys of a card's front matter, when it has a license. */
/** The layer profile in one line: the embedding's α and each component's range, where it peaks, and how many layers it edits. */
function describeAlphaProfile(alphas: NonNullable<Provenance["alphas"]>): string {
  const component = (name: string, values: number[]) => {
    const edited = values.filter((v) => v !== 0).length;
    if (edited === 0) return `${name} off`;
    const peak = values.reduce((best, v, i) => (v > values[best] ? i : best), 0);
    return `${name} ${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)} (peak at layer ${peak}, ${edited} of ${values.length} layers)`;
  };
  return `embedding ${alphas.embed.toFixed(2)}; ${component("attention", alphas.attn)}; ${component("MLP", alphas.mlp)}`;
}

export function licenseOfCard(markdown: string | undefined): BaseLicense | undefined {
  if (markdown === undefined) return undefined;
  const { yaml } = splitFrontMatter(markdown);
  const license = readTopLevel(yaml, "license");
  if (typeof license !== "string" || license === "") return undefined;
  const licenseName = readTopLevel(yaml, "license_name");
  const licenseLink = readTopLevel(yaml, "license_link");
  return {
    license,
    ...(typeof licenseName === "string" ? { licenseName } : {}),
    ...(typeof licenseLink === "string" ? { licenseLink } : {}),
  };
}

function yesNo(value: boolean | undefined): string {
  return value === undefined ? "?" : value ? "yes" : "no";
}

function cell(value: string): string {
  return value.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

function row(name: string, value: string): string {
  return `| ${cell(name)} | ${cell(value)} |`;
}

/** The marked section: what was done and what verification found. */
export function abliterationSection(provenance: Provenance, endpoint: string): string {
  const p = provenance;
  const source = p.source ?? {};
  const base = source.repo ? `[${source.repo}](${endpoint}/${source.repo})${source.commit ? ` @ \`${source.commit.slice(0, 12)}\`` : source.revision ? ` @ \`${source.revision}\`` : ""}` : `local folder \`${source.folder ?? "?"}\``;
  const direction = p.direction
    ? `\`${p.direction.file}\` (${p.direction.kind}${p.direction.direction_layer !== undefined ? `, layer ${p.direction.direction_layer}` : ""}, rank ${p.direction.rank}; sha256 \`${p.direction.sha256.slice(0, 16)}…\`)`
    : "?";
  const projection = p.projection
    ? `${p.projection} (r made orthogonal to the mean harmless activation${p.projection === "biprojected" ? " of each target layer" : p.direction?.harmless_row !== undefined ? ` at row ${p.direction.harmless_row}` : ""})`
    : undefined;
  const v = p.verification;
  const lines = [
    CARD_BEGIN,
    "## Abliteration",
    "",
    `This checkpoint is ${base} with a direction projected out of every weight that writes to the residual stream ` +
      "(W ← W − α r rᵀW), made with [abliterate](https://www.npmjs.com/package/abliterate)" +
      `${p.tool?.version ? ` ${p.tool.version}` : ""}. Only the edited tensors differ from the base; every other byte is identical.`,
    "",
    "| Parameter | Value |",
    "|---|---|",
    row("Base model", base),
    row("Direction", direction),
    row("Scale α", String(p.scale)),
    ...(p.alphas ? [row("α profile", describeAlphaProfile(p.alphas))] : []),
    row("Layers", p.layers ?? "all"),
    row("Targets", (p.targets ?? []).join(", ")),
    ...(p.include?.length ? [row("Include", p.include.join(", "))] : []),
    ...(p.exclude?.length ? [row("Exclude", p.exclude.join(", "))] : []),
    ...(p.per_layer ? [row("Per-layer directions", "yes: each writer uses the direction of the stream it writes into")] : []),
    ...(projection ? [row("Projection", projection)] : []),
    row("Norm-preserving", yesNo(p.norm_preserving)),
    row("Tied embeddings", yesNo(p.tied_embeddings)),
    row("Model family", p.model ? `${p.model.family} (${p.model.model_type}, d_model ${p.model.hidden_size}, ${p.model.num_layers} layers)` : "?"),
    row("Tensors changed", String(p.tensors_changed?.length ?? "?")),
    "",
    ...(p.notes?.length ? [...p.notes.map((note) => `- ${note}`), ""] : []),
    "### Verification",
    "",
    v
      ? `Every edited tensor was recomputed against an fp64 reference and every untouched tensor compared byte for byte: **${v.passed ? "passed" : "FAILED"}**.`
      : "No verification summary was recorded.",
    "",
    ...(v
      ? [
          "| Check | Result |",
          "|---|---|",
          row("Tensors checked", String(v.tensors_checked)),
          row("Elements checked", String(v.elements_checked)),
          row("Elements off by more than 1 ulp", String(v.mismatches)),
          row("Largest error (ulp)", String(v.max_ulp_error)),
          row("Largest remaining component along r", String(v.max_ablation_residual)),
          row("Untouched tensors byte-identical", yesNo(v.untouched_identical)),
          "",
        ]
      : []),
    "The full record is in `abliteration.json`.",
    CARD_END,
  ];
  return lines.join("\n");
}

function mergeFrontMatter(yaml: string | undefined, params: ModelCardParams): string {
  let result = yaml ?? "";
  const baseRepo = params.provenance?.source?.repo;
  if (params.provenance) {
    if (baseRepo) result = setTopLevel(result, "base_model", baseRepo);
    const tags = readTopLevel(result, "tags");
    const list = Array.isArray(tags) ? tags : typeof tags === "string" ? [tags] : [];
    if (!list.includes("abliterated")) result = setTopLevel(result, "tags", [...list, "abliterated"]);
  }
  if (readTopLevel(result, "library_name") === undefined) result = setTopLevel(result, "library_name", "transformers");
  if (readTopLevel(result, "license") === undefined && params.baseLicense) {
    result = setTopLevel(result, "license", params.baseLicense.license);
    if (params.baseLicense.licenseName) result = setTopLevel(result, "license_name", params.baseLicense.licenseName);
    if (params.baseLicense.licenseLink) result = setTopLevel(result, "license_link", params.baseLicense.licenseLink);
  }
  return result;
}

export function buildModelCard(params: ModelCardParams): string {
  const { yaml, body } = splitFrontMatter(params.existing ?? "");
  const frontMatter = mergeFrontMatter(yaml, params);
  if (!params.provenance) {
    // Nothing of ours to describe: an existing card stays exactly as it is.
    if (params.existing !== undefined) return params.existing;
    return joinFrontMatter(frontMatter, `\n# ${params.repo.split("/").pop()}\n`);
  }
  const section = abliterationSection(params.provenance, params.endpoint);
  let newBody: string;
  const begin = body.indexOf(CARD_BEGIN);
  const end = body.indexOf(CARD_END);
  if (begin !== -1 && end > begin) {
    newBody = body.slice(0, begin) + section + body.slice(end + CARD_END.length);
  } else if (params.existing !== undefined && body.trim() !== "") {
    // Our section first, the carried-over card below it, under a heading that says whose it is.
    const baseRepo = params.provenance.source?.repo;
    newBody = `\n${section}\n\n${baseRepo ? `## Original model card (${baseRepo})\n\n` : ""}${body.replace(/^\n+/, "")}`;
  } else {
    newBody = `\n# ${params.repo.split("/").pop()}\n\n${section}\n`;
  }
  return joinFrontMatter(frontMatter, newBody);
}
