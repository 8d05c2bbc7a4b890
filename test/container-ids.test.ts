import { describe, expect, it } from "vitest";
import { ContainerIds } from "../src/core/trace/container-ids.js";
import { fullGc } from "../src/node/full-gc.js";

describe("ContainerIds", () => {
  it("numbers each id once, in the order first added, across many table growths", () => {
    const ids = new ContainerIds();
    const n = 50_000;
    for (let i = 0; i < n; i++) expect(ids.add(`C-${i}`)).toBe(i);
    // Again, in another order: the same numbers, nothing added.
    for (let i = n - 1; i >= 0; i -= 7) expect(ids.add(`C-${i}`)).toBe(i);
    expect(ids.size).toBe(n);
    for (let i = 0; i < n; i += 997) {
      expect(ids.indexOf(`C-${i}`)).toBe(i);
      expect(ids.at(i)).toBe(`C-${i}`);
    }
    expect([...ids]).toEqual(Array.from({ length: n }, (_, i) => `C-${i}`));
  });

  it("tells apart ids that are absent, prefixes of others, or empty", () => {
    const ids = ContainerIds.from(["LOT-1", "LOT-10", "", "LOT-1"]);
    expect(ids.size).toBe(3);
    expect([...ids]).toEqual(["LOT-1", "LOT-10", ""]);
    expect(ids.indexOf("LOT-")).toBe(-1);
    expect(ids.indexOf("LOT-100")).toBe(-1);
    expect(ids.has("")).toBe(true);
    expect(() => ids.at(3)).toThrow(RangeError);
  });

  it("keeps ids beyond Latin-1 once one arrives, and the ones before it", () => {
    const ids = ContainerIds.from(["A-1", "é-2", "批次-3", "A-1", "Z-4"]);
    expect([...ids]).toEqual(["A-1", "é-2", "批次-3", "Z-4"]);
    expect(ids.indexOf("批次-3")).toBe(2);
    expect(ids.indexOf("批次-4")).toBe(-1);
  });

  it("holds 200K ids outside V8's heap (invariant 1: a trace request's state is not heap objects)", () => {
    const gc = fullGc() as () => void;
    const n = 200_000;
    gc();
    const before = process.memoryUsage();
    const ids = new ContainerIds({ ids: n, chars: n * 11 });
    for (let i = 0; i < n; i++) ids.add(`C${String(i).padStart(7, "0")}-01`);
    gc();
    const after = process.memoryUsage();
    expect(ids.size).toBe(n);
    // A Map or Set of these strings is ~20 MB of heap; packed they are ~4 MB of typed arrays.
    expect(after.heapUsed - before.heapUsed).toBeLessThan(2 * 1024 * 1024);
    expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(6 * 1024 * 1024);
    expect(ids.indexOf("C0199999-01")).toBe(n - 1);
  });
});
