import cluster from "node:cluster";
import {
  AggregatorRegistry,
  Counter,
  Gauge,
  Histogram,
  Registry,
  collectDefaultMetrics,
} from "prom-client";
import type { JobContext } from "../core/archive/context.js";
import { dayCondition } from "../core/archive/days.js";
import { hotDays } from "../core/archive/hot-days.js";
import type { VerifyResult } from "../core/archive/jobs.js";
import { LEDGER_GAUGES, type LedgerGauges, ledgerGauges } from "../core/archive/ledger-gauges.js";
import { dayColumn } from "../core/archive/partition.js";
import type { JobView } from "../core/archive/runner.js";
import { type Row, toCount } from "../core/sql/source.js";

export interface Metrics {
  /** Count a finished job: outcome, rows and bytes archived, rows deleted and remaining. */
  jobFinished(job: JobView): void;
  ingested(events: number): void;
  /** Count a re-verification of every archived partition (VERIFY_CRON). */
  verified(results: readonly VerifyResult[]): void;
  /** The Prometheus text exposition of every metric. */
  render(): Promise<{ contentType: string; body: string }>;
}

const ASK = "sluice:cluster-metrics";

/**
 * prom-client metrics. Hot-store rows by date are counted when scraped, at most once per
 * `hotRowsTtlMs`, by one grouped query on the (date, key) index (days of a timestamp column: found by index,
 * then counted), run by `query` (on SQLite a
 * read thread: over millions of rows it takes a second). In a cluster worker,
 * /metrics answers for the whole cluster: the primary gathers every worker's (see
 * `serveClusterMetrics`); counters add up, the database's gauges are taken once.
 */
export function createMetrics(
  ctx: JobContext,
  query: (sql: string, params: readonly unknown[]) => Promise<Row[]> = (sql, params) =>
    ctx.source.query(sql, params),
  hotRowsTtlMs = 30_000,
): Metrics {
  const registry = new Registry();
  if (cluster.isWorker) {
    new AggregatorRegistry(); // its constructor makes this worker answer the primary
    AggregatorRegistry.setRegistries([registry]);
  }
  collectDefaultMetrics({ register: registry, prefix: "sluice_" });
  const jobs = new Counter({
    name: "sluice_jobs_total",
    help: "Archive and cleanup jobs run by this process, by kind and outcome",
    labelNames: ["kind", "outcome"] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: "sluice_job_duration_seconds",
    help: "Wall time of finished jobs",
    labelNames: ["kind"] as const,
    buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600],
    registers: [registry],
  });
  const archivedRows = new Counter({
    name: "sluice_archived_rows_total",
    help: "Rows written to verified archives",
    registers: [registry],
  });
  const archivedBytes = new Counter({
    name: "sluice_archived_bytes_total",
    help: "Compressed bytes written to archives",
    registers: [registry],
  });
  const deleted = new Counter({
    name: "sluice_deleted_rows_total",
    help: "Rows removed from the hot store by cleanup (deleted or in dropped partitions)",
    registers: [registry],
  });
  const remaining = new Gauge({
    name: "sluice_cleanup_remaining_rows",
    help: "Archived rows still in the hot store after the latest cleanup of a date",
    labelNames: ["date"] as const,
    registers: [registry],
    aggregator: "max",
  });
  const ingestedEvents = new Counter({
    name: "sluice_ingested_events_total",
    help: "Events accepted by POST /api/events",
    registers: [registry],
  });
  const verifiedPartitions = new Counter({
    name: "sluice_verified_partitions_total",
    help: "Partitions re-verified by the schedule (VERIFY_CRON), by outcome",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
  const verifyFailures = new Counter({
    name: "sluice_verify_failures_total",
    help: "Partitions whose stored archive failed a scheduled re-verification",
    registers: [registry],
  });
  // From the ledger, so that they count what any process did (a CLI run, another worker); the
  // gauges of one scrape share one read of it.
  const table = { table: ctx.spec.table };
  let reading: Promise<LedgerGauges> | null = null;
  const gauges = () => {
    reading ??= ledgerGauges(ctx.ledger, ctx.spec.table).finally(() => {
      reading = null;
    });
    return reading;
  };
  for (const g of LEDGER_GAUGES) {
    new Gauge({
      name: g.name,
      help: g.help,
      labelNames: ["table"] as const,
      registers: [registry],
      aggregator: "max",
      async collect() {
        const v = g.value(await gauges());
        if (v !== null) this.set(table, v);
      },
    });
  }
  let hotCountedAt = 0;
  const { source, spec } = ctx;
  const q = source.dialect.quote;
  new Gauge({
    name: "sluice_hot_rows",
    help: "Rows in the hot store, by date",
    labelNames: ["date"] as const,
    registers: [registry],
    aggregator: "max",
    async collect() {
      if (Date.now() - hotCountedAt < hotRowsTtlMs) return;
      hotCountedAt = Date.now();
      const col = q(spec.partitionColumn);
      const counts = new Map<string, number>();
      if (dayColumn(spec).kind === "date") {
        const d = source.dialect.asText?.(col) ?? col;
        const sql = `SELECT ${d} AS d, COUNT(*) AS n FROM ${q(spec.table)} GROUP BY ${col}`;
        for (const r of await query(sql, [])) counts.set(String(r.d), toCount(r.n));
      } else {
        // A day of a timestamp column is a range: each day found by index, then counted.
        for (const date of await hotDays(query, source.dialect, spec, "9999-12-31")) {
          const day = dayCondition(col, dayColumn(spec), date);
          const [r] = await query(
            `SELECT COUNT(*) AS n FROM ${q(spec.table)} WHERE ${day.sql}`,
            day.params,
          );
          counts.set(date, toCount(r?.n));
        }
      }
      this.reset();
      for (const [date, n] of counts) this.set({ date }, n);
    },
  });

  return {
    jobFinished(job) {
      jobs.inc({ kind: job.kind, outcome: job.state === "succeeded" ? "ok" : "failed" });
      if (job.finishedAt) {
        duration.observe(
          { kind: job.kind },
          (Date.parse(job.finishedAt) - Date.parse(job.startedAt)) / 1000,
        );
      }
      const r = job.result;
      if (r?.archived) {
        archivedRows.inc(r.archived.rowsWritten);
        archivedBytes.inc(r.archived.bytesWritten);
      }
      if (r?.cleanup) {
        deleted.inc(r.cleanup.deleted);
        remaining.set({ date: job.date }, r.cleanup.remaining);
      }
    },
    ingested: (n) => ingestedEvents.inc(n),
    verified(results) {
      const failed = results.filter((r) => !r.ok).length;
      verifiedPartitions.inc({ outcome: "ok" }, results.length - failed);
      verifiedPartitions.inc({ outcome: "failed" }, failed);
      verifyFailures.inc(failed);
    },
    async render() {
      if (cluster.isWorker) return askPrimary();
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}

let asked = 0;
function askPrimary(): Promise<{ contentType: string; body: string }> {
  const id = ++asked;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      process.off("message", onReply);
      reject(new Error("the cluster primary did not answer for metrics within 10 s"));
    }, 10_000);
    const onReply = (m: { cmd?: string; id?: number; body?: string; error?: string }) => {
      if (m?.cmd !== ASK || m.id !== id) return;
      clearTimeout(timer);
      process.off("message", onReply);
      if (m.error !== undefined) reject(new Error(`cluster metrics: ${m.error}`));
      else resolve({ contentType: AggregatorRegistry.PROMETHEUS_CONTENT_TYPE, body: m.body ?? "" });
    };
    process.on("message", onReply);
    process.send?.({ cmd: ASK, id });
  });
}

/** In the cluster primary: answer workers' /metrics with every worker's metrics, aggregated. */
export function serveClusterMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on("message", (worker, m: { cmd?: string; id?: number }) => {
    if (m?.cmd !== ASK) return;
    aggregator.clusterMetrics().then(
      (body) => worker.send({ cmd: ASK, id: m.id, body }),
      (err: Error) => worker.send({ cmd: ASK, id: m.id, error: err.message }),
    );
  });
}
