import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it, vi } from "vitest";
import { StreamedArray, jsonObjectStream } from "../src/core/json/object-stream.js";
import { jsonText } from "../src/core/json/text.js";
import {
  type RowBatches,
  traceJsonStream,
  traceNdjsonStream,
} from "../src/core/json/trace-stream.js";
import type { Row } from "../src/core/sql/source.js";

async function readText(stream: ReadableStream<Uint8Array>): Promise<string> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let text = "";
  for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
  return text + decoder.decode();
}

/** Read until the stream fails; what was received and the error. */
async function readUntilError(
  stream: ReadableStream<Uint8Array>,
): Promise<{ text: string; error: unknown }> {
  const decoder = new TextDecoder();
  const reader = stream.getReader();
  let text = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { text, error: undefined };
      text += decoder.decode(value, { stream: true });
    }
  } catch (error) {
    return { text, error };
  }
}

/** Give the writer every chance to run ahead: all microtasks and a couple of macrotasks. */
const settle = () => new Promise<void>((r) => setTimeout(() => setTimeout(r, 0), 0));

async function* batchesOf(batches: Row[][]): AsyncGenerator<Row[]> {
  for (const b of batches) yield b;
}

function materialise(domains: Record<string, Row[][]>): {
  results: Record<string, { data: Row[]; count: number }>;
} {
  const results: Record<string, { data: Row[]; count: number }> = {};
  for (const [name, batches] of Object.entries(domains)) {
    const data = batches.flat();
    results[name] = { data, count: data.length };
  }
  return { results };
}

function event(i: number): Row {
  return {
    CONTAINERID: `CID${String(i).padStart(8, "0")}`,
    WORKCENTER: ["DIE", "WB", "MOLD", "TMTT"][i % 4],
    EQUIPMENT: `EQ-${i % 37}`,
    SPEC: `SPEC-${i % 11}-A`,
    TRACKIN_TS: new Date(Date.UTC(2025, 9, 13) + i * 1000).toISOString(),
    TRACKOUT_TS: new Date(Date.UTC(2025, 9, 13) + i * 1000 + 60_000).toISOString(),
    QTY: i % 500,
    OPERATOR: `op${i % 90}`,
  };
}

function rowsFrom(start: number, n: number): Row[] {
  return Array.from({ length: n }, (_, k) => event(start + k));
}

/** A source that counts the batches it has produced and whether it was closed. */
function counted(batches: number, size: number) {
  const state = { yielded: 0, closed: false };
  const source = (async function* () {
    try {
      for (let b = 0; b < batches; b++) {
        state.yielded++;
        yield rowsFrom(b * size, size);
      }
    } finally {
      state.closed = true;
    }
  })();
  return { state, source };
}

const tricky: Row = {
  quote: 'say "hi"',
  backslash: "C:\\temp\\x",
  controls: "line\nbreak\ttab\r\u0000\u001f",
  separators: "\u2028\u2029",
  cjk: "良品・不良品",
  emoji: "😀👍🏽",
  lone: "\ud800 alone",
  html: "</script><!--",
  empty: "",
  nested: { a: [1, "two", null, { deep: [true, false] }], b: {} },
  list: [],
  n: -0.5e-7,
  big: 1e300,
};

describe("traceJsonStream", () => {
  it("writes exactly the text of the materialised object: domains, empty ones, escapes, nesting", async () => {
    const domains: Record<string, Row[][]> = {
      upstream_history: [rowsFrom(0, 3), [], rowsFrom(3, 2), rowsFrom(5, 1)],
      nothing: [],
      only_empty_batches: [[], [], []],
      'dömäin "quoted" \\ 😀': [[tricky, {}], [tricky]],
      defect_records: [[{ CONTAINERID: "CID1", DEFECT_QTY: 3, REASON_CODE: null }]],
    };
    const text = await readText(
      traceJsonStream(
        Object.fromEntries(Object.entries(domains).map(([k, v]) => [k, batchesOf(v)])),
      ),
    );
    const expected = materialise(domains);
    expect(text).toBe(JSON.stringify(expected));
    expect(JSON.parse(text)).toEqual(expected);
    expect(Object.keys(JSON.parse(text).results)).toEqual(Object.keys(domains));
  });

  it("writes no domains as an empty results object", async () => {
    expect(await readText(traceJsonStream({}))).toBe('{"results":{}}');
    expect(await readText(traceJsonStream([]))).toBe('{"results":{}}');
  });

  it("takes an object, a Map, pairs or a generator of pairs, in their order, and sync batches", async () => {
    const a = [rowsFrom(0, 2)];
    const b = [rowsFrom(2, 1), rowsFrom(3, 2)];
    const expected = JSON.stringify(materialise({ b, a }));
    expect(await readText(traceJsonStream({ b: batchesOf(b), a: batchesOf(a) }))).toBe(expected);
    expect(
      await readText(
        traceJsonStream(
          new Map([
            ["b", b],
            ["a", a],
          ]),
        ),
      ),
    ).toBe(expected);
    expect(
      await readText(
        traceJsonStream([
          ["b", batchesOf(b)],
          ["a", a],
        ]),
      ),
    ).toBe(expected);
    function* pairs(): Generator<[string, RowBatches]> {
      yield ["b", batchesOf(b)];
      yield ["a", batchesOf(a)];
    }
    expect(await readText(traceJsonStream(pairs()))).toBe(expected);
  });

  it("maps NaN, Infinity and undefined to null, bigint to a number or a string, Date to ISO, at any depth", async () => {
    const when = new Date(Date.UTC(2025, 9, 13, 8, 30, 15, 250));
    const row: Row = {
      nan: Number.NaN,
      inf: Number.POSITIVE_INFINITY,
      ninf: Number.NEGATIVE_INFINITY,
      undef: undefined,
      big: 42n,
      bigNeg: -9007199254740991n,
      bigHuge: 9007199254740993n,
      bigHugeNeg: -123456789012345678901234567890n,
      when,
      invalid: new Date(Number.NaN),
      nested: {
        undef: undefined,
        nan: Number.NaN,
        big: 7n,
        when,
        list: [undefined, 1n, Number.NaN],
      },
      fn: () => 1,
      withToJSON: { toJSON: () => ({ kind: "custom" }) },
      last: "kept in order",
    };
    const text = await readText(traceJsonStream({ d: batchesOf([[row]]) }));
    const expected =
      '{"results":{"d":{"data":[{"nan":null,"inf":null,"ninf":null,"undef":null,"big":42,' +
      '"bigNeg":-9007199254740991,"bigHuge":"9007199254740993",' +
      '"bigHugeNeg":"-123456789012345678901234567890","when":"2025-10-13T08:30:15.250Z",' +
      '"invalid":null,"nested":{"undef":null,"nan":null,"big":7,' +
      '"when":"2025-10-13T08:30:15.250Z","list":[null,1,null]},' +
      '"withToJSON":{"kind":"custom"},"last":"kept in order"}],"count":1}}}';
    expect(text).toBe(expected);
    expect(jsonText(row)).toBe(
      expected.slice('{"results":{"d":{"data":['.length, -'],"count":1}}}'.length),
    );
    // A batch mixing plain rows and rows that need the rules: all of it follows them.
    const mixed = await readText(
      traceJsonStream({ d: [[{ a: 1, when }, { a: undefined }, { a: Number.NaN }]] }),
    );
    expect(JSON.parse(mixed).results.d.data).toEqual([
      { a: 1, when: when.toISOString() },
      { a: null },
      { a: null },
    ]);
  });

  it("encodes a large batch of multi-byte text exactly (buffer growth mid-string)", async () => {
    const row = (i: number): Row => ({ i, text: `良品😀${"不良品".repeat(40 + (i % 7))}\u00e9` });
    const batches = [Array.from({ length: 3000 }, (_, i) => row(i)), [row(1)], rowsFrom(0, 10)];
    const chunks: Uint8Array[] = [];
    for await (const c of traceJsonStream({ big: batchesOf(batches) })) chunks.push(c);
    const expected = JSON.stringify(materialise({ big: batches }));
    const total = chunks.reduce((n, c) => n + c.byteLength, 0);
    expect(total).toBe(new TextEncoder().encode(expected).byteLength);
    expect(total).toBeGreaterThan(1_000_000);
    expect(new TextDecoder().decode(Buffer.concat(chunks))).toBe(expected);
    // Chunks are independent copies: none is a view into another's memory.
    expect(new Set(chunks.map((c) => c.buffer)).size).toBe(chunks.length);
  });

  it("appends the trailer's fields after results, computed once the rows have streamed", async () => {
    let qty = 0;
    async function* tapped(): AsyncGenerator<Row[]> {
      for (const rows of [rowsFrom(0, 4), rowsFrom(4, 3)]) {
        for (const r of rows) qty += r.QTY as number;
        yield rows;
      }
    }
    const trailer = vi.fn(async () => ({ pareto: [{ EQUIPMENT: "EQ-1", qty }], total: qty }));
    const text = await readText(traceJsonStream({ upstream_history: tapped() }, { trailer }));
    expect(trailer).toHaveBeenCalledTimes(1);
    const parsed = JSON.parse(text);
    expect(Object.keys(parsed)).toEqual(["results", "pareto", "total"]);
    expect(parsed.total).toBe(21);
    expect(parsed.pareto).toEqual([{ EQUIPMENT: "EQ-1", qty: 21 }]);
    expect(parsed.results.upstream_history.count).toBe(7);
    // Empty and value-rule trailers.
    expect(await readText(traceJsonStream({}, { trailer: () => ({}) }))).toBe('{"results":{}}');
    expect(
      await readText(
        traceJsonStream({}, { trailer: () => ({ n: Number.NaN, b: 2n, u: undefined }) }),
      ),
    ).toBe('{"results":{},"n":null,"b":2,"u":null}');
  });

  it("refuses a trailer with a results key, and errors when the trailer throws", async () => {
    const dup = await readUntilError(traceJsonStream({}, { trailer: () => ({ results: 1 }) }));
    expect(String(dup.error)).toMatch(/results/);
    const failing = await readUntilError(
      traceJsonStream(
        { a: [rowsFrom(0, 2)] },
        {
          trailer: async () => {
            throw new Error("pareto failed");
          },
        },
      ),
    );
    expect(failing.error).toEqual(new Error("pareto failed"));
    expect(() => JSON.parse(failing.text)).toThrow();
  });
});

describe("traceNdjsonStream", () => {
  it("writes one line per row with the domain first, and an end line with the count per domain", async () => {
    const domains: Record<string, Row[][]> = {
      upstream_history: [rowsFrom(0, 3), [], rowsFrom(3, 2)],
      nothing: [],
      odd: [[tricky, {}, { domain: "the row's own" }]],
      defect_records: [[{ CONTAINERID: "CID1", DEFECT_QTY: Number.NaN, BIG: 2n ** 60n }]],
    };
    const text = await readText(
      traceNdjsonStream(
        Object.fromEntries(Object.entries(domains).map(([k, v]) => [k, batchesOf(v)])),
      ),
    );
    expect(text.endsWith("\n")).toBe(true);
    const lines = text.slice(0, -1).split("\n");
    for (const line of lines) expect(line.startsWith('{"domain":')).toBe(true);
    const parsed = lines.map((l) => JSON.parse(l));
    const expected: unknown[] = [];
    for (const [name, batches] of Object.entries(domains)) {
      const rows = batches.flat();
      for (const row of rows) expected.push(JSON.parse(jsonText({ domain: name, ...row })));
      expected.push({ domain: name, count: rows.length, end: true });
    }
    expect(parsed).toEqual(expected);
    expect(lines).toContain('{"domain":"odd"}');
    expect(lines).toContain(
      '{"domain":"defect_records","CONTAINERID":"CID1","DEFECT_QTY":null,"BIG":"1152921504606846976"}',
    );
    expect(lines.filter((l) => l.includes('"end":true'))).toEqual([
      '{"domain":"upstream_history","count":5,"end":true}',
      '{"domain":"nothing","count":0,"end":true}',
      '{"domain":"odd","count":3,"end":true}',
      '{"domain":"defect_records","count":1,"end":true}',
    ]);
    // Row key order is kept after the domain.
    expect(Object.keys(parsed[0])).toEqual(["domain", ...Object.keys(event(0))]);
  });

  it("writes the trailer as the last line", async () => {
    const text = await readText(
      traceNdjsonStream({ a: [rowsFrom(0, 2)] }, { trailer: async () => ({ pareto: [1, 2] }) }),
    );
    const lines = text.trim().split("\n");
    expect(lines).toHaveLength(4);
    expect(lines.at(-2)).toBe('{"domain":"a","count":2,"end":true}');
    expect(lines.at(-1)).toBe('{"trailer":{"pareto":[1,2]}}');
    expect(await readText(traceNdjsonStream({}))).toBe("");
  });

  it("refuses a row that is not an object", async () => {
    const { error } = await readUntilError(traceNdjsonStream({ a: [[[1, 2] as unknown as Row]] }));
    expect(error).toBeInstanceOf(TypeError);
  });
});

describe("backpressure", () => {
  it("reads at most one batch ahead of a slow reader, across domains", async () => {
    const a = counted(20, 50);
    const b = counted(15, 50);
    const reader = traceJsonStream({ a: a.source, b: b.source }).getReader();
    await settle();
    expect(a.state.yielded).toBe(1); // one chunk queued before anyone reads
    let taken = 0;
    let maxAhead = 0;
    let text = "";
    const decoder = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      taken++;
      await settle(); // a slow consumer: the writer may run as far ahead as it ever would
      const ahead = a.state.yielded + b.state.yielded - taken;
      maxAhead = Math.max(maxAhead, ahead);
      expect(ahead).toBeLessThanOrEqual(1);
    }
    expect(maxAhead).toBe(1);
    expect(a.state.yielded + b.state.yielded).toBe(35);
    expect(JSON.parse(text).results.b.count).toBe(750);
  });

  it("stops reading while the consumer stops", async () => {
    const a = counted(100, 10);
    const reader = traceNdjsonStream({ a: a.source }).getReader();
    for (let i = 0; i < 3; i++) await reader.read();
    for (let i = 0; i < 5; i++) await settle();
    expect(a.state.yielded).toBe(4);
    await reader.cancel();
  });

  it("with highWaterMark 0 reads a batch only when asked", async () => {
    const a = counted(5, 10);
    const reader = traceJsonStream({ a: a.source }, { highWaterMark: 0 }).getReader();
    await settle();
    expect(a.state.yielded).toBe(0);
    await reader.read();
    await settle();
    expect(a.state.yielded).toBe(1);
    await reader.cancel();
  });

  it("piped into a slow writable, stays within the two streams' queues of the consumer", async () => {
    const a = counted(30, 20);
    let written = 0;
    let maxAhead = 0;
    await traceJsonStream({ a: a.source }).pipeTo(
      new WritableStream<Uint8Array>(
        {
          async write() {
            await settle();
            written++;
            maxAhead = Math.max(maxAhead, a.state.yielded - written);
          },
        },
        { highWaterMark: 1 },
      ),
    );
    expect(written).toBe(31); // 30 batches and the closing bytes
    // Through pipeTo (which waits for the writable to be ready) the bound is the same: measured 1.
    expect(maxAhead).toBeLessThanOrEqual(2);
  });
});

describe("cancellation", () => {
  it("closes the source being read (its finally runs) and reads nothing more", async () => {
    const a = counted(50, 10);
    const b = counted(50, 10);
    const c = {
      [Symbol.asyncIterator]: vi.fn(),
      next: vi.fn(),
      return: vi.fn(async () => ({ done: true as const, value: undefined })),
    };
    c[Symbol.asyncIterator].mockReturnValue(c);
    const reader = traceJsonStream([
      ["a", a.source],
      ["b", b.source],
      ["c", c as unknown as AsyncIterable<Row[]>],
    ]).getReader();
    await reader.read();
    await reader.read();
    await reader.cancel(new Error("client gone"));
    expect(a.state.closed).toBe(true);
    const yielded = a.state.yielded;
    expect(yielded).toBeLessThanOrEqual(2);
    for (let i = 0; i < 3; i++) await settle();
    expect(a.state.yielded).toBe(yielded);
    expect(b.state.yielded).toBe(0);
    expect(c.next).not.toHaveBeenCalled();
    expect(c.return).toHaveBeenCalledTimes(1); // an iterator not yet started is closed too
  });

  it("closes a source whose batch is still being read, once that read returns", async () => {
    let release = () => {};
    let closed = false;
    const next = vi.fn();
    async function* slow(): AsyncGenerator<Row[]> {
      try {
        yield rowsFrom(0, 2);
        await new Promise<void>((r) => {
          release = r;
        });
        yield rowsFrom(2, 2);
        yield rowsFrom(4, 2);
      } finally {
        closed = true;
      }
    }
    const gen = slow();
    const source: AsyncIterable<Row[]> = {
      [Symbol.asyncIterator]: () => ({
        next: () => {
          next();
          return gen.next();
        },
        return: () => gen.return(undefined),
      }),
    };
    const reader = traceNdjsonStream({ slow: source }).getReader();
    await reader.read();
    await settle();
    expect(next).toHaveBeenCalledTimes(2); // the second read is waiting on the database
    const cancelled = reader.cancel();
    await settle();
    expect(closed).toBe(false);
    release();
    await cancelled;
    expect(closed).toBe(true);
    await settle();
    expect(next).toHaveBeenCalledTimes(2);
  });

  it("a consumer that breaks out of for-await closes the source", async () => {
    const a = counted(50, 10);
    for await (const _ of traceJsonStream({ a: a.source })) break;
    expect(a.state.closed).toBe(true);
    expect(a.state.yielded).toBeLessThanOrEqual(2);
  });
});

describe("errors", () => {
  it("a source that throws mid-stream errors the stream, leaving a body that does not parse", async () => {
    let closedLater = false;
    async function* failing(): AsyncGenerator<Row[]> {
      yield rowsFrom(0, 5);
      yield rowsFrom(5, 5);
      throw new Error("ORA-03113: end-of-file on communication channel");
    }
    async function* later(): AsyncGenerator<Row[]> {
      try {
        yield rowsFrom(0, 1);
      } finally {
        closedLater = true;
      }
    }
    const laterSource = later();
    const { text, error } = await readUntilError(traceJsonStream({ a: failing(), b: laterSource }));
    expect(String(error)).toMatch(/ORA-03113/);
    expect(text.length).toBeGreaterThan(0);
    expect(() => JSON.parse(text)).toThrow();
    expect(closedLater).toBe(false); // never started, so nothing to run
    expect(await laterSource.next()).toEqual({ done: true, value: undefined }); // but closed
  });

  it("the same in NDJSON: no end line for the failed domain", async () => {
    async function* failing(): AsyncGenerator<Row[]> {
      yield rowsFrom(0, 3);
      throw new Error("boom");
    }
    const { text, error } = await readUntilError(traceNdjsonStream({ a: failing() }));
    expect(error).toEqual(new Error("boom"));
    expect(text.trim().split("\n")).toHaveLength(3);
    expect(text).not.toContain('"end":true');
  });

  it("a row that cannot be written errors the stream and closes its source", async () => {
    const circular: Row = { a: 1 };
    circular.self = circular;
    let closed = false;
    const next = vi.fn();
    async function* withBad(): AsyncGenerator<Row[]> {
      try {
        next();
        yield rowsFrom(0, 5);
        next();
        yield [circular];
        next();
        yield rowsFrom(5, 5);
      } finally {
        closed = true;
      }
    }
    const { text, error } = await readUntilError(traceJsonStream({ a: withBad() }));
    expect(error).toBeInstanceOf(TypeError);
    expect(closed).toBe(true);
    expect(next).toHaveBeenCalledTimes(2);
    expect(text).toBe(`{"results":{"a":{"data":${JSON.stringify(rowsFrom(0, 5)).slice(0, -1)}`);
  });

  it("refuses a domain given twice and a batch that is not an array", async () => {
    const twice = await readUntilError(
      traceJsonStream([
        ["a", [rowsFrom(0, 1)]],
        ["a", [rowsFrom(1, 1)]],
      ]),
    );
    expect(String(twice.error)).toMatch(/"a" is given twice/);
    const notArray = await readUntilError(traceJsonStream({ a: [{ x: 1 } as unknown as Row[]] }));
    expect(notArray.error).toBeInstanceOf(TypeError);
  });
});

/** gc() even when node was started without --expose-gc (vitest forks are). */
function findGc(): (() => void) | undefined {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (typeof existing === "function") return existing;
  try {
    setFlagsFromString("--expose-gc");
    return runInNewContext("gc") as () => void;
  } catch {
    return undefined;
  }
}

describe("jsonObjectStream", () => {
  it("writes the fields in order: values, streamed arrays (empty too), functions at their turn", async () => {
    const order: string[] = [];
    let total = 0;
    const edges = async function* () {
      for (const b of [[{ a: 1 }, { a: 2 }], [], [{ a: 3, t: tricky }]]) {
        order.push("batch");
        total += b.length;
        yield b;
      }
    };
    const text = await readText(
      jsonObjectStream([
        ["profile", "mid_section_defect"],
        ["edges", new StreamedArray(edges)],
        ["none", new StreamedArray(() => [])],
        [
          "count",
          () => {
            order.push("count");
            return total;
          },
        ],
        ["nan", Number.NaN],
      ]),
    );
    expect(text).toBe(
      JSON.stringify({
        profile: "mid_section_defect",
        edges: [{ a: 1 }, { a: 2 }, { a: 3, t: tricky }],
        none: [],
        count: 3,
        nan: null,
      }),
    );
    expect(order).toEqual(["batch", "batch", "batch", "count"]);
    expect(await readText(jsonObjectStream([]))).toBe("{}");
  });

  it("sends one chunk per batch, reads one ahead of a slow reader, and cancelling returns the source", async () => {
    const { state, source } = counted(50, 10);
    const reader = jsonObjectStream([["rows", new StreamedArray(() => source)]]).getReader();
    await reader.read();
    await settle();
    expect(state.yielded).toBeLessThanOrEqual(3);
    await reader.cancel();
    expect(state.closed).toBe(true);
    expect(state.yielded).toBeLessThanOrEqual(3);
  });

  it("a source that throws errors the stream, leaving a body that does not parse", async () => {
    const failing = async function* () {
      yield [1, 2];
      throw new Error("statement timeout");
    };
    const { text, error } = await readUntilError(
      jsonObjectStream([["edges", new StreamedArray(failing)]]),
    );
    expect(String(error)).toMatch(/statement timeout/);
    expect(() => JSON.parse(text)).toThrow();
  });
});

describe("memory", () => {
  it("1M rows (200 batches of 5000) stream through with a flat heap", async () => {
    const gc = findGc();
    const heap = () => {
      gc?.();
      gc?.();
      return process.memoryUsage();
    };
    const BATCHES = 200;
    const SIZE = 5000;
    async function* generated(): AsyncGenerator<Row[]> {
      for (let b = 0; b < BATCHES; b++) yield rowsFrom(b * SIZE, SIZE);
    }
    const before = heap();
    let bytes = 0;
    let chunks = 0;
    let early: NodeJS.MemoryUsage | undefined;
    let peak = 0;
    for await (const chunk of traceJsonStream({
      upstream_history: generated(),
      defect_records: batchesOf([rowsFrom(0, 10)]),
    })) {
      bytes += chunk.byteLength;
      chunks++;
      if (chunks === 20) early = heap();
      if (chunks % 20 === 0) peak = Math.max(peak, heap().heapUsed);
    }
    const after = heap();
    const MB = 1024 * 1024;
    expect(bytes).toBeGreaterThan(150 * MB);
    expect(early).toBeDefined();
    const start = early as NodeJS.MemoryUsage;
    if (gc) {
      // Retained heap: a few batches at most, whatever the number of rows written. Holding the
      // rows (or the output) would be hundreds of MB.
      expect(peak - start.heapUsed).toBeLessThan(16 * MB);
      expect(after.heapUsed - before.heapUsed).toBeLessThan(16 * MB);
      expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(8 * MB);
    } else {
      expect(peak - before.heapUsed).toBeLessThan(30 * MB);
    }
  });
});
