/**
 * A deliberately strict reader for the YAML subset model-card front matter uses in practice: nested block
 * mappings, block and flow sequences of scalars, plain / single- / double-quoted scalars and comments.
 * Anything else (anchors, multi-line scalars, sequences of mappings, tabs, duplicate keys) is an error, so
 * tests that parse a generated card fail loudly on malformed output. Independent of lib/hub on purpose.
 */
export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue };

export class YamlSubsetError extends Error {}

interface Line {
  indent: number;
  text: string;
  number: number;
}

function parseScalar(raw: string, line: number): YamlValue {
  const text = raw.trim();
  if (text.startsWith('"')) {
    if (!text.endsWith('"') || text.length < 2) throw new YamlSubsetError(`line ${line}: unterminated double-quoted string`);
    try {
      return JSON.parse(text) as string;
    } catch {
      throw new YamlSubsetError(`line ${line}: invalid double-quoted string ${text}`);
    }
  }
  if (text.startsWith("'")) {
    if (!text.endsWith("'") || text.length < 2) throw new YamlSubsetError(`line ${line}: unterminated single-quoted string`);
    const inner = text.slice(1, -1);
    if (/(^|[^'])'([^']|$)/.test(inner)) throw new YamlSubsetError(`line ${line}: stray quote in ${text}`);
    return inner.replace(/''/g, "'");
  }
  if (/^[&*!|>%@`]/.test(text)) throw new YamlSubsetError(`line ${line}: unsupported YAML construct ${text}`);
  if (/\s#/.test(text)) return parseScalar(text.slice(0, text.search(/\s#/)), line);
  if (text === "" || text === "~" || text === "null") return null;
  if (text === "true" || text === "false") return text === "true";
  if (/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(text)) return Number(text);
  if (/: |^- /.test(text)) throw new YamlSubsetError(`line ${line}: ambiguous plain scalar ${text}`);
  return text;
}

function parseFlowSequence(text: string, line: number): YamlValue[] {
  const inner = text.trim().slice(1, -1).trim();
  if (inner === "") return [];
  const items: string[] = [];
  let current = "";
  let quote: string | undefined;
  for (const char of inner) {
    if (quote) {
      current += char;
      if (char === quote) quote = undefined;
    } else if (char === '"' || char === "'") {
      quote = char;
      current += char;
    } else if (char === ",") {
      items.push(current);
      current = "";
    } else if (char === "[" || char === "{") {
      throw new YamlSubsetError(`line ${line}: nested flow collections are not supported`);
    } else {
      current += char;
    }
  }
  if (quote) throw new YamlSubsetError(`line ${line}: unterminated string in flow sequence`);
  items.push(current);
  return items.map((item) => parseScalar(item, line));
}

function parseValue(text: string, line: number): YamlValue {
  const trimmed = text.trim();
  if (trimmed.startsWith("[")) {
    if (!trimmed.endsWith("]")) throw new YamlSubsetError(`line ${line}: unterminated flow sequence`);
    return parseFlowSequence(trimmed, line);
  }
  if (trimmed.startsWith("{")) throw new YamlSubsetError(`line ${line}: flow mappings are not supported`);
  return parseScalar(trimmed, line);
}

function parseBlock(lines: Line[], start: number, indent: number): { value: YamlValue; next: number } {
  const first = lines[start];
  if (first.text.startsWith("- ") || first.text === "-") {
    const items: YamlValue[] = [];
    let i = start;
    while (i < lines.length && lines[i].indent === indent && (lines[i].text.startsWith("- ") || lines[i].text === "-")) {
      const item = lines[i].text.slice(1).trim();
      if (/^[^"'[][^:]*:(\s|$)/.test(item)) throw new YamlSubsetError(`line ${lines[i].number}: sequences of mappings are not supported`);
      items.push(parseValue(item, lines[i].number));
      i += 1;
    }
    if (i < lines.length && lines[i].indent > indent) throw new YamlSubsetError(`line ${lines[i].number}: unexpected indentation`);
    return { value: items, next: i };
  }
  const map: { [key: string]: YamlValue } = {};
  let i = start;
  while (i < lines.length && lines[i].indent === indent) {
    const { text, number } = lines[i];
    const match = /^([^\s:"'#-][^:]*?|"[^"]*"|'[^']*'):(?:\s+(.*))?$/.exec(text);
    if (!match) throw new YamlSubsetError(`line ${number}: expected "key: value", got ${text}`);
    const key = String(parseScalar(match[1], number));
    if (Object.prototype.hasOwnProperty.call(map, key)) throw new YamlSubsetError(`line ${number}: duplicate key ${key}`);
    const rest = match[2]?.trim() ?? "";
    i += 1;
    if (rest !== "" && !rest.startsWith("#")) {
      map[key] = parseValue(rest, number);
    } else if (i < lines.length && (lines[i].indent > indent || (lines[i].indent === indent && lines[i].text.startsWith("- ")))) {
      const child = parseBlock(lines, i, lines[i].indent);
      map[key] = child.value;
      i = child.next;
    } else {
      map[key] = null;
    }
  }
  if (i < lines.length && lines[i].indent > indent) throw new YamlSubsetError(`line ${lines[i].number}: unexpected indentation`);
  return { value: map, next: i };
}

export function parseYamlSubset(text: string): { [key: string]: YamlValue } {
  const lines: Line[] = [];
  text.split("\n").forEach((raw, index) => {
    if (raw.includes("\t")) throw new YamlSubsetError(`line ${index + 1}: tabs are not allowed`);
    const trimmedEnd = raw.replace(/\s+$/, "");
    const text = trimmedEnd.trim();
    if (text === "" || text.startsWith("#")) return;
    lines.push({ indent: trimmedEnd.length - trimmedEnd.trimStart().length, text, number: index + 1 });
  });
  if (lines.length === 0) return {};
  if (lines[0].indent !== 0) throw new YamlSubsetError(`line ${lines[0].number}: the document must start at column 0`);
  const { value, next } = parseBlock(lines, 0, 0);
  if (next !== lines.length) throw new YamlSubsetError(`line ${lines[next].number}: unexpected content`);
  if (Array.isArray(value) || value === null || typeof value !== "object") throw new YamlSubsetError("front matter must be a mapping");
  return value;
}

/** Splits `---\n<yaml>\n---\n<body>`; undefined when the text has no front matter. */
export function parseFrontMatter(markdown: string): { data: { [key: string]: YamlValue }; body: string } | undefined {
  const match = /^---\r?\n([\s\S]*?)\r?\n---[ \t]*(?:\r?\n|$)/.exec(markdown);
  if (!match) return undefined;
  return { data: parseYamlSubset(match[1]), body: markdown.slice(match[0].length) };
}
