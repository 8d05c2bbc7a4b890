/**
 * The `?` parameters of sluice's portable SQL as PostgreSQL's `$1, $2, ...`. A `?` inside a
 * string literal, a quoted identifier, a dollar-quoted string or a comment is text, not a
 * parameter; `??` stands for PostgreSQL's own `?` operator (jsonb `?`, `?|`, `?&`).
 */
export function toDollarParams(
  sql: string,
  /** What parameter n (from 1) becomes: `$n` unless given. */
  param: (n: number) => string = (n) => `$${n}`,
): string {
  let out = "";
  let n = 0;
  let i = 0;
  const copyUntil = (end: string, from: number): number => {
    const at = sql.indexOf(end, from);
    return at < 0 ? sql.length : at + end.length;
  };
  while (i < sql.length) {
    const c = sql[i] as string;
    let next = i + 1;
    if (c === "'" || c === '"') {
      // Quotes inside are doubled: '' and "" simply continue the literal.
      next = copyUntil(c, i + 1);
      while (sql[next] === c) next = copyUntil(c, next + 1);
    } else if (c === "-" && sql[i + 1] === "-") {
      next = copyUntil("\n", i + 2);
    } else if (c === "/" && sql[i + 1] === "*") {
      next = copyUntil("*/", i + 2);
    } else if (c === "$") {
      const tag = /^\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i));
      if (tag && !/[A-Za-z0-9_]/.test(sql[i - 1] ?? ""))
        next = copyUntil(tag[0], i + tag[0].length);
    } else if (c === "?") {
      if (sql[i + 1] === "?") {
        out += "?";
        i += 2;
        continue;
      }
      out += param(++n);
      i = next;
      continue;
    }
    out += sql.slice(i, next);
    i = next;
  }
  return out;
}
