import type { CleanupOutcome } from "../core/archive/cleanup.js";
import type { ConvertResult } from "../core/archive/convert.js";
import type { ArchivePlan, CleanupPlan } from "../core/archive/dry-run.js";
import type { ArchiveOutcome, VerifyResult } from "../core/archive/jobs.js";
import type { PartRecord, PartitionRecord } from "../core/archive/ledger/records.js";
import type { PartitionStatus } from "../core/archive/partition-status.js";
import { partFormat } from "../core/archive/partition.js";
import type { RestoreOutcome } from "../core/archive/restore.js";
import { byteSize as bytes } from "../core/bytes/size.js";
import { wasInterrupted } from "../core/errors.js";

export const fmt = (n: number) => n.toLocaleString("en-US");

/** A person's view of one partition. */
export function describeStatus(s: PartitionStatus): string {
  const r = s.record;
  const head = `${s.table} ${s.date}`;
  const lease =
    r?.leaseOwner && r.leaseExpiresAt !== null
      ? `\n  lease     held by ${r.leaseOwner} until ${new Date(r.leaseExpiresAt).toISOString()}${r.leaseExpiresAt < Date.now() ? " (expired: the next run takes it over)" : ""}`
      : "";
  const restored = r?.restoredAt
    ? `\n  restored  ${fmt(r.restoredRows)} rows into ${r.restoredInto} at ${r.restoredAt}`
    : "";
  const stopped = r && !r.leaseOwner && wasInterrupted(r.lastError);
  const how = stopped ? ", interrupted (run the command again to resume)" : "";
  if (!r || s.parts.length === 0) {
    // A first archive under way, or killed mid-way: its state and lease say which.
    const state =
      r && r.state !== "pending" ? `${r.state}${how}, no part recorded yet` : "not archived";
    return `${head}: ${state}; ${fmt(s.hotRows)} rows in the hot store${lease}${r?.lastError ? `\n  last error: ${r.lastError}` : ""}`;
  }
  const lines = [
    `${head}: ${r.state}${how}`,
    `  archived  ${fmt(r.eventCount)} rows in ${r.partCount} part${r.partCount === 1 ? "" : "s"}, ${bytes(r.fileSize)} stored (${bytes(r.rawSize)} as JSONL), keys ${r.minId}..${r.maxId}`,
    `  verified  ${r.verifiedAt ?? "no"}${s.parts.every((p) => p.verifiedAt) ? "" : " (some parts not verified)"}`,
    `  deleted   ${fmt(r.cleanedCount)} rows from the hot store; it now holds ${fmt(s.hotRows)} rows of this date, ${fmt(s.lateRows)} of them late (not archived yet)`,
  ];
  if (lease) lines.push(lease.slice(1));
  if (restored) lines.push(restored.slice(1));
  if (r.lastError) lines.push(`  last error: ${r.lastError}`);
  for (const p of s.parts) {
    lines.push(
      `  part ${p.part}  ${p.objectKey}  ${fmt(p.eventCount)} rows  ${bytes(p.fileSize)}  sha256 ${p.sha256}${p.rollupRows === null ? "" : `  rollup ${fmt(p.rollupRows)} rows`}${p.cleanedCount > 0 ? `  deleted ${fmt(p.cleanedCount)} (${fmt(p.deletedRollupRows)} counted)` : ""}${p.cleanedAt ? "  cleaned" : ""}`,
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
      "cleaned",
      "deleted",
      "last_error",
    ],
    ...records.map((r) => [
      r.sourceTable,
      r.date,
      !r.leaseOwner && wasInterrupted(r.lastError) ? `${r.state} (interrupted)` : r.state,
      fmt(r.eventCount),
      String(r.partCount),
      bytes(r.fileSize),
      r.verifiedAt ? "yes" : "no",
      r.cleaned ? "1" : "0",
      fmt(r.cleanedCount),
      r.lastError ?? "",
    ]),
  ]);
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** What `archive` did. */
export function describeArchived(
  table: string,
  date: string,
  store: string,
  out: ArchiveOutcome,
  secs: number,
): string {
  const w = out.written;
  if (!w) {
    const why = out.note
      ? `: ${out.note}`
      : ` (${plural(out.parts.length, "verified part")} already)`;
    return `nothing new to archive for ${table} ${date}${why}`;
  }
  const rate = (w.eventCount / Math.max(secs, 0.001)).toFixed(0);
  return [
    `archived ${fmt(w.eventCount)} rows of ${table} ${date} to ${store}/${w.objectKey}`,
    `  ${bytes(w.fileSize)} ${partFormat(w.objectKey) === "parquet" ? "Parquet" : "gzip"} (${bytes(w.rawSize)} as JSONL), sha256 ${w.sha256}, keys ${w.minId}..${w.maxId}`,
    `  verified; ${rate} rows/s, ${secs.toFixed(1)} s`,
  ].join("\n");
}

/** What `verify` proved. */
export function describeVerified(table: string, date: string, parts: PartRecord[]): string {
  const rows = parts.reduce((n, p) => n + p.eventCount, 0);
  return `verified ${plural(parts.length, "part")} of ${table} ${date}: ${fmt(rows)} rows, bytes and sha256 match`;
}

/** What `rollup` rebuilt. */
export function describeRolledUp(table: string, date: string, parts: PartRecord[]): string {
  const rows = parts.reduce((n, p) => n + (p.rollupRows ?? 0), 0);
  return `rebuilt the rollups of ${plural(parts.length, "part")} of ${table} ${date} from the verified archive: ${fmt(rows)} rows counted, equal to the manifests`;
}

/** What `rollup --all` rebuilt, a line per partition. */
export function describeRolledUpAll(table: string, results: readonly VerifyResult[]): string {
  if (results.length === 0) return `${table}: every archived part has its rollup`;
  return describeVerifiedAll(table, results).replace(
    /verified, (\d+) failed$/,
    "rolled up, $1 failed",
  );
}

/** What `verify --all` found, a line per partition. */
export function describeVerifiedAll(table: string, results: readonly VerifyResult[]): string {
  if (results.length === 0) return `${table}: no archived partitions to verify`;
  const lines = results.map((r) =>
    r.ok
      ? `${r.date}  ok      ${plural(r.parts, "part")}, ${fmt(r.rows)} rows`
      : `${r.date}  FAILED  ${r.error}`,
  );
  const failed = results.filter((r) => !r.ok).length;
  return `${lines.join("\n")}\n${table}: ${plural(results.length, "partition")} verified, ${failed} failed`;
}

/** What `cleanup` did. */
export function describeCleaned(table: string, date: string, out: CleanupOutcome): string {
  const how =
    out.method === "drop-partition"
      ? `dropped its table partition with ${fmt(out.deleted)} rows`
      : `deleted ${fmt(out.deleted)} rows`;
  return out.complete
    ? `cleaned ${table} ${date}: ${how} (${fmt(out.deletedTotal)} in all), 0 archived rows remain; marked cleaned`
    : `stopped at the time budget: deleted ${fmt(out.deleted)} rows this run, ${fmt(out.remaining)} archived rows remain; progress saved, run cleanup again to resume`;
}

/** What `archive --dry-run` found. */
export function describeArchivePlan(table: string, p: ArchivePlan): string {
  const verify = p.verify.length ? `; it would first verify part(s) ${p.verify.join(", ")}` : "";
  if (p.note) return `dry run: archive of ${table} ${p.date} (${p.state}): ${p.note}${verify}`;
  const which = p.after === null ? "every row of the date" : `the rows with keys above ${p.after}`;
  const replaces = p.replaces === null ? "" : `, replacing unverified part ${p.replaces}`;
  return `dry run: archive of ${table} ${p.date} (${p.state}) would write part ${p.part}${replaces}: ${which}, ${fmt(p.rows)} rows, keys ${p.minKey}..${p.maxKey}, then verify it${verify}; nothing was changed`;
}

/** What `cleanup --dry-run` found. */
export function describeCleanupPlan(table: string, p: CleanupPlan): string {
  if (p.refused) return `dry run: cleanup of ${table} ${p.date} (${p.state}): ${p.refused}`;
  if (p.parts.length === 0) {
    return `dry run: cleanup of ${table} ${p.date} (${p.state}): every part is cleaned; nothing to delete`;
  }
  return `dry run: cleanup of ${table} ${p.date} (${p.state}) would compare ${fmt(p.rows)} rows of part(s) ${p.parts.join(", ")} with their archived lines and delete those that match (${fmt(p.deletedBefore)} deleted by earlier runs); nothing was changed`;
}

/** What `restore` did. */
export function describeRestored(table: string, out: RestoreOutcome): string {
  const where = out.into === table ? table : `${out.into} (from ${table}'s archive)`;
  return `restored ${table} ${out.date} into ${where}: ${fmt(out.inserted)} rows inserted from ${out.parts} part(s); ${fmt(out.skipped)} already there (their key present), left as they are`;
}

/** What `convert` did. */
export function describeConverted(table: string, out: ConvertResult): string {
  const parts = (n: number) => `${fmt(n)} part${n === 1 ? "" : "s"}`;
  const lines = [
    `converted ${table} ${out.date} to ${out.format}: ${parts(out.converted)} rewritten and verified, ${bytes(out.bytesBefore)} -> ${bytes(out.bytesAfter)}`,
  ];
  if (out.already) lines.push(`  ${parts(out.already)} already ${out.format}`);
  if (out.kept) lines.push(`  ${parts(out.kept)} kept as they were (see the warnings)`);
  return lines.join("\n");
}

/** One date of `backlog`. */
export function describeBacklogDate(
  date: string,
  complete: boolean,
  rows: number,
  parts: number,
  deleted: number,
): string {
  return `${date}: ${complete ? "cleaned" : "cleaning (budget reached, resumes next run)"}; archived ${fmt(rows)} rows in ${parts} part(s), deleted ${fmt(deleted)} this run`;
}
