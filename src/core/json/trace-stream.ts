/**
 * Incremental writers for the trace API's responses: its JSON shape
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
import { ChunkEncoder } from "./chunk-encoder.js";
import { type AnyIterator, closeUnstarted, iteratorOf } from "./iterators.js";
import { JsonRows, type RowBatch } from "./json-rows.js";
import { type Format, JSON_FORMAT, NDJSON_FORMAT } from "./trace-formats.js";

/**
 * The rows of one domain, in batches as a cursor yields them (an array is fine for tests): rows
 * as values, or JsonRows whose JSON is written as it is.
 */
export type RowBatches = AsyncIterable<RowBatch> | Iterable<RowBatch>;

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

/** The domains still to write, in order, and how to close those never started. */
class DomainQueue {
  // Domains held in a list (an object's entries, an array, a Map) are known ahead, so those
  // not yet started can be closed on cancel; another iterable (a generator of pairs, which may
  // create its sources lazily) is only read as far as it is written.
  private readonly list: (readonly [string, RowBatches])[] | null;
  private readonly lazy: Iterator<readonly [string, RowBatches]> | null;
  private taken = 0;

  constructor(domains: TraceDomains) {
    this.list = !(Symbol.iterator in domains)
      ? Object.entries(domains as Record<string, RowBatches>)
      : Array.isArray(domains)
        ? domains
        : domains instanceof Map
          ? [...(domains as Map<string, RowBatches>)]
          : null;
    this.lazy = this.list
      ? null
      : (domains as Iterable<readonly [string, RowBatches]>)[Symbol.iterator]();
  }

  take(): readonly [string, RowBatches] | undefined {
    if (this.list) return this.list[this.taken++];
    const entry = (this.lazy as Iterator<readonly [string, RowBatches]>).next();
    return entry.done ? undefined : entry.value;
  }

  /** Close every source not started; never throws. */
  closeRest(): (Promise<unknown> | undefined)[] {
    const closing: (Promise<unknown> | undefined)[] = [];
    for (const [, batches] of this.list?.slice(this.taken) ?? []) {
      try {
        closing.push(closeUnstarted(batches));
      } catch {}
    }
    try {
      this.lazy?.return?.();
    } catch {}
    return closing;
  }
}

/**
 * Where a writer stands, as pg-cursor keeps its own state: `between` domains (the next one is
 * taken on the next pull), `reading` one domain's batches, or `done` (finished, failed or
 * cancelled: nothing more is read or written).
 */
type WriterState =
  | { kind: "between" }
  | { kind: "reading"; name: string; it: AnyIterator<RowBatch>; count: number }
  | { kind: "done" };

type Controller = ReadableStreamDefaultController<Uint8Array>;

class TraceWriter {
  private state: WriterState = { kind: "between" };
  private readonly out = new ChunkEncoder();
  private readonly seen = new Set<string>();

  constructor(
    private readonly domains: DomainQueue,
    private readonly options: TraceStreamOptions,
    private readonly format: Format,
  ) {
    this.out.write(format.open);
  }

  private get done(): boolean {
    return this.state.kind === "done";
  }

  /** Write until one chunk is handed out, or the end; a failure stops every source. */
  async pull(controller: Controller): Promise<void> {
    try {
      for (;;) {
        const s = this.state;
        if (s.kind === "done") return;
        if (s.kind === "between" ? await this.openNext(controller) : await this.read(s, controller))
          return;
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Open the next domain, or write the end; true once the stream is closed. */
  private async openNext(controller: Controller): Promise<boolean> {
    const entry = this.domains.take();
    if (entry === undefined) {
      const trailer = this.options.trailer ? await this.options.trailer() : undefined;
      if (this.done) return true; // cancelled while the trailer was computed
      this.out.write(this.format.close(trailer));
      controller.enqueue(this.out.take());
      this.finish();
      controller.close();
      return true;
    }
    const [name, batches] = entry;
    if (typeof name !== "string") throw new TypeError("a domain name must be a string");
    if (this.seen.has(name)) throw new Error(`domain ${JSON.stringify(name)} is given twice`);
    this.seen.add(name);
    this.out.write(this.format.domainStart(name, this.seen.size - 1));
    const it = iteratorOf(`domain ${JSON.stringify(name)}`, batches);
    this.state = { kind: "reading", name, it, count: 0 };
    return false;
  }

  /** Read the open domain's next batch; true once a chunk was handed out (or it stopped). */
  private async read(
    s: Extract<WriterState, { kind: "reading" }>,
    controller: Controller,
  ): Promise<boolean> {
    let step: IteratorResult<RowBatch>;
    try {
      step = await s.it.next();
    } catch (err) {
      // A source that threw is done: it is not asked to return() (iterator protocol).
      if (this.state === s) this.state = { kind: "between" };
      throw err;
    }
    if (this.state !== s) return true; // cancelled while the batch was being read: drop it
    if (step.done) {
      this.out.write(this.format.domainEnd(s.name, s.count));
      this.state = { kind: "between" };
      return false;
    }
    const rows = step.value;
    if (!Array.isArray(rows) && !(rows instanceof JsonRows)) {
      throw new TypeError(`domain ${JSON.stringify(s.name)}: a batch must be an array`);
    }
    if (rows.length === 0) return false;
    const own = this.format.batch(this.out, s.name, rows, s.count === 0);
    s.count += rows.length;
    controller.enqueue(this.out.take());
    if (own) controller.enqueue(own);
    return true;
  }

  /** Close the open source and every one not started; once; never throws. */
  async stop(): Promise<void> {
    const s = this.state;
    if (s.kind === "done") return;
    this.finish();
    const closing: (Promise<unknown> | undefined)[] = [];
    if (s.kind === "reading") {
      try {
        closing.push(s.it.return?.() as Promise<unknown> | undefined);
      } catch {}
    }
    closing.push(...this.domains.closeRest());
    // The consumer is gone or the stream has failed: a source failing to close changes nothing.
    await Promise.allSettled(closing);
  }

  private finish(): void {
    this.state = { kind: "done" };
    this.out.release();
  }
}

function traceStream(
  domains: TraceDomains,
  options: TraceStreamOptions,
  format: Format,
): ReadableStream<Uint8Array> {
  const writer = new TraceWriter(new DomainQueue(domains), options, format);
  return new ReadableStream<Uint8Array>(
    { pull: (controller) => writer.pull(controller), cancel: () => writer.stop() },
    { highWaterMark: options.highWaterMark ?? 1 },
  );
}
