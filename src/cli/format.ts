import type { PartitionStatus } from "../core/archive/jobs.js";
import type { PartitionRecord } from "../core/archive/ledger/records.js";

export const fmt = (n: number) => n.toLocaleString("en-US");

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** A person's view of one partition. */
export function describeStatus(s: PartitionStatus): string {
  const r = s.record;
  const head = `${s.table} ${s.date}`;
  if (!r || s.parts.length === 0) {
    return `${head}: not archived; ${fmt(s.hotRows)} rows in the hot store${r?.lastError ? `\n  last error: ${r.lastError}` : ""}`;
  }
  const lines = [
    `${head}: ${r.state}${r.d1Cleaned ? " (d1_cleaned=1)" : ""}`,
    `  archived  ${fmt(r.eventCount)} rows in ${r.partCount} part${r.partCount === 1 ? "" : "s"}, ${bytes(r.fileSize)} gzip (${bytes(r.rawSize)} raw), keys ${r.minId}..${r.maxId}`,
    `  verified  ${r.verifiedAt ?? "no"}${s.parts.every((p) => p.verifiedAt) ? "" : " (some parts not verified)"}`,
    `  deleted   ${fmt(r.cleanedCount)} rows from the hot store; it now holds ${fmt(s.hotRows)} rows of this date, ${fmt(s.lateRows)} of them late (not archived yet)`,
  ];
  if (r.lastError) lines.push(`  last error: ${r.lastError}`);
  for (const p of s.parts) {
    lines.push(
      `  part ${p.part}  ${p.objectKey}  ${fmt(p.eventCount)} rows  ${bytes(p.fileSize)}  sha256 ${p.sha256}${p.cleanedAt ? "  cleaned" : ""}`,
    );
  }
  return lines.join("\n");
}

/** Columns padded to their widest cell. */
function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

export function describeList(records: PartitionRecord[]): string {
  if (records.length === 0) return "no partitions in the ledger yet";
  return table([
    [
      "table",
      "date",
      "state",
      "rows",
      "parts",
      "gzip",
      "verified",
      "d1_cleaned",
      "deleted",
      "last_error",
    ],
    ...records.map((r) => [
      r.sourceTable,
      r.date,
      r.state,
      fmt(r.eventCount),
      String(r.partCount),
      bytes(r.fileSize),
      r.verifiedAt ? "yes" : "no",
      String(r.d1Cleaned),
      fmt(r.cleanedCount),
      r.lastError ?? "",
    ]),
  ]);
}
