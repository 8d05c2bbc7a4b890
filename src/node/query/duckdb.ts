import { createRequire } from "node:module";
import { BadInputError } from "../../core/errors.js";

export type DuckDb = typeof import("@duckdb/node-api");

const require = createRequire(import.meta.url);

/**
 * DuckDB's Node API, or bad input saying how to install it (an optional dependency). Loaded
 * with require: the package is CommonJS, and an ES import of it runs Node's export lexer over
 * its files first, ~50 ms of every query.
 */
export function loadDuckDb(): DuckDb {
  try {
    return require("@duckdb/node-api") as DuckDb;
  } catch {
    throw new BadInputError(
      "sluice query needs DuckDB (@duckdb/node-api, an optional dependency): npm install @duckdb/node-api",
    );
  }
}
