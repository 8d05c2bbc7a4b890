import type { Codec } from "../../core/bytes/codec.js";
import type { RowPacer } from "../../core/pacer.js";
import type { Semaphore } from "../../core/semaphore.js";
import type { SqlSource } from "../../core/sql/source.js";
import type { TraceJobs } from "../../core/trace/trace-jobs.js";
import type { RequestLog } from "../env.js";

/** What the trace routes are built with (node/serve.ts and the tests wire them). */
export interface TraceOptions {
  /** The MES database, with a pool of its own so slow trace queries never starve the rest. */
  source: SqlSource;
  /** DB_SLOW_MAX_CONCURRENT: trace requests reading the database at once. */
  slots: Semaphore;
  /** TRACE_EVENTS_CID_LIMIT: containers allowed for query_tool / query_tool_reverse. */
  cidLimit: number;
  /** Statements in flight per domain (two by default). */
  workersPerDomain: number;
  fetchSize: number;
  maxBodyBytes: number;
  /** Full collections every so many rows streamed, by all trace requests (TRACE_GC_EVERY_ROWS). */
  gc?: RowPacer;
  /**
   * TRACE_IDLE_TIMEOUT_MS: longest a streamed response may wait for its client to take the
   * next chunk before it is cut and its statements stopped (default 30 s).
   */
  idleTimeoutMs?: number;
  /** Aborted when the service stops: a client that is not reading is not waited for. */
  stopping?: AbortSignal;
  /** Why the process is too full to take a trace request now, or null. */
  memoryGuard?: () => string | null;
  /** Background trace jobs (POST /api/trace/jobs): results and statuses in the object store. */
  jobs?: TraceJobs;
  /** Decompresses a stored job result for a client that does not take gzip. */
  codec?: Codec;
  log?: RequestLog;
}
