import type { JobContext } from "../core/archive/context.js";
import { ledgerGauges } from "../core/archive/ledger-gauges.js";

/**
 * GET /metrics on the Worker: the ledger's gauges in Prometheus text (the Node service's
 * names). Counters of jobs and rows live in one isolate and would reset at random, so the
 * Worker shows what the ledger knows, which every isolate and the cron share.
 */
export async function workerMetrics(
  ctx: JobContext,
): Promise<{ contentType: string; body: string }> {
  const table = ctx.spec.table;
  const g = await ledgerGauges(ctx.ledger, table);
  const label = `{table="${table.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"}`;
  const lines: string[] = [];
  const gauge = (name: string, help: string, value: number | null) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    if (value !== null) lines.push(`${name}${label} ${value}`);
  };
  const seconds = (iso: string | null) => (iso === null ? null : Date.parse(iso) / 1000);
  gauge(
    "sluice_failed_partitions",
    "Partitions of the table in state failed (last_error says why), from the ledger",
    g.failedPartitions,
  );
  gauge(
    "sluice_running_jobs",
    "Partitions of the table whose lease is held now (a job running), from the ledger",
    g.runningJobs,
  );
  gauge(
    "sluice_last_archive_timestamp_seconds",
    "When a part of the table was last archived (Unix time), from the ledger",
    seconds(g.lastArchivedAt),
  );
  gauge(
    "sluice_last_cleanup_timestamp_seconds",
    "When a part of the table last finished cleaning (Unix time), from the ledger",
    seconds(g.lastCleanedAt),
  );
  return { contentType: "text/plain; version=0.0.4; charset=utf-8", body: `${lines.join("\n")}\n` };
}
