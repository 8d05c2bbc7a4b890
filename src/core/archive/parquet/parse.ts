/**
 * A line split into its top-level properties, each value kept as the exact text it had: no
 * JSON.parse of numbers (it would round integers past 2^53 and forget `1.0` vs `1`).
 */
export interface ParsedLine {
  names: string[];
  raws: string[];
}

/** Thrown for text that is not one flat JSON object; the caller treats it as not exact. */
export class LineSyntaxError extends Error {
  override readonly name = "LineSyntaxError";
}

/** Splits `line` into property names and raw value texts; whitespace is skipped (the
 * roundtrip check then refuses the line, since rendered lines hold none). */
export function parseLine(line: string): ParsedLine {
  const names: string[] = [];
  const raws: string[] = [];
  let i = skipWs(line, 0);
  if (line[i] !== "{") throw new LineSyntaxError("not a JSON object");
  i = skipWs(line, i + 1);
  if (line[i] === "}") return end(line, i + 1, names, raws);
  for (;;) {
    if (line[i] !== '"') throw new LineSyntaxError(`expected a property name at ${i}`);
    const nameEnd = skipString(line, i);
    names.push(JSON.parse(line.slice(i, nameEnd)) as string);
    i = skipWs(line, nameEnd);
    if (line[i] !== ":") throw new LineSyntaxError(`expected ':' at ${i}`);
    i = skipWs(line, i + 1);
    const valueEnd = skipValue(line, i);
    raws.push(line.slice(i, valueEnd));
    i = skipWs(line, valueEnd);
    if (line[i] === ",") {
      i = skipWs(line, i + 1);
      continue;
    }
    if (line[i] === "}") return end(line, i + 1, names, raws);
    throw new LineSyntaxError(`expected ',' or '}' at ${i}`);
  }
}

function end(line: string, i: number, names: string[], raws: string[]): ParsedLine {
  if (skipWs(line, i) !== line.length) throw new LineSyntaxError("text after the object");
  return { names, raws };
}

function skipWs(s: string, i: number): number {
  let j = i;
  while (j < s.length && (s[j] === " " || s[j] === "\t" || s[j] === "\n" || s[j] === "\r")) j++;
  return j;
}

/** The index just past the string starting at `i` (a `"`). */
function skipString(s: string, i: number): number {
  let j = i + 1;
  while (j < s.length) {
    const c = s[j];
    if (c === "\\") j += 2;
    else if (c === '"') return j + 1;
    else j++;
  }
  throw new LineSyntaxError("unterminated string");
}

/** The index just past the JSON value starting at `i`; nested values are skipped whole. */
function skipValue(s: string, i: number): number {
  const c = s[i];
  if (c === '"') return skipString(s, i);
  if (c === "{" || c === "[") {
    let depth = 0;
    let j = i;
    while (j < s.length) {
      const d = s[j];
      if (d === '"') {
        j = skipString(s, j);
        continue;
      }
      if (d === "{" || d === "[") depth++;
      else if (d === "}" || d === "]") {
        depth--;
        if (depth === 0) return j + 1;
      }
      j++;
    }
    throw new LineSyntaxError("unterminated nested value");
  }
  let j = i;
  while (j < s.length && /[-+.0-9a-zA-Z]/.test(s[j] as string)) j++;
  if (j === i) throw new LineSyntaxError(`expected a value at ${i}`);
  return j;
}
