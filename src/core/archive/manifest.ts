import type { Column } from "../sql/source.js";
import type { DayColumn } from "./days.js";
import type { PartRecord } from "./ledger/records.js";
import { type PartitionSpec, dayColumn, partFormat } from "./partition.js";

/**
 * The manifest written beside every part, as stored: its JSON names are the file format's
 * (`rows`, `bytes`, `minKey` ...), and nothing in the code uses them but the two functions
 * below, which map them to and from a part's own names.
 */
export interface ManifestFile {
  format: "sluice-jsonl-gzip/1" | "sluice-parquet/1";
  table: string;
  partitionColumn: string;
  /**
   * How a row's day was read from the partition column: `date` (equal to the day), or
   * `timestamp` with the zone whose midnights bound the day (`aware`: the column holds instants).
   */
  partition?: DayColumn;
  keyColumn: string;
  /**
   * The lines' members in order (the key first) with their database types, and how a value is
   * written where that is not its own text or JSON value (`base64`, `hex`).
   */
  columns: { name: string; type: string; encoding?: string }[];
  date: string;
  part: number;
  objectKey: string;
  rows: number;
  rawBytes: number;
  bytes: number;
  sha256: string;
  /** sha256 of every `chunkBytes` of the object, in order (the last chunk may be short). */
  chunkBytes: number;
  chunkSha256: string[];
  minKey: number;
  maxKey: number;
  writtenAt: string;
}

/** The facts of a part that its manifest states too. */
export type ManifestFacts = Pick<
  PartRecord,
  "eventCount" | "rawSize" | "fileSize" | "sha256" | "minId" | "maxId" | "chunkSha256"
>;

/** The manifest text of a part. */
export function manifestText(
  part: PartRecord,
  spec: PartitionSpec,
  columns: readonly Column[],
  encoding: (type: string) => string | undefined = () => undefined,
): string {
  const file: ManifestFile = {
    format: partFormat(part.objectKey) === "parquet" ? "sluice-parquet/1" : "sluice-jsonl-gzip/1",
    table: spec.table,
    partitionColumn: spec.partitionColumn,
    partition: dayColumn(spec),
    keyColumn: spec.keyColumn,
    columns: columns.map((c) => {
      const how = encoding(c.type);
      return how ? { name: c.name, type: c.type, encoding: how } : { name: c.name, type: c.type };
    }),
    date: part.date,
    part: part.part,
    objectKey: part.objectKey,
    rows: part.eventCount,
    rawBytes: part.rawSize,
    bytes: part.fileSize,
    sha256: part.sha256,
    chunkBytes: part.chunkBytes ?? 0,
    chunkSha256: part.chunkSha256?.match(/.{64}/g) ?? [],
    minKey: part.minId,
    maxKey: part.maxId,
    writtenAt: part.archivedAt,
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}

/** What a stored manifest says of its part, in the part's names; throws on what is not JSON. */
export function manifestFacts(text: string): ManifestFacts {
  const m = JSON.parse(text) as Partial<ManifestFile>;
  return {
    eventCount: m.rows as number,
    rawSize: m.rawBytes as number,
    fileSize: m.bytes as number,
    sha256: m.sha256 as string,
    minId: m.minKey as number,
    maxId: m.maxKey as number,
    chunkSha256: m.chunkSha256?.join("") ?? null,
  };
}

/** The column names a stored manifest lists (the lines' members), or null for one without. */
export function manifestColumns(text: string): string[] | null {
  const m = JSON.parse(text) as Partial<ManifestFile>;
  return m.columns?.map((c) => c.name) ?? null;
}
