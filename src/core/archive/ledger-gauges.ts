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
  };
}
