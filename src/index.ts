/**
 * sluice as a library. Open a table's context from settings (the same env names as the CLI),
 * then archive, verify, clean up and restore dates under an owner of your own; or stream any
 * query's rows in flat memory and write them as JSON as they arrive.
 */
export { type Config, loadConfig } from "./node/config.js";
export { type NodeContext, openContext } from "./node/context.js";
export { openSource } from "./node/open.js";
export {
  type ArchiveOutcome,
  archiveDate,
  cleanupDate,
  restoreDate,
  verifyAll,
  verifyDate,
} from "./core/archive/jobs.js";
export { type PartitionStatus, partitionStatus } from "./core/archive/partition-status.js";
export type { CleanupOptions, CleanupOutcome } from "./core/archive/cleanup.js";
export type { Row, SqlSource } from "./core/sql/source.js";
export type { ObjectStore } from "./core/store.js";
export { readSqlMaterialised, readSqlStreaming } from "./core/trace/readers.js";
export { traceJsonStream, traceNdjsonStream } from "./core/json/trace-stream.js";
export { StreamedArray, jsonObjectStream } from "./core/json/object-stream.js";
export * from "./core/errors.js";
