/** Written beside every part; verification checks the object against it and the ledger. */
export interface Manifest {
  format: "sluice-jsonl-gzip/1";
  table: string;
  partitionColumn: string;
  keyColumn: string;
  /** The lines' members in order (the key first) with their database types. */
  columns: { name: string; type: string }[];
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
