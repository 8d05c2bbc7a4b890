import { BadInputError } from "../errors.js";
import { checkIdentifier, checkTableName } from "../sql/ident.js";
import type { SqlSource } from "../sql/source.js";
import { checkTimeZone } from "../time-zones.js";
import { type DayColumn, TEXT_DATE, dayColumnOf } from "./days.js";

/** Which table is archived, by which partition column, paginated by which key. From config. */
export interface PartitionSpec {
  table: string;
  /** Holds the partition, a day (`event_date` by default). */
  partitionColumn: string;
  /** An ascending integer key: pages are read with `key > last` (never OFFSET). */
  keyColumn: string;
  /** The zone whose midnights bound a day of a timestamp partition column (default UTC). */
  timeZone?: string;
  /** How the partition column holds its day, from its type (checkSpec); a text date if unset. */
  day?: DayColumn;
  /**
   * The column the stats count rows by (`path`): each verified part keeps its rows counted by
   * it (archive/rollup.ts). Kept by checkSpec only on a table partitioned by date that has it.
   */
  rollupColumn?: string;
  /** How new parts are written (default gzip JSONL); existing parts keep theirs. */
  format?: PartFormat;
  /** Rows per Parquet row group. */
  rowGroupRows?: number;
}

export type PartFormat = "jsonl" | "parquet";

/** The extension of a part object of each format. */
const EXTENSIONS: Record<PartFormat, string> = { jsonl: ".jsonl.gz", parquet: ".parquet" };

/** The format of a stored part, from its object key. */
export function partFormat(objectKey: string): PartFormat {
  return objectKey.endsWith(EXTENSIONS.parquet) ? "parquet" : "jsonl";
}

/** How the spec's partition column holds its day. */
export const dayColumn = (spec: PartitionSpec): DayColumn => spec.day ?? TEXT_DATE;

export const DEFAULT_SPEC: PartitionSpec = {
  table: "traffic_events",
  partitionColumn: "event_date",
  keyColumn: "id",
};

/**
 * Check the spec's names are identifiers and exist in the source, and learn from the
 * partition column's type how it holds a day; a clear error if anything does not fit.
 */
export async function checkSpec(source: SqlSource, spec: PartitionSpec): Promise<PartitionSpec> {
  checkTableName("table", spec.table);
  checkIdentifier("partition column", spec.partitionColumn);
  checkIdentifier("key column", spec.keyColumn);
  const timeZone = checkTimeZone(spec.timeZone ?? "UTC");
  const columns = await source.columnInfo(spec.table);
  if (!columns) {
    throw new BadInputError(`table '${spec.table}' does not exist in ${source.describe()}`);
  }
  const named = (col: string) => columns.find((c) => c.name.toLowerCase() === col.toLowerCase());
  for (const col of [spec.partitionColumn, spec.keyColumn]) {
    if (!named(col)) {
      throw new BadInputError(
        `column '${col}' is not in table '${spec.table}' (it has: ${columns.map((c) => c.name).join(", ")})`,
      );
    }
  }
  const partition = named(spec.partitionColumn) as { name: string; type: string };
  const day = dayColumnOf(source.dialect.name, partition.name, partition.type, timeZone);
  const counted = spec.rollupColumn ? named(spec.rollupColumn) : undefined;
  const { rollupColumn: _asked, ...rest } = spec;
  return {
    ...rest,
    timeZone,
    day,
    ...(counted && day.kind === "date" ? { rollupColumn: counted.name } : {}),
  };
}

/**
 * Object keys of a partition's parts: `<table>/date=YYYY-MM-DD/part-0000-<attempt>.jsonl.gz`
 * (or `.parquet`).
 * Every upload has an attempt of its own, so that a writer whose lease ran out while it
 * uploaded can never overwrite an object the ledger has recorded.
 */
export function partitionPrefix(spec: PartitionSpec, date: string): string {
  return `${spec.table}/date=${date}`;
}

function partBase(spec: PartitionSpec, date: string, part: number, attempt: string): string {
  return `${partitionPrefix(spec, date)}/part-${String(part).padStart(4, "0")}-${attempt}`;
}

export function partObjectKey(
  spec: PartitionSpec,
  date: string,
  part: number,
  attempt: string,
): string {
  return `${partBase(spec, date, part, attempt)}${EXTENSIONS[spec.format ?? "jsonl"]}`;
}

export function partManifestKey(
  spec: PartitionSpec,
  date: string,
  part: number,
  attempt: string,
): string {
  return `${partBase(spec, date, part, attempt)}.manifest.json`;
}

/** The manifest beside an object written by {@link partObjectKey}. */
export function manifestKeyOf(objectKey: string): string {
  return objectKey.replace(/\.(jsonl\.gz|parquet)$/, ".manifest.json");
}

/** A fresh attempt id: 8 hex digits. */
export function newAttempt(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
