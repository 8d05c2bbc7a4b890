/** Parquet parts that decode back to exactly the lines of their JSONL parts. */
export {
  type ColumnKind,
  type PlannedColumn,
  PlanError,
  planColumns,
  kindOf,
  FORMAT_KEY,
  FORMAT_VERSION,
  RAW_JSON_KEY,
} from "./schema.js";
export { DEFAULT_ROW_GROUP_ROWS } from "./schema.js";
export {
  encodeParquet,
  encodeParquetStream,
  type ParquetEncodeOptions,
  type ParquetTotals,
} from "./encode.js";
export { NotExactError } from "./values.js";
export { utf8Length } from "./line.js";
export {
  decodeParquetLines,
  bytesAsyncBuffer,
  ParquetPartError,
  type AsyncBuffer,
} from "./decode.js";
