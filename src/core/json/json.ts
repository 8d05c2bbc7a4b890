/**
 * Incremental writers for the trace API's responses: the seed's JSON shape
 * `{"results":{"<domain>":{"data":[...],"count":N},...}}` and an NDJSON variant, written
 * batch by batch as the database cursors yield rows, so that no domain's result is ever held
 * whole. Runtime-free: Web Streams and TextEncoder only.
 *
 * Backpressure: the streams are pull-based. A batch is read from a source only when the
 * consumer has taken what was written before (`highWaterMark` chunks queued ahead, default 1),
 * so the writer is at most one batch ahead of its consumer and a slow client stops the
 * database cursor. Each non-empty batch becomes one chunk.
 *
 * Cancellation: cancelling the stream (client gone) calls `return()` on the source iterator
 * being read (an async generator's `finally` runs, a cursor closes) and on sources not yet
 * started that are iterators themselves; nothing further is read.
 *
 * Errors: when a source throws mid-stream (or a row cannot be serialised, or the trailer
 * fails), the stream errors. Part of the body has usually been sent by then, with a 200
 * status: the HTTP layer cuts the connection, and the body that ends without its closing
 * braces (JSON) or without the domain's `"end":true` line (NDJSON) is what tells the client
 * that the response is incomplete. There is no in-band error record.
 */
import type { Row } from "../sql/source.js";

/** The rows of one domain, in batches as a cursor yields them (an array is fine for tests). */
export type RowBatches = AsyncIterable<Row[]> | Iterable<Row[]>;

/**
 * The domains, written one after another in this order: an object (its key order), a Map,
 * or `[name, batches]` pairs. Prefer pairs or a Map when a name could look like an integer
 * (an object lists those keys first).
 */
export type TraceDomains = Record<string, RowBatches> | Iterable<readonly [string, RowBatches]>;

export interface TraceStreamOptions {
  /**
   * Top-level fields written after "results" once every domain is done (JSON), or as a last
   * line `{"trailer":{...}}` (NDJSON): e.g. a pareto summed while the rows streamed. Called
   * once, after the last domain; a key "results" is refused (it would be a duplicate).
   */
  trailer?: () => Promise<Record<string, unknown>> | Record<string, unknown>;
  /** Chunks (one per batch) queued ahead of the consumer. Default 1; 0 reads only on demand. */
  highWaterMark?: number;
}

/**
 * `{"results":{"<domain>":{"data":[row,...],"count":N},...}}` (then the trailer's fields),
 * written as batches arrive. Rows keep their key order; values follow `jsonText`.
 */
export function traceJsonStream(
  domains: TraceDomains,
  options: TraceStreamOptions = {},
): ReadableStream<Uint8Array> {
  return traceStream(domains, options, JSON_FORMAT);
}

/**
 * The same rows as NDJSON: `{"domain":"<d>",...row}` per row, then after each domain's rows
 * `{"domain":"<d>","count":N,"end":true}`, and `{"trailer":{...}}` last when there is a
 * trailer. A row column named "domain" would repeat the key (parsers keep the row's value).
 */
export function traceNdjsonStream(
  domains: TraceDomains,
  options: TraceStreamOptions = {},
): ReadableStream<Uint8Array> {
  return traceStream(domains, options, NDJSON_FORMAT);
}

/**
 * JSON text of a value with the trace API's rules, at any depth: NaN, Infinity and undefined
 * become null; a bigint becomes a number when it is a safe integer, else a string; a Date
 * its ISO string (an invalid Date null); everything else as JSON.stringify does it.
 */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, replacer) ?? "null";
}

const encoder = new TextEncoder();
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** JSON.stringify already writes NaN/Infinity as null and calls Date's toJSON. */
function replacer(_key: string, value: unknown): unknown {
  if (value === undefined) return null;
  if (typeof value === "bigint") {
    return value >= -MAX_SAFE && value <= MAX_SAFE ? Number(value) : value.toString();
  }
  return value;
}

/**
 * Whether plain JSON.stringify could get a row wrong (drop an undefined, throw on a bigint,
 * somewhere inside a nested value). Most rows are strings, numbers, nulls and Dates, and go
 * through JSON.stringify without a replacer, which is much faster.
 */
function needsReplacer(row: Row): boolean {
  for (const key in row) {
    const v = row[key];
    if (v === undefined || typeof v === "bigint") return true;
    if (typeof v === "object" && v !== null && !(v instanceof Date)) return true;
  }
  return false;
}

function rowsText(rows: Row[]): string {
  for (const row of rows) {
    if (needsReplacer(row)) return JSON.stringify(rows, replacer);
  }
  return JSON.stringify(rows);
}

function rowText(row: Row): string {
  const text = needsReplacer(row) ? JSON.stringify(row, replacer) : JSON.stringify(row);
  if (typeof text !== "string" || text.charCodeAt(0) !== 0x7b) {
    throw new TypeError(`a row must be an object; got ${text}`);
  }
  return text;
}

/**
 * Encodes text into one scratch buffer it reuses (grown to the largest batch, then kept), and
 * hands each chunk out as an exact-size copy: a chunk given to a stream may be held by the
 * consumer (a socket's write queue) after the next one is written, so it cannot be a view of
 * the scratch. Measured: as fast as TextEncoder.encode of the batch's text, and NDJSON lines
 * go straight in without being joined into a batch-sized string first.
 */
class ChunkEncoder {
  buf = new Uint8Array(1 << 16);
  used = 0;

  write(text: string): void {
    this.reserve(text.length);
    let rest = text;
    for (;;) {
      const { read, written } = encoder.encodeInto(rest, this.buf.subarray(this.used));
      this.used += written;
      if (read === rest.length) return;
      rest = rest.slice(read);
      this.reserve(rest.length * 3);
    }
  }

  bytes(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.used);
    this.used += bytes.length;
  }

  /**
   * `text`, a JSON array "[a,b]", as items of an array being written: its "[" opens the array
   * (`first`) or becomes ",", and its "]" is dropped (the writer closes the array at its end).
   */
  arrayItems(text: string, first: boolean): void {
    const at = this.used;
    this.write(text);
    this.used -= 1;
    if (!first) this.buf[at] = COMMA;
  }

  byte(b: number): void {
    this.reserve(1);
    this.buf[this.used++] = b;
  }

  take(): Uint8Array {
    const out = this.buf.slice(0, this.used);
    this.used = 0;
    return out;
  }

  release(): void {
    this.buf = new Uint8Array(0);
    this.used = 0;
  }

  private reserve(n: number): void {
    if (this.used + n <= this.buf.length) return;
    const bigger = new Uint8Array(Math.max(this.used + n, this.buf.length * 2));
    bigger.set(this.buf.subarray(0, this.used));
    this.buf = bigger;
  }
}

/** What differs between the JSON and the NDJSON writers. */
interface Format {
  open: string;
  domainStart(name: string, index: number): string;
  /** Write a non-empty batch; `first` when it is the domain's first. */
  batch(out: ChunkEncoder, name: string, rows: Row[], first: boolean): void;
  domainEnd(name: string, count: number): string;
  close(trailer: Record<string, unknown> | undefined): string;
}

const COMMA = 0x2c;
const NEWLINE = 0x0a;
const CLOSE_BRACE = 0x7d;

const JSON_FORMAT: Format = {
  open: '{"results":{',
  domainStart: (name, index) => `${index > 0 ? "," : ""}${JSON.stringify(name)}:{"data":`,
  batch(out, _name, rows, first) {
    // "[r1,...,rn]" in one native call; the first batch's "[" opens "data".
    out.arrayItems(rowsText(rows), first);
  },
  domainEnd: (_name, count) => `${count === 0 ? "[" : ""}],"count":${count}}`,
  close(trailer) {
    if (trailer === undefined) return "}}";
    if (Object.hasOwn(trailer, "results")) {
      throw new Error('the trailer has a "results" key, which would repeat the results');
    }
    const text = jsonText(trailer);
    return text === "{}" ? "}}" : `},${text.slice(1)}`;
  },
};

const NDJSON_FORMAT: Format = {
  open: "",
  domainStart: () => "",
  batch(out, name, rows) {
    const prefix = encoder.encode(`{"domain":${JSON.stringify(name)}`);
    for (const row of rows) {
      const text = rowText(row);
      out.bytes(prefix);
      const at = out.used;
      out.write(text);
      if (text.length === 2) {
        // "{}": the line is just the domain
        out.used = at;
        out.byte(CLOSE_BRACE);
      } else {
        out.buf[at] = COMMA;
      }
      out.byte(NEWLINE);
    }
  },
  domainEnd: (name, count) => `{"domain":${JSON.stringify(name)},"count":${count},"end":true}\n`,
  close: (trailer) => (trailer === undefined ? "" : `{"trailer":${jsonText(trailer)}}\n`),
};

type AnyIterator<T = Row[]> = AsyncIterator<T> | Iterator<T>;

/** The iterator of an async or sync iterable of batches; `name` says whose in the error. */
function iteratorOf<T = Row[]>(
  name: string,
  batches: AsyncIterable<T> | Iterable<T>,
): AnyIterator<T> {
  const source = batches as Partial<AsyncIterable<T> & Iterable<T>> | null;
  const asyncIterator = source?.[Symbol.asyncIterator];
  if (typeof asyncIterator === "function") return asyncIterator.call(source);
  const syncIterator = source?.[Symbol.iterator];
  if (typeof syncIterator === "function") return syncIterator.call(source);
  throw new TypeError(`${name}: rows must be an (async) iterable of batches`);
}

/** A source not yet started that is an iterator itself (a generator object) can be closed. */
function closeUnstarted(batches: RowBatches): Promise<unknown> | undefined {
  const it = batches as Partial<AsyncIterator<Row[]>>;
  return typeof it.return === "function" ? it.return() : undefined;
}

function traceStream(
  domains: TraceDomains,
  options: TraceStreamOptions,
  format: Format,
): ReadableStream<Uint8Array> {
  // Domains held in a list (an object's entries, an array, a Map) are known ahead, so those
  // not yet started can be closed on cancel; another iterable (a generator of pairs, which may
  // create its sources lazily) is only read as far as it is written.
  const list: (readonly [string, RowBatches])[] | null = !(Symbol.iterator in domains)
    ? Object.entries(domains as Record<string, RowBatches>)
    : Array.isArray(domains)
      ? domains
      : domains instanceof Map
        ? [...(domains as Map<string, RowBatches>)]
        : null;
  const lazy = list
    ? null
    : (domains as Iterable<readonly [string, RowBatches]>)[Symbol.iterator]();
  let nextIndex = 0;
  const seen = new Set<string>();
  const out = new ChunkEncoder();
  out.write(format.open);

  let active: { name: string; it: AnyIterator; count: number } | null = null;
  let finished = false;

  const nextDomain = (): readonly [string, RowBatches] | undefined => {
    if (list) return list[nextIndex++];
    const entry = (lazy as Iterator<readonly [string, RowBatches]>).next();
    return entry.done ? undefined : entry.value;
  };

  /** Close the active iterator and every source not started; once; never throws. */
  const closeAll = async (): Promise<void> => {
    if (finished) return;
    finished = true;
    out.release();
    const closing: (Promise<unknown> | undefined)[] = [];
    const current = active;
    active = null;
    try {
      closing.push(current?.it.return?.() as Promise<unknown> | undefined);
    } catch {}
    if (list) {
      for (const [, batches] of list.slice(nextIndex)) {
        try {
          closing.push(closeUnstarted(batches));
        } catch {}
      }
    } else {
      try {
        lazy?.return?.();
      } catch {}
    }
    // The consumer is gone or the stream has failed: a source failing to close changes nothing.
    await Promise.allSettled(closing);
  };

  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          for (;;) {
            if (finished) return;
            if (active === null) {
              const entry = nextDomain();
              if (entry === undefined) {
                const trailer = options.trailer ? await options.trailer() : undefined;
                if (finished) return;
                out.write(format.close(trailer));
                controller.enqueue(out.take());
                finished = true;
                out.release();
                controller.close();
                return;
              }
              const [name, batches] = entry;
              if (typeof name !== "string") throw new TypeError("a domain name must be a string");
              if (seen.has(name)) throw new Error(`domain ${JSON.stringify(name)} is given twice`);
              seen.add(name);
              out.write(format.domainStart(name, seen.size - 1));
              active = {
                name,
                it: iteratorOf(`domain ${JSON.stringify(name)}`, batches),
                count: 0,
              };
            }
            const current = active;
            let step: IteratorResult<Row[]>;
            try {
              step = await current.it.next();
            } catch (err) {
              // A source that threw is done: it is not asked to return() (iterator protocol).
              if (active === current) active = null;
              throw err;
            }
            if (finished) return; // cancelled while the batch was being read: drop it
            if (step.done) {
              out.write(format.domainEnd(current.name, current.count));
              active = null;
              continue;
            }
            const rows = step.value;
            if (!Array.isArray(rows)) {
              throw new TypeError(
                `domain ${JSON.stringify(current.name)}: a batch must be an array`,
              );
            }
            if (rows.length === 0) continue;
            format.batch(out, current.name, rows, current.count === 0);
            current.count += rows.length;
            controller.enqueue(out.take());
            return;
          }
        } catch (err) {
          await closeAll();
          throw err;
        }
      },
      async cancel() {
        await closeAll();
      },
    },
    { highWaterMark: options.highWaterMark ?? 1 },
  );
}

/** A field of {@link jsonObjectStream} written as one JSON array, batch by batch as they come. */
export class StreamedArray {
  /** `batches` is called when the field's turn comes (so it may use what earlier fields did). */
  constructor(readonly batches: () => AsyncIterable<unknown[]> | Iterable<unknown[]>) {}
}

/**
 * `{"k":v,...}` written field by field, in order: a {@link StreamedArray} as its batches arrive
 * (one chunk each, pulled: a slow reader stops the source), a function by what it returns when
 * its turn comes, anything else as JSON (the trace API's rules, {@link jsonText}). Cancelling
 * the stream returns the array being read.
 */
export function jsonObjectStream(
  fields: readonly (readonly [string, unknown])[],
): ReadableStream<Uint8Array> {
  const out = new ChunkEncoder();
  let index = 0;
  let active: { it: AnyIterator<unknown[]>; first: boolean } | null = null;
  let finished = false;
  const close = async () => {
    if (finished) return;
    finished = true;
    out.release();
    const current = active;
    active = null;
    await Promise.allSettled([current?.it.return?.()]);
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          for (;;) {
            if (finished) return;
            if (active === null) {
              const field = fields[index++];
              if (field === undefined) {
                out.write(index === 1 ? "{}" : "}");
                controller.enqueue(out.take());
                finished = true;
                out.release();
                controller.close();
                return;
              }
              const [key, value] = field;
              out.write(`${index === 1 ? "{" : ","}${JSON.stringify(key)}:`);
              if (!(value instanceof StreamedArray)) {
                out.write(jsonText(typeof value === "function" ? await value() : value));
                continue;
              }
              active = {
                it: iteratorOf(`field ${JSON.stringify(key)}`, value.batches()),
                first: true,
              };
            }
            const current = active;
            let step: IteratorResult<unknown[]>;
            try {
              step = await current.it.next();
            } catch (err) {
              active = null;
              throw err;
            }
            if (finished) return;
            if (step.done) {
              out.write(current.first ? "[]" : "]");
              active = null;
              continue;
            }
            if (step.value.length === 0) continue;
            out.arrayItems(jsonText(step.value), current.first);
            current.first = false;
            controller.enqueue(out.take());
            return;
          }
        } catch (err) {
          await close();
          throw err;
        }
      },
      cancel: close,
    },
    { highWaterMark: 1 },
  );
}
