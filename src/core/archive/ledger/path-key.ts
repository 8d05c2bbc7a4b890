import { portableSha256 } from "../../bytes/hash.js";
import type { Dialect } from "../../sql/source.js";

/**
 * A stats value's key in archive_deleted_rollups: `n` for null, the value after `s:` up to
 * PATH_KEY_TEXT characters, else `h:` and its sha256, so that a key fits a unique index.
 */
export function pathKey(value: string | null): string {
  if (value === null) return "n";
  if (value.length <= PATH_KEY_TEXT) return `s:${value}`;
  const h = portableSha256();
  h.update(new TextEncoder().encode(value));
  return `h:${h.hex()}`;
}

/**
 * A stats value's key in archive_deleted_rollups, as SQL over `expr`: what pathKey gives,
 * except for values longer than it keeps whole, which get null (their rows are not unique,
 * and every reader sums a value's rows).
 */
export function pathKeySql(d: Dialect, expr: string): string {
  const [len, keyed] =
    d.name === "mysql"
      ? [`CHAR_LENGTH(${expr})`, `CONCAT('s:', ${expr})`]
      : [`LENGTH(${expr})`, `'s:' || ${expr}`];
  return `CASE WHEN ${expr} IS NULL THEN 'n' WHEN ${len} <= ${PATH_KEY_TEXT} THEN ${keyed} END`;
}

/** Stats values up to this many characters are their own key; longer ones are hashed. */
export const PATH_KEY_TEXT = 200;
