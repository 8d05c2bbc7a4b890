import type { LedgerBase } from "./ledger/base.js";

/** What an alert rule needs from the ledger about one table, read once per scrape. */
export interface LedgerGauges {
  /** Partitions in state `failed` (`last_error` says why). */
  failedPartitions: number;
  /** Partitions whose lease is held now: jobs running, in any process. */
  runningJobs: number;
  /** When a part was last archived, and last finished cleaning (ISO), or null. */
  lastArchivedAt: string | null;
  lastCleanedAt: string | null;
  /** Rows counted by the rollups written with verification (the stats kept past cleanup). */
  rollupRows: number;
}

export async function ledgerGauges(
  ledger: Pick<LedgerBase, "list" | "lastDone">,
  table: string,
  now = Date.now(),
): Promise<LedgerGauges> {
  const [list, done] = await Promise.all([ledger.list(table), ledger.lastDone(table)]);
  return {
    failedPartitions: list.filter((r) => r.state === "failed").length,
    runningJobs: list.filter((r) => r.leaseOwner !== null && (r.leaseExpiresAt ?? 0) > now).length,
    lastArchivedAt: done.archivedAt,
    lastCleanedAt: done.cleanedAt,
    rollupRows: done.rollupRows,
  };
}

const seconds = (iso: string | null) => (iso === null ? null : Date.parse(iso) / 1000);

/**
 * The gauges both runtimes expose from {@link ledgerGauges}, by their Prometheus names, each
 * with one `table` label; a null value is not exported.
 */
export const LEDGER_GAUGES: readonly {
  name: string;
  help: string;
  value(g: LedgerGauges): number | null;
}[] = [
  {
    name: "sluice_failed_partitions",
    help: "Partitions of the table in state failed (last_error says why), from the ledger",
    value: (g) => g.failedPartitions,
  },
  {
    name: "sluice_running_jobs",
    help: "Partitions of the table whose lease is held now (a job running), from the ledger",
    value: (g) => g.runningJobs,
  },
  {
    name: "sluice_last_archive_timestamp_seconds",
    help: "When a part of the table was last archived (Unix time), from the ledger",
    value: (g) => seconds(g.lastArchivedAt),
  },
  {
    name: "sluice_last_cleanup_timestamp_seconds",
    help: "When a part of the table last finished cleaning (Unix time), from the ledger",
    value: (g) => seconds(g.lastCleanedAt),
  },
  {
    name: "sluice_rollup_rows",
    help: "Rows of the table counted by the rollups written with verification (stats kept past cleanup), from the ledger",
    value: (g) => g.rollupRows,
  },
];
