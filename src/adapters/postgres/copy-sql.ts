import { postgresDriver as driver } from "./driver.js";
import { toDollarParams } from "./placeholders.js";

/**
 * `COPY (<select>) TO STDOUT` with its `?` parameters written in as literals: COPY takes no
 * bound parameters. Strings go through pg's escapeLiteral (an E'' literal where a backslash
 * is in it, so the server's standard_conforming_strings does not matter); a value of any
 * other kind than a string, a finite number, a bigint or null is refused.
 */
export function copyStatement(select: string, params: readonly unknown[]): string {
  const literal = (n: number): string => {
    if (n > params.length) throw new RangeError(`parameter ${n} of ${params.length} is missing`);
    const v = params[n - 1];
    if (v === null) return "NULL";
    if (typeof v === "string") return driver().pg.escapeLiteral(v);
    if (typeof v === "bigint" || (typeof v === "number" && Number.isFinite(v))) return String(v);
    throw new TypeError(
      `a COPY parameter must be a string, a finite number or null; got ${typeof v}`,
    );
  };
  return `COPY (${toDollarParams(select, literal)}) TO STDOUT`;
}
