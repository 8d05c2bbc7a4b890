import { createRequire } from "node:module";
import type pg from "pg";
import type { to as copyTo } from "pg-copy-streams";
import type Cursor from "pg-cursor";

const require = createRequire(import.meta.url);
let loaded: { pg: typeof pg; Cursor: typeof Cursor } | null = null;

/** pg and pg-cursor, loaded with the first PostgreSQL source: a process on another database never pays for them. */
export function postgresDriver(): { pg: typeof pg; Cursor: typeof Cursor } {
  loaded ??= { pg: require("pg") as typeof pg, Cursor: require("pg-cursor") as typeof Cursor };
  return loaded;
}

let copy: typeof copyTo | null = null;

/** pg-copy-streams' COPY TO, loaded with the first COPY a trace reads. */
export function postgresCopyTo(): typeof copyTo {
  copy ??= (require("pg-copy-streams") as { to: typeof copyTo }).to;
  return copy;
}
