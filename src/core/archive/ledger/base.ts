import { LeaseLostError, SluiceError } from "../../errors.js";
import type { BoundStatement, SqlExecutor, SqlSource } from "../../sql/source.js";
import type { Lease } from "./lease.js";
import { type LedgerTables, ledgerIsCurrent, ledgerTables, migrateLedger } from "./migrations.js";
import {
  type PartRecord,
  type PartitionFields,
  type PartitionRecord,
  fieldColumns,
  num,
  strOrNull,
  toPart,
  toPartition,
} from "./records.js";
import { type PartitionState, statesBefore } from "./states.js";

export interface LedgerOptions {
  /** How long a lease lasts without renewal. */
  leaseMs?: number;
  now?: () => number;
  /**
   * Whether a lease holder is known to be dead (same host, its pid gone), so that a rerun
   * after a crash need not wait for the lease to expire. Runtimes without processes omit it.
   */
  isHolderGone?: (holder: string) => boolean;
  /** The schema (MySQL: database) the ledger's tables live in; unset: the connection's own. */
  schema?: string;
}

export const DEFAULT_LEASE_MS = 120_000;

/**
 * What every ledger write stands on: the database, the clock, and the fence that makes a
 * write do nothing for a holder whose lease was taken; and the ledger's reads.
 */
export class LedgerBase {
  readonly leaseMs: number;

  protected readonly now: () => number;

  protected readonly isHolderGone: (holder: string) => boolean;

  /** The ledger's tables, as SQL names. */
  protected readonly t: LedgerTables;

  constructor(
    protected readonly db: SqlSource,
    options: LedgerOptions = {},
  ) {
    this.leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    this.now = options.now ?? Date.now;
    this.isHolderGone = options.isHolderGone ?? (() => false);
    this.t = ledgerTables(db.dialect, options.schema ?? null);
  }

  /** The ledger's tables, as SQL names (the stats read the parts and rollups in their queries). */
  get tables(): LedgerTables {
    return this.t;
  }

  protected get d() {
    return this.db.dialect;
  }

  protected get date() {
    return this.d.quote("date");
  }

  protected iso(): string {
    return new Date(this.now()).toISOString();
  }

  /**
   * `EXISTS` true only while `lease` is held (and, given `state`, the partition is in it):
   * appended to a statement that must do nothing for a holder whose lease was taken.
   */
  protected ours(lease: Lease, state?: PartitionState): BoundStatement {
    const inState = state ? " AND m.state = ?" : "";
    return {
      sql: `EXISTS (SELECT 1 FROM ${this.t.meta} m WHERE m.source_table = ? AND m.${this.date} = ? AND m.lease_owner = ?${inState})`,
      params: [lease.table, lease.date, lease.owner, ...(state ? [state] : [])],
    };
  }

  /** Fails unless `lease` is held, on `db`: first in a transaction that must write nothing for a stale holder. */
  protected async mustHold(lease: Lease, db: SqlExecutor): Promise<void> {
    const [held] = await db.query(
      `SELECT 1 AS held FROM ${this.t.meta} WHERE source_table = ? AND ${this.date} = ? AND lease_owner = ?`,
      [lease.table, lease.date, lease.owner],
    );
    if (!held) throw new LeaseLostError(lease.table, lease.date);
  }

  /** An UPDATE of one part's row that happens only while the lease is ours. */
  protected async updatePart(
    lease: Lease,
    part: number,
    sets: string,
    params: readonly unknown[],
    db: SqlExecutor = this.db,
  ): Promise<void> {
    const fence = this.ours(lease);
    const res = await db.execute(
      `UPDATE ${this.t.parts} SET ${sets} WHERE source_table = ? AND ${this.date} = ? AND part = ? AND ${fence.sql}`,
      [...params, lease.table, lease.date, part, ...fence.params],
    );
    // Stryker disable next-line StringLiteral: the error's words
    if (res.changes !== 1) throw await this.whyNot(lease, `update part ${part}`);
  }

  /** The error for a fenced write that changed nothing: the lease went, or the part did. */
  protected async whyNot(lease: Lease, what: string): Promise<SluiceError> {
    const rec = await this.get(lease.table, lease.date);
    if (rec?.leaseOwner !== lease.owner) return new LeaseLostError(lease.table, lease.date);
    return new SluiceError("failed", `${lease.table} ${lease.date}: could not ${what}`);
  }

  /** The partition's totals, recomputed from its parts, as SET assignments and parameters. */
  protected totals(lease: Lease): BoundStatement {
    const of = (expr: string) =>
      `(SELECT ${expr} FROM ${this.t.parts} p WHERE p.source_table = ? AND p.${this.date} = ?)`;
    const cols: [string, string][] = [
      ["part_count", "COUNT(*)"],
      ["event_count", "COALESCE(SUM(p.event_count), 0)"],
      ["raw_size", "COALESCE(SUM(p.raw_size), 0)"],
      ["file_size", "COALESCE(SUM(p.file_size), 0)"],
      ["min_id", "MIN(p.min_id)"],
      ["max_id", "MAX(p.max_id)"],
      ["cleaned_count", "COALESCE(SUM(p.cleaned_count), 0)"],
    ];
    return {
      sql: cols.map(([c, e]) => `${c} = ${of(e)}`).join(", "),
      params: cols.flatMap(() => [lease.table, lease.date]),
    };
  }

  async get(table: string, date: string): Promise<PartitionRecord | null> {
    const rows = await this.db.query(
      `SELECT * FROM ${this.t.meta} WHERE source_table = ? AND ${this.date} = ?`,
      [table, date],
    );
    return rows[0] ? toPartition(rows[0]) : null;
  }

  async list(table?: string): Promise<PartitionRecord[]> {
    const rows = table
      ? await this.db.query(
          `SELECT * FROM ${this.t.meta} WHERE source_table = ? ORDER BY ${this.date}`,
          [table],
        )
      : await this.db.query(`SELECT * FROM ${this.t.meta} ORDER BY source_table, ${this.date}`);
    return rows.map(toPartition);
  }

  /**
   * When a part of `table` was last archived, and last finished cleaning (ISO), or null; and
   * the rows its parts' rollups count.
   */
  async lastDone(
    table: string,
  ): Promise<{ archivedAt: string | null; cleanedAt: string | null; rollupRows: number }> {
    const [r] = await this.db.query(
      `SELECT MAX(archived_at) AS a, MAX(cleaned_at) AS c, SUM(rollup_rows) AS r FROM ${this.t.parts} WHERE source_table = ?`,
      [table],
    );
    return { archivedAt: strOrNull(r?.a), cleanedAt: strOrNull(r?.c), rollupRows: num(r?.r) };
  }

  /** The rows each part's rollup counts, summed from its counts (a part without any: absent). */
  async rollupTotals(table: string, date: string): Promise<Map<number, number>> {
    const rows = await this.db.query(
      `SELECT part, SUM(views) AS n FROM ${this.t.rollups} WHERE source_table = ? AND ${this.date} = ? GROUP BY part`,
      [table, date],
    );
    return new Map(rows.map((r) => [num(r.part), num(r.n)]));
  }

  /** Every part of `table`, by date and part. */
  async partsOf(table: string): Promise<PartRecord[]> {
    const rows = await this.db.query(
      `SELECT * FROM ${this.t.parts} WHERE source_table = ? ORDER BY ${this.date}, part`,
      [table],
    );
    return rows.map(toPart);
  }

  async parts(table: string, date: string, db: SqlExecutor = this.db): Promise<PartRecord[]> {
    const rows = await db.query(
      `SELECT * FROM ${this.t.parts} WHERE source_table = ? AND ${this.date} = ? ORDER BY part`,
      [table, date],
    );
    return rows.map(toPart);
  }

  /**
   * @internal Move the partition to `to`, setting `fields` too, if it is ours and in a state
   * that may move there. Runs on `db` so that it can share a transaction with a delete.
   */
  async move(
    lease: Lease,
    to: PartitionState,
    fields: PartitionFields = {},
    db: SqlExecutor = this.db,
  ): Promise<void> {
    const from = statesBefore(to);
    const columns = fieldColumns(fields);
    const sets = columns.map(([c]) => `${c} = ?`);
    const res = await db.execute(
      `UPDATE ${this.t.meta} SET state = ?, updated_at = ?${sets.length ? `, ${sets.join(", ")}` : ""}
       WHERE source_table = ? AND ${this.date} = ? AND lease_owner = ? AND state IN (${from.map(() => "?").join(", ")})`,
      [to, this.iso(), ...columns.map(([, v]) => v), lease.table, lease.date, lease.owner, ...from],
    );
    if (res.changes === 1) return;
    const rec = await this.get(lease.table, lease.date);
    if (rec?.leaseOwner !== lease.owner) throw new LeaseLostError(lease.table, lease.date);
    throw new SluiceError(
      "failed",
      `${lease.table} ${lease.date}: cannot move from '${rec.state}' to '${to}'`,
    );
  }

  /** Create or upgrade the ledger tables. Safe to run from several processes at once. */
  async migrate(): Promise<void> {
    await migrateLedger(this.db, this.t, () => this.iso());
  }

  /** Whether the ledger's tables exist at the latest version; creates nothing. */
  isCurrent(): Promise<boolean> {
    return ledgerIsCurrent(this.db, this.t);
  }
}
