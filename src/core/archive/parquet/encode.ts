import { ByteWriter, ParquetWriter } from "hyparquet-writer";
import {
  type RenderKind,
  type StoredValue,
  keyPrefixes,
  renderKindOf,
  renderValue,
  unsafeInteger,
  utf8Length,
} from "./line.js";
import {
  type ColumnKind,
  DEFAULT_ROW_GROUP_ROWS,
  FORMAT_KEY,
  FORMAT_VERSION,
  type PlannedColumn,
  QUOTED_BIG_INTS_KEY,
  RAW_JSON_KEY,
} from "./schema.js";
import { NotExactError, exactValues, valuesOf } from "./values.js";

export interface ParquetEncodeOptions {
  /** Rows per row group: what the encoder holds at most (default 5,000). */
  rowGroupRows?: number;
}

/** What the manifest needs of a part, final once its bytes have all been read. */
export interface ParquetTotals {
  rows: number;
  /** The JSONL size of the same lines: UTF-8 bytes plus one newline each. */
  rawBytes: number;
  rowGroups: number;
  /** Bytes of the Parquet file emitted. */
  bytes: number;
}

/**
 * Encodes the lines of one part (pages of lines, in order) as a Parquet file, yielding its bytes
 * as each row group is encoded and the footer at the end; `totals` is final when the iteration
 * ends. Throws {@link NotExactError} on the first line that would not decode to itself.
 */
export function encodeParquet(
  pages: AsyncIterable<readonly string[]> | Iterable<readonly string[]>,
  plan: readonly PlannedColumn[],
  options: ParquetEncodeOptions = {},
): { chunks: AsyncGenerator<Uint8Array>; totals: ParquetTotals } {
  const totals: ParquetTotals = { rows: 0, rawBytes: 0, rowGroups: 0, bytes: 0 };
  return {
    chunks: chunksOf(pages, plan, options.rowGroupRows ?? DEFAULT_ROW_GROUP_ROWS, totals),
    totals,
  };
}

/**
 * {@link encodeParquet} as a Web stream, pulled: a row group is encoded only when read.
 * `failure()` is the encoder's own error once the stream has failed with it (a consumer such
 * as an upload may report the broken body in its own words).
 */
export function encodeParquetStream(
  pages: AsyncIterable<readonly string[]> | Iterable<readonly string[]>,
  plan: readonly PlannedColumn[],
  options: ParquetEncodeOptions = {},
): { stream: ReadableStream<Uint8Array>; totals: ParquetTotals; failure: () => unknown } {
  const { chunks, totals } = encodeParquet(pages, plan, options);
  let failed: unknown;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let next: IteratorResult<Uint8Array>;
      try {
        next = await chunks.next();
      } catch (err) {
        failed = err;
        throw err;
      }
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    async cancel() {
      await chunks.return(undefined);
    },
  });
  return { stream, totals, failure: () => failed };
}

async function* chunksOf(
  pages: AsyncIterable<readonly string[]> | Iterable<readonly string[]>,
  plan: readonly PlannedColumn[],
  groupRows: number,
  totals: ParquetTotals,
): AsyncGenerator<Uint8Array> {
  if (!(Number.isInteger(groupRows) && groupRows > 0)) {
    throw new RangeError(`rowGroupRows must be a positive integer, not ${groupRows}`);
  }
  const names = plan.map((c) => c.name);
  const prefixes = keyPrefixes(names);
  // Decimals: undefined until the part's first non-null value says number (raw) or string.
  const alt: (boolean | undefined)[] = plan.map(() => undefined);
  const out: Uint8Array[] = [];
  const writer: ByteWriter & { flush?: () => void } = new ByteWriter(1 << 16);
  // Each row group leaves the writer as soon as it is encoded, so it holds one group at most.
  const flushBytes = () => {
    out.push(new Uint8Array(writer.buffer.slice(0, writer.index)));
    writer.index = 0;
  };
  writer.flush = flushBytes;
  writer.finish = flushBytes;
  let pq: ParquetWriter | undefined;
  let columns: StoredValue[][] = plan.map(() => []);
  let n = 0;

  const open = () =>
    new ParquetWriter({
      writer,
      schema: schemaOf(plan),
      codec: "SNAPPY",
      statistics: true,
      createdBy: "sluice",
    });
  const flushGroup = () => {
    if (n === 0) return;
    pq ??= open();
    pq.write({
      columnData: plan.map((c, i) => ({ name: c.name, data: columns[i] as StoredValue[] })),
      rowGroupSize: n,
    });
    totals.rowGroups++;
    columns = plan.map(() => []);
    n = 0;
  };
  const drain = function* () {
    for (const chunk of out.splice(0)) {
      totals.bytes += chunk.byteLength;
      yield chunk;
    }
  };

  /** The line's values into the columns; true when that fills the row group. */
  const take = (line: string, values: readonly StoredValue[]): boolean => {
    for (let i = 0; i < plan.length; i++)
      (columns[i] as StoredValue[]).push(values[i] as StoredValue);
    totals.rows++;
    totals.rawBytes += utf8Length(line) + 1;
    return ++n === groupRows;
  };

  const scratch: StoredValue[] = plan.map(() => null);
  for await (const page of pages) {
    for (const line of page) {
      if (exactValues(line, plan, prefixes, scratch)) {
        if (take(line, scratch)) {
          flushGroup();
          yield* drain();
        }
        continue;
      }
      const number = totals.rows + 1;
      const values = valuesOf(line, number, plan, names, alt);
      // The roundtrip check: the line as the decoder will write it must be the line.
      let again = "";
      for (let i = 0; i < plan.length; i++) {
        const c = plan[i] as PlannedColumn;
        const kind = renderKindOf(c.kind, alt[i] === true);
        again += `${prefixes[i]}${renderValue(kind, values[i] as StoredValue)}`;
      }
      again += plan.length ? "}" : "{}";
      if (again !== line) throw new NotExactError(number, undefined, line, again);
      if (take(line, values)) {
        flushGroup();
        yield* drain();
      }
    }
  }
  flushGroup();
  // The schema is fixed by the first row group; an empty part still needs one.
  pq ??= open();
  pq.kvMetadata = [
    { key: FORMAT_KEY, value: FORMAT_VERSION },
    { key: RAW_JSON_KEY, value: namesWhere(plan, alt, (k) => k === "json" || k === "decimal") },
    { key: QUOTED_BIG_INTS_KEY, value: namesWhere(plan, alt, (k) => k === "int64") },
  ];
  pq.finish();
  yield* drain();
}

function namesWhere(
  plan: readonly PlannedColumn[],
  alt: readonly (boolean | undefined)[],
  kind: (k: PlannedColumn["kind"]) => boolean,
): string {
  return JSON.stringify(plan.filter((c, i) => alt[i] === true && kind(c.kind)).map((c) => c.name));
}

type SchemaElement = ConstructorParameters<typeof ParquetWriter>[0]["schema"][number];

/**
 * The file schema: every column OPTIONAL (a null is always possible in a line). The physical
 * type follows the plan alone, so the part's later choices (quoting, raw JSON) cannot change
 * a schema the first row group already used.
 */
function schemaOf(plan: readonly PlannedColumn[]): SchemaElement[] {
  const physical: Record<ColumnKind, SchemaElement["type"]> = {
    int64: "INT64",
    boolean: "BOOLEAN",
    double: "DOUBLE",
    string: "BYTE_ARRAY",
    json: "BYTE_ARRAY",
    decimal: "BYTE_ARRAY",
  };
  return [
    { name: "root", num_children: plan.length },
    ...plan.map((c): SchemaElement => {
      const type = physical[c.kind];
      return type === "BYTE_ARRAY"
        ? { name: c.name, type, converted_type: "UTF8", repetition_type: "OPTIONAL" }
        : { name: c.name, type, repetition_type: "OPTIONAL" };
    }),
  ];
}
