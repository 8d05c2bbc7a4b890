import type { ColumnKind } from "./schema.js";

/**
 * The one renderer of a stored value back into line text. The encoder accepts a line only
 * if rendering its parsed values here gives the line again, and the decoder renders with the
 * same code, so a Parquet part decodes to the exact text of its JSONL part.
 */
export type StoredValue = bigint | boolean | number | string | null;

/**
 * How a stored value is written into a line; `raw`: a BYTE_ARRAY holding JSON text;
 * `int64-quoted`: digits, quoted beyond 2^53 (what mysql2 gives for big BIGINTs: a string).
 */
export type RenderKind = "int64" | "int64-quoted" | "boolean" | "double" | "string" | "raw";

/**
 * The render kind a column of `kind` uses, given the part's choices: `alt` is true where the
 * part stores a decimal or a json value as raw JSON, or quotes integers beyond 2^53.
 */
export function renderKindOf(kind: ColumnKind, alt: boolean): RenderKind {
  if (kind === "json" || kind === "decimal") return alt ? "raw" : "string";
  if (kind === "int64") return alt ? "int64-quoted" : "int64";
  return kind;
}

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** True for an integer JavaScript numbers cannot hold exactly. */
export function unsafeInteger(v: bigint): boolean {
  return v > SAFE || v < -SAFE;
}

/** One value as JSON text, or undefined when the value does not fit the kind (corruption). */
export function renderValue(kind: RenderKind, v: StoredValue): string | undefined {
  if (v === null) return "null";
  switch (kind) {
    case "int64":
      return typeof v === "bigint" ? v.toString() : undefined;
    case "int64-quoted":
      if (typeof v !== "bigint") return undefined;
      return unsafeInteger(v) ? `"${v}"` : v.toString();
    case "boolean":
      return typeof v === "boolean" ? (v ? "true" : "false") : undefined;
    case "double":
      // JSON.stringify writes -0 as 0; PostgreSQL writes -0, and the stored bits keep the sign.
      if (typeof v !== "number" || !Number.isFinite(v)) return undefined;
      return Object.is(v, -0) ? "-0" : JSON.stringify(v);
    case "string":
      return typeof v === "string" ? JSON.stringify(v) : undefined;
    case "raw":
      return typeof v === "string" ? v : undefined;
  }
}

/** The property prefixes (`{"id":`, `,"name":`) of a line in column order. */
export function keyPrefixes(names: readonly string[]): string[] {
  return names.map((n, i) => `${i ? "," : "{"}${JSON.stringify(n)}:`);
}

const encoder = new TextEncoder();
const scratch = new Uint8Array(1 << 16);

/** UTF-8 byte length of `s` (lone surrogates count as U+FFFD, 3 bytes). */
export function utf8Length(s: string): number {
  // The native encoder, into a buffer that holds any encoding of `s`, is ten times the loop.
  if (s.length * 3 <= scratch.length) return encoder.encodeInto(s, scratch).written;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}
