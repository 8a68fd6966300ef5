/**
 * Line-level reading and editing of a model card's YAML front matter. Cards in the wild carry YAML this tool
 * has no business re-serializing (model-index, widget examples, …), so edits touch only the top-level keys we
 * own and leave every other line byte for byte as it was.
 */

export interface SplitCard {
  /** The YAML between the `---` fences, or undefined when the card has none. */
  yaml: string | undefined;
  body: string;
}

export function splitFrontMatter(markdown: string): SplitCard {
  const text = markdown.replace(/^\uFEFF/, "");
  const match = /^---[ \t]*\r?\n([\s\S]*?)\r?\n?---[ \t]*(?:\r?\n|$)/.exec(text);
  if (!match) return { yaml: undefined, body: text };
  return { yaml: match[1].replace(/\r\n/g, "\n"), body: text.slice(match[0].length) };
}

export function joinFrontMatter(yaml: string, body: string): string {
  return `---\n${yaml.replace(/\n+$/, "")}\n---\n${body.startsWith("\n") ? body : `\n${body}`}`;
}

/** Line range [start, end) of a top-level key's block: its line plus indented or `- ` continuation lines. */
function keyBlock(lines: string[], key: string): { start: number; end: number } | undefined {
  const start = lines.findIndex((line) => line.startsWith(`${key}:`) && (line.length === key.length + 1 || /\s/.test(line[key.length + 1])));
  if (start === -1) return undefined;
  let end = start + 1;
  while (end < lines.length && (/^\s+\S/.test(lines[end]) || lines[end].startsWith("- ") || lines[end] === "-")) end += 1;
  return { start, end };
}

function unquote(raw: string): string {
  const text = raw.trim();
  if (text.startsWith('"') && text.endsWith('"') && text.length >= 2) {
    try {
      return JSON.parse(text) as string;
    } catch {
      return text.slice(1, -1);
    }
  }
  if (text.startsWith("'") && text.endsWith("'") && text.length >= 2) return text.slice(1, -1).replace(/''/g, "'");
  return text.replace(/\s+#.*$/, "");
}

/** A top-level scalar or list of scalars; undefined when absent or of another shape. */
export function readTopLevel(yaml: string | undefined, key: string): string | string[] | undefined {
  if (yaml === undefined) return undefined;
  const lines = yaml.split("\n");
  const block = keyBlock(lines, key);
  if (!block) return undefined;
  const inline = lines[block.start].slice(key.length + 1).trim();
  if (inline.startsWith("[") && inline.endsWith("]")) {
    return inline.slice(1, -1).split(",").map(unquote).filter((item) => item !== "");
  }
  if (inline !== "" && !inline.startsWith("#")) return unquote(inline);
  const items = lines.slice(block.start + 1, block.end).map((line) => line.trim());
  if (items.length > 0 && items.every((line) => line.startsWith("- ") || line === "-")) return items.map((line) => unquote(line.slice(1)));
  return undefined;
}

/** A YAML scalar that reads back as exactly `value`: plain when unambiguous, else double-quoted. */
export function yamlScalar(value: string): string {
  const plain = /^[A-Za-z0-9_][A-Za-z0-9_./+-]*$/.test(value) && !/^(true|false|null|yes|no|on|off|~|[-+]?[0-9.]+([eE][-+]?[0-9]+)?)$/i.test(value);
  return plain ? value : JSON.stringify(value);
}

/** Sets (replaces or appends) a top-level key to a scalar or a block list. */
export function setTopLevel(yaml: string | undefined, key: string, value: string | string[]): string {
  const lines = yaml === undefined || yaml === "" ? [] : yaml.replace(/\n+$/, "").split("\n");
  const rendered = typeof value === "string" ? [`${key}: ${yamlScalar(value)}`] : [`${key}:`, ...value.map((item) => `- ${yamlScalar(item)}`)];
  const block = keyBlock(lines, key);
  if (block) lines.splice(block.start, block.end - block.start, ...rendered);
  else lines.push(...rendered);
  return lines.join("\n");
}
