import { ChunkEncoder } from "./chunk-encoder.js";
import { type AnyIterator, iteratorOf } from "./iterators.js";
import { jsonText } from "./text.js";

/** A field of {@link jsonObjectStream} written as one JSON array, batch by batch as they come. */
export class StreamedArray {
  /** `batches` is called when the field's turn comes (so it may use what earlier fields did). */
  constructor(readonly batches: () => AsyncIterable<unknown[]> | Iterable<unknown[]>) {}
}

/** Between fields, reading a streamed array's batches, or done (finished, failed, cancelled). */
type ObjectState =
  | { kind: "between" }
  | { kind: "reading"; it: AnyIterator<unknown[]>; first: boolean }
  | { kind: "done" };

type Controller = ReadableStreamDefaultController<Uint8Array>;

class ObjectWriter {
  private state: ObjectState = { kind: "between" };
  private readonly out = new ChunkEncoder();
  private index = 0;

  constructor(private readonly fields: readonly (readonly [string, unknown])[]) {}

  /** Write until one chunk is handed out, or the end; a failure stops the array being read. */
  async pull(controller: Controller): Promise<void> {
    try {
      for (;;) {
        const s = this.state;
        if (s.kind === "done") return;
        if (
          s.kind === "between" ? await this.nextField(controller) : await this.read(s, controller)
        )
          return;
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Write the next field (opening its array when streamed), or the end; true once closed. */
  private async nextField(controller: Controller): Promise<boolean> {
    const field = this.fields[this.index++];
    if (field === undefined) {
      this.out.write(this.index === 1 ? "{}" : "}");
      controller.enqueue(this.out.take());
      this.finish();
      controller.close();
      return true;
    }
    const [key, value] = field;
    this.out.write(`${this.index === 1 ? "{" : ","}${JSON.stringify(key)}:`);
    if (value instanceof StreamedArray) {
      const it = iteratorOf(`field ${JSON.stringify(key)}`, value.batches());
      this.state = { kind: "reading", it, first: true };
    } else {
      this.out.write(jsonText(typeof value === "function" ? await value() : value));
    }
    return false;
  }

  /** Read the array's next batch; true once a chunk was handed out (or it stopped). */
  private async read(
    s: Extract<ObjectState, { kind: "reading" }>,
    controller: Controller,
  ): Promise<boolean> {
    let step: IteratorResult<unknown[]>;
    try {
      step = await s.it.next();
    } catch (err) {
      if (this.state === s) this.state = { kind: "between" };
      throw err;
    }
    if (this.state !== s) return true;
    if (step.done) {
      this.out.write(s.first ? "[]" : "]");
      this.state = { kind: "between" };
      return false;
    }
    if (step.value.length === 0) return false;
    this.out.arrayItems(jsonText(step.value), s.first);
    s.first = false;
    controller.enqueue(this.out.take());
    return true;
  }

  /** Close the array being read; once; never throws. */
  async stop(): Promise<void> {
    const s = this.state;
    if (s.kind === "done") return;
    this.finish();
    if (s.kind === "reading") await Promise.allSettled([s.it.return?.()]);
  }

  private finish(): void {
    this.state = { kind: "done" };
    this.out.release();
  }
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
  const writer = new ObjectWriter(fields);
  return new ReadableStream<Uint8Array>(
    { pull: (controller) => writer.pull(controller), cancel: () => writer.stop() },
    { highWaterMark: 1 },
  );
}
