import { type AsyncBuffer, parquetMetadataAsync, parquetRead } from "hyparquet";
import { type RenderKind, type StoredValue, keyPrefixes, renderValue } from "./line.js";
import { FORMAT_KEY, FORMAT_VERSION, QUOTED_BIG_INTS_KEY, RAW_JSON_KEY } from "./schema.js";

export type { AsyncBuffer } from "hyparquet";

/** A Parquet part this decoder did not write, or whose values do not fit its schema. */
export class ParquetPartError extends Error {
  override readonly name = "ParquetPartError";
}

/** An AsyncBuffer over bytes already in memory (tests, small parts). */
export function bytesAsyncBuffer(bytes: Uint8Array): AsyncBuffer {
  return {
    byteLength: bytes.byteLength,
    slice: (start, end) =>
      bytes.buffer.slice(
        bytes.byteOffset + start,
        bytes.byteOffset + (end ?? bytes.byteLength),
      ) as ArrayBuffer,
  };
}

/**
 * The part's lines, exactly as its JSONL part would hold them (no newline), one batch per row
 * group: memory holds one row group's values at a time. Reads only the ranges it needs.
 */
export async function* decodeParquetLines(file: AsyncBuffer): AsyncGenerator<string[]> {
  const metadata = await parquetMetadataAsync(file);
  const kv = new Map((metadata.key_value_metadata ?? []).map((e) => [e.key, e.value]));
  if (kv.get(FORMAT_KEY) !== FORMAT_VERSION) {
    throw new ParquetPartError(
      `not a sluice part: ${FORMAT_KEY} is ${JSON.stringify(kv.get(FORMAT_KEY) ?? null)}`,
    );
  }
  const rawSet = nameList(kv.get(RAW_JSON_KEY));
  const quotedSet = nameList(kv.get(QUOTED_BIG_INTS_KEY));
  const [root, ...leaves] = metadata.schema;
  if (!root || root.num_children !== leaves.length || leaves.some((l) => l.num_children)) {
    throw new ParquetPartError("nested schema: not a sluice part");
  }
  const names = leaves.map((l) => l.name);
  const kinds = leaves.map((l): RenderKind => {
    if (l.type === "INT64") return quotedSet.has(l.name) ? "int64-quoted" : "int64";
    if (l.type === "BOOLEAN") return "boolean";
    if (l.type === "DOUBLE") return "double";
    if (l.type === "BYTE_ARRAY" && l.converted_type === "UTF8")
      return rawSet.has(l.name) ? "raw" : "string";
    throw new ParquetPartError(`column '${l.name}' has type ${l.type}: not a sluice part`);
  });
  const prefixes = keyPrefixes(names);
  let start = 0;
  for (const group of metadata.row_groups) {
    const end = start + Number(group.num_rows);
    let rows: StoredValue[][] = [];
    await parquetRead({
      file,
      metadata,
      rowStart: start,
      rowEnd: end,
      rowFormat: "array",
      onComplete: (r) => {
        rows = r as StoredValue[][];
      },
    });
    if (rows.length !== end - start) {
      throw new ParquetPartError(
        `row group at row ${start}: ${rows.length} rows, footer says ${end - start}`,
      );
    }
    const lines = new Array<string>(rows.length);
    for (let r = 0; r < rows.length; r++) {
      const row = rows[r] as StoredValue[];
      let line = "";
      for (let i = 0; i < kinds.length; i++) {
        const text = renderValue(kinds[i] as RenderKind, row[i] as StoredValue);
        if (text === undefined) {
          throw new ParquetPartError(
            `row ${start + r + 1}, column '${names[i]}': a value its type cannot hold`,
          );
        }
        line += `${prefixes[i]}${text}`;
      }
      lines[r] = kinds.length ? `${line}}` : "{}";
    }
    rows = [];
    start = end;
    yield lines;
  }
  if (BigInt(start) !== BigInt(metadata.num_rows)) {
    throw new ParquetPartError(`row groups hold ${start} rows, footer says ${metadata.num_rows}`);
  }
}

/** A metadata value that must be a JSON array of column names. */
function nameList(text: string | undefined): Set<string> {
  let list: unknown;
  try {
    list = JSON.parse(text ?? "");
  } catch {
    list = undefined;
  }
  if (!Array.isArray(list) || list.some((r) => typeof r !== "string")) {
    throw new ParquetPartError(`metadata ${JSON.stringify(text)} is not a list of column names`);
  }
  return new Set(list as string[]);
}
