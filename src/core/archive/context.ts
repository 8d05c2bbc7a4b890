import type { Codec } from "../bytes/codec.js";
import type { Sha256Factory } from "../bytes/hash.js";
import type { RowPacer } from "../pacer.js";
import type { ProgressListener } from "../progress.js";
import type { SqlSource } from "../sql/source.js";
import type { ObjectStore } from "../store.js";
import type { Ledger } from "./ledger/ledger.js";
import type { PartitionSpec } from "./partition.js";

/** What every archive job works with: the hot store, the object store, the ledger, the spec. */
export interface JobContext {
  source: SqlSource;
  store: ObjectStore;
  ledger: Ledger;
  spec: PartitionSpec;
  /** Rows per page read from the source (DB_SLOW_FETCHMANY_SIZE). */
  fetchSize?: number;
  sha256?: Sha256Factory;
  codec?: Codec;
  onProgress?: ProgressListener;
  /** Told what a person should know that is no failure (a part written as JSONL, not Parquet). */
  onWarning?: (message: string) => void;
  signal?: AbortSignal;
  /** Told of the rows a Parquet part encodes or decodes, to pace garbage collection (Node). */
  pacer?: RowPacer;
}
