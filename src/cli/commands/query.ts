import { parsePartitionDate } from "../../core/dates.js";
import { type NodeContext, openContext } from "../../node/context.js";
import { archiveQuery } from "../../node/query/archive-query.js";
import type { Io } from "../io.js";
import { type QueryCliOptions, configsFrom } from "../options.js";

/**
 * query: one SELECT with DuckDB over the verified archive of every configured table (with
 * --hot, over the hot rows and the archived rows cleanup deleted: each row once). Rows go to stdout: a table on a
 * terminal, NDJSON with --json, CSV with --csv, or a Parquet file with --out.
 */
export async function query(opts: QueryCliOptions, io: Io): Promise<void> {
  const configs = configsFrom(opts);
  const from = opts.from === undefined ? undefined : parsePartitionDate(opts.from);
  const to = opts.to === undefined ? undefined : parsePartitionDate(opts.to);
  const contexts: NodeContext[] = [];
  try {
    for (const config of configs) {
      contexts.push(await openContext(config, { readOnly: true, signal: io.signal }));
    }
    for (const c of contexts) {
      if (c.ledgerReady) continue;
      // Read-only: a missing or older ledger is not created or upgraded here.
      process.stderr.write(
        `warning: ${c.ctx.spec.table}: its ledger is missing or older than this sluice; its archive is not read (any archive, cleanup or serve run creates or upgrades it)\n`,
      );
    }
    const first = configs[0];
    const rows = await archiveQuery(
      contexts.filter((c) => c.ledgerReady),
      {
        sql: opts.sql,
        hot: opts.hot,
        from,
        to,
        format: opts.json ? "ndjson" : opts.csv ? "csv" : "table",
        parquet: opts.out,
        cacheDir: first?.SLUICE_CACHE ?? "./data/cache",
        cacheBytes: (first?.SLUICE_CACHE_MB ?? 2048) * 1048576,
        onWarning: (m) => process.stderr.write(`warning: ${m}\n`),
        onProgress: process.stderr.isTTY
          ? (p) => process.stderr.write(`\r${p.toFixed(0)}% scanned`)
          : undefined,
        signal: io.signal,
      },
      process.stdout,
    );
    if (process.stderr.isTTY) process.stderr.write("\r");
    if (opts.out) process.stderr.write(`wrote ${rows} rows to ${opts.out}\n`);
  } finally {
    for (const c of contexts) await c.close();
  }
}
