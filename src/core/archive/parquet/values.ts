import { type StoredValue, renderValue, unsafeInteger } from "./line.js";
import { LineSyntaxError, parseLine } from "./parse.js";
import type { PlannedColumn } from "./schema.js";

// A line's values as a Parquet part stores them, each checked to render back to its text.

/**
 * A line the Parquet part could not give back byte for byte. The caller writes the part as
 * JSONL instead; nothing of the Parquet bytes already emitted may be kept.
 */
export class NotExactError extends Error {
  override readonly name = "NotExactError";
  constructor(
    /** 1-based number of the line in the part. */
    readonly lineNumber: number,
    /** The column whose value did not roundtrip, or undefined for the line's shape. */
    readonly column: string | undefined,
    /** The text in the line (the value's, or the whole line's). */
    readonly expected: string,
    /** The text the Parquet part would decode to. */
    readonly actual: string,
  ) {
    super(
      `line ${lineNumber}${column === undefined ? "" : `, column '${column}'`}: Parquet would give ${JSON.stringify(actual)} for ${JSON.stringify(expected)}`,
    );
  }
}

/**
 * Why a part cannot be Parquet, for a person: the line and column, and where the line's text
 * and Parquet's part, with a little context on either side (a whole line is too long).
 */
export function whereNotExact(err: NotExactError): string {
  const { expected: want, actual: got } = err;
  // A value its column's type refused: the value, and why.
  if (err.column !== undefined) {
    return `line ${err.lineNumber}, column '${err.column}': ${JSON.stringify(want.slice(0, 48))} (${got})`;
  }
  let at = 0;
  while (at < want.length && want[at] === got[at]) at++;
  const from = Math.max(0, at - 24);
  return `line ${err.lineNumber}: ${JSON.stringify(want.slice(from, at + 24))} would come back as ${JSON.stringify(got.slice(from, at + 24))}`;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const JSON_NUMBER = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$/;
/** An unpaired surrogate: UTF-8 cannot hold it, so Parquet would give back U+FFFD. */
const LONE_SURROGATE = /\p{Cs}/u;

/** Text JSON.stringify would escape inside a string, or UTF-8 cannot hold. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the characters JSON.stringify escapes
const ESCAPED = /[\u0000-\u001f]|\p{Cs}/u;
const NUMBER_CHAR = /[-+.0-9eE]/;

/**
 * The common line read in one pass, into `out`: every property where the plan puts it, each
 * value in the one text the renderer writes for it (a string with no escape, an integer
 * JavaScript holds exactly, a boolean, a number as JSON.stringify writes it, null). Then the
 * line is exactly its render, with no second rendering to compare. False for anything else,
 * which the full parse and roundtrip check decide; `out` is then garbage.
 */
export function exactValues(
  line: string,
  plan: readonly PlannedColumn[],
  prefixes: readonly string[],
  out: StoredValue[],
): boolean {
  let at = 0;
  for (let i = 0; i < plan.length; i++) {
    const prefix = prefixes[i] as string;
    if (!line.startsWith(prefix, at)) return false;
    const from = at + prefix.length;
    const c = line.charCodeAt(from);
    if (c === 110 /* n */) {
      if (!line.startsWith("null", from)) return false;
      out[i] = null;
      at = from + 4;
      continue;
    }
    switch ((plan[i] as PlannedColumn).kind) {
      case "string": {
        if (c !== 34) return false;
        const end = line.indexOf('"', from + 1);
        if (end === -1) return false;
        const text = line.slice(from + 1, end);
        if (text.includes("\\") || ESCAPED.test(text)) return false;
        out[i] = text;
        at = end + 1;
        break;
      }
      case "int64": {
        let end = c === 45 /* - */ ? from + 1 : from;
        const first = end;
        while (end < line.length) {
          const d = line.charCodeAt(end);
          if (d < 48 || d > 57) break;
          end++;
        }
        const digits = end - first;
        // Canonical and below 2^53: no leading zero, no -0, at most 15 digits.
        if (digits === 0 || digits > 15) return false;
        if (line.charCodeAt(first) === 48 && (digits > 1 || first !== from)) return false;
        out[i] = BigInt(Number(line.slice(from, end)));
        at = end;
        break;
      }
      case "double": {
        let end = from;
        while (end < line.length && NUMBER_CHAR.test(line.charAt(end))) end++;
        const text = line.slice(from, end);
        const v = Number(text);
        if (text === "" || !Number.isFinite(v) || renderValue("double", v) !== text) return false;
        out[i] = v;
        at = end;
        break;
      }
      case "boolean":
        if (line.startsWith("true", from)) {
          out[i] = true;
          at = from + 4;
        } else if (line.startsWith("false", from)) {
          out[i] = false;
          at = from + 5;
        } else return false;
        break;
      default:
        return false;
    }
  }
  return plan.length > 0 && at === line.length - 1 && line.charCodeAt(at) === 125 /* } */;
}

/** The line's values as they will be stored, each checked against its column's kind. */
export function valuesOf(
  line: string,
  number: number,
  plan: readonly PlannedColumn[],
  names: readonly string[],
  alt: (boolean | undefined)[],
): StoredValue[] {
  let parsed: ReturnType<typeof parseLine>;
  try {
    parsed = parseLine(line);
  } catch (err) {
    if (err instanceof LineSyntaxError)
      throw new NotExactError(number, undefined, line, err.message);
    throw err;
  }
  const { names: got, raws } = parsed;
  if (got.length !== names.length || got.some((g, i) => g !== names[i])) {
    throw new NotExactError(number, undefined, JSON.stringify(got), JSON.stringify(names));
  }
  const values: StoredValue[] = [];
  for (let i = 0; i < plan.length; i++) {
    const c = plan[i] as PlannedColumn;
    const raw = raws[i] as string;
    const refuse = (why: string) => new NotExactError(number, c.name, raw, why);
    if (raw === "null") {
      values.push(null);
      continue;
    }
    switch (c.kind) {
      case "int64": {
        const quoted = raw.startsWith('"');
        const digits = quoted ? raw.slice(1, -1) : raw;
        if (!/^-?(0|[1-9][0-9]*)$/.test(digits) || (quoted && !raw.endsWith('"'))) {
          throw refuse("not an integer");
        }
        const v = BigInt(digits);
        if (v < INT64_MIN || v > INT64_MAX) throw refuse("outside INT64");
        // Only integers past 2^53 may be quoted, and all of them alike within a part.
        if (unsafeInteger(v)) {
          alt[i] ??= quoted;
          if (alt[i] !== quoted) throw refuse("big integers both quoted and not in one column");
        } else if (quoted) throw refuse("a quoted integer JavaScript holds exactly");
        values.push(v);
        break;
      }
      case "boolean":
        if (raw !== "true" && raw !== "false") throw refuse("not a boolean");
        values.push(raw === "true");
        break;
      case "double":
        if (!JSON_NUMBER.test(raw)) throw refuse("not a number");
        values.push(Number(raw));
        break;
      case "string":
        values.push(stringOf(raw, refuse));
        break;
      case "json":
      case "decimal": {
        const isString = raw.startsWith('"');
        alt[i] ??= !isString;
        if (alt[i] === isString) throw refuse("JSON text and a string in one column");
        values.push(isString ? stringOf(raw, refuse) : raw);
        break;
      }
    }
  }
  return values;
}

function stringOf(raw: string, refuse: (why: string) => Error): string {
  if (!raw.startsWith('"')) throw refuse("not a string");
  let v: string;
  try {
    v = JSON.parse(raw) as string;
  } catch {
    throw refuse("not a JSON string");
  }
  if (LONE_SURROGATE.test(v)) throw refuse("an unpaired surrogate UTF-8 cannot hold");
  return v;
}
