import { createRequire } from "node:module";
import type mysql from "mysql2/promise";

const require = createRequire(import.meta.url);
let loaded: typeof mysql | null = null;

/** mysql2, loaded with the first MySQL source: a process on another database never pays for it. */
export function mysqlDriver(): typeof mysql {
  loaded ??= require("mysql2/promise") as typeof mysql;
  return loaded;
}
