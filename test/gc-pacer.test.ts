import { describe, expect, it } from "vitest";
import { fullGc } from "../src/node/full-gc.js";
import { GcPacer } from "../src/node/gc-pacer.js";

describe("GcPacer", () => {
  it("collects after every `every` rows, and at a stream's end once a tenth of that went by", () => {
    let runs = 0;
    const pacer = new GcPacer(() => runs++, 1000);
    pacer.count(999);
    expect(runs).toBe(0);
    pacer.count(1);
    expect(runs).toBe(1);
    for (let i = 0; i < 25; i++) pacer.count(100); // 2500 rows: two more, 500 left over
    expect(runs).toBe(3);
    pacer.end();
    expect(runs).toBe(4);
    pacer.count(99);
    pacer.end(); // under a tenth: a small request costs no collection
    expect(runs).toBe(4);
  });

  it("never collects with every = 0 or without a collector", () => {
    let runs = 0;
    const off = new GcPacer(() => runs++, 0);
    off.count(1e9);
    off.end();
    expect(runs).toBe(0);
    const none = new GcPacer(null, 10);
    none.count(1e9);
    none.end();
  });
});

describe("GcPacer.bytes", () => {
  it("runs a young collection after every `everyBytes` bytes, none when pacing is off", () => {
    let full = 0;
    let young = 0;
    const pacer = new GcPacer(
      () => full++,
      1000,
      () => young++,
      2048,
    );
    pacer.bytes(2047);
    expect(young).toBe(0);
    pacer.bytes(1);
    expect(young).toBe(1);
    for (let i = 0; i < 10; i++) pacer.bytes(1000); // one every third: the count starts anew
    expect([young, full]).toEqual([4, 0]);
    const off = new GcPacer(
      () => full++,
      0,
      () => young++,
      1,
    );
    off.bytes(1e9);
    new GcPacer(null, 10).bytes(1e9);
    expect([young, full]).toEqual([4, 0]);
  });
});

describe("fullGc", () => {
  it("is V8's collection: an object nothing refers to is gone after it", async () => {
    const gc = fullGc();
    expect(gc).toBeTypeOf("function");
    const ref = (() => new WeakRef({ big: new Array(1000).fill("x") }))();
    // A WeakRef's target lives at least until the current job ends.
    await new Promise((r) => setImmediate(r));
    gc?.();
    expect(ref.deref()).toBeUndefined();
    // A young collection is asked for the same way (what GcPacer.bytes runs).
    expect(() => gc?.({ type: "minor" })).not.toThrow();
    // The service's own global gets no `gc`.
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
  });
});
