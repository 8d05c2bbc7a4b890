import type { JobContext } from "./archive.js";
import type { Lease, PartRecord } from "./ledger.js";
import { toCount } from "./source.js";

/**
 * Clean a date by dropping its table partition instead of deleting its rows, when the
 * database can and the partition holds exactly the archived rows still there and nothing
 * else: O(partitions), not O(rows). The caller has verified the parts and checked their
 * objects. Returns the rows dropped, or null when this date must be cleaned row by row (no
 * such partition, or late rows in it); then nothing has changed.
 */
export async function dropArchivedPartition(
  ctx: JobContext,
  lease: Lease,
  date: string,
  pending: readonly PartRecord[],
): Promise<number | null> {
  const { source, spec, ledger } = ctx;
  const ddl = source.dialect.partitions;
  if (!ddl || !source.dayPartition) return null;
  const child = await source.dayPartition(spec.table, spec.partitionColumn, date);
  if (child === null) return null;
  const q = source.dialect.quote;
  return source.transaction(async (tx) => {
    for (const sql of ddl.lock(spec.table)) await tx.execute(sql);
    // Under the lock nothing can arrive: every row of the partition must lie in a part's
    // archived key range, or the drop would take a row no archive holds.
    const count = async (where: string, params: unknown[]) =>
      toCount((await tx.query(`SELECT COUNT(*) AS n FROM ${q(child)}${where}`, params))[0]?.n);
    const all = await count("", []);
    const inParts: number[] = [];
    for (const p of pending) {
      inParts.push(
        await count(
          ` WHERE ${q(spec.partitionColumn)} = ? AND ${q(spec.keyColumn)} BETWEEN ? AND ?`,
          [date, p.minId, p.maxId],
        ),
      );
    }
    if (inParts.reduce((a, b) => a + b, 0) !== all) return null;
    for (const [i, p] of pending.entries()) {
      await ledger.addCleaned(lease, p.part, inParts[i] as number, p.maxId, tx);
      await ledger.markPartCleaned(lease, p.part, tx);
    }
    for (const sql of ddl.detachAndDrop(spec.table, child)) await tx.execute(sql);
    return all;
  });
}
