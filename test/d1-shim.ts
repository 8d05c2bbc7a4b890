import Database from "better-sqlite3";
import type { D1DatabaseLike, D1ResultLike, D1StatementLike } from "../src/adapters/d1/source.js";

/**
 * The D1 binding's interface over a SQLite file through better-sqlite3: D1 is SQLite, so the
 * real D1Source adapter, its dialect and the ledger's D1 paths (atomic batches, changes())
 * run here in-process, where mutation testing reaches them. workerd with Miniflare's real D1
 * is tested in worker.test.ts.
 */
interface ShimStatement extends D1StatementLike {
  exec(): D1ResultLike;
}

export function d1Shim(path: string): { binding: D1DatabaseLike; db: Database.Database } {
  const db = new Database(path);
  db.pragma("busy_timeout = 10000");
  const statement = (sql: string, params: unknown[] = []): ShimStatement => {
    const exec = (): D1ResultLike => {
      checkLimits(sql, params);
      const s = db.prepare(sql);
      if (s.reader) return { results: s.all(...params) as D1ResultLike["results"], meta: {} };
      return { results: [], meta: { changes: s.run(...params).changes } };
    };
    return {
      bind: (...values) => statement(sql, values),
      all: async <T>() => exec() as D1ResultLike<T>,
      run: async () => exec(),
      exec,
    };
  };
  return {
    db,
    binding: {
      prepare: (sql) => statement(sql),
      // One transaction, all or nothing, as D1's batch; changes() carries from one to the next.
      batch: async (statements) =>
        db.transaction(() => statements.map((s) => (s as ShimStatement).exec()))(),
    },
  };
}

/**
 * D1's limits, refused as D1 refuses them (ANCHORS.md): 100 bound parameters and 100 KB of SQL
 * per statement, 2 MB per value. Code that passes here without them would fail on D1.
 */
function checkLimits(sql: string, params: readonly unknown[]): void {
  if (params.length > 100) throw new Error(`D1: too many SQL variables (${params.length} > 100)`);
  const bytes = Buffer.byteLength(sql);
  if (bytes > 100_000) throw new Error(`D1: statement too long (${bytes} bytes > 100 KB)`);
  for (const p of params) {
    if (typeof p === "string" && Buffer.byteLength(p) > 2_000_000) {
      throw new Error(`D1: string or blob too big (${Buffer.byteLength(p)} bytes > 2 MB)`);
    }
  }
}
