import { describe, expect, it } from "vitest";
import { TooManyEventsError, splitEventBatch } from "../src/core/ingest/batch.js";

/** The TooManyEventsError a split throws (fails the test when it throws none). */
function tooMany(text: string, ndjson: boolean, max: number): TooManyEventsError {
  try {
    splitEventBatch(text, ndjson, max);
  } catch (err) {
    expect(err).toBeInstanceOf(TooManyEventsError);
    return err as TooManyEventsError;
  }
  throw new Error("no TooManyEventsError");
}

describe("splitting an ingest body into events", () => {
  it("stops scanning at the first event over the limit (5 MB of `1\\n`: a few characters read)", () => {
    const ndjson = "1\n".repeat(2_621_440);
    const nd = tooMany(ndjson, true, 10);
    expect(nd.limit).toBe(10);
    expect(nd.message).toBe("more than 10 events in one batch; send at most 10 per request");
    expect(nd.scanned).toBeLessThanOrEqual(2 * 11);

    const array = `[${"1,".repeat(2_621_440)}1]`;
    expect(tooMany(array, false, 10).scanned).toBeLessThanOrEqual(2 * 11 + 1);
    const objects = `[${'{"a":[1,2,3],"b":"x,y]"},'.repeat(200_000)}{}]`;
    expect(tooMany(objects, false, 10).scanned).toBeLessThan(26 * 11);
  });

  it("counts exactly: the limit passes, one more does not", () => {
    for (const max of [1, 2, 7]) {
      const items = Array.from({ length: max }, (_, i) => ({ i, s: `a,"[{]}\\${i}` }));
      expect(splitEventBatch(JSON.stringify(items), false, max)).toEqual(items);
      expect(tooMany(JSON.stringify([...items, 0]), false, max).limit).toBe(max);
      const lines = items.map((e) => JSON.stringify(e));
      expect(splitEventBatch(lines.join("\n"), true, max)).toEqual(lines);
      expect(tooMany(`${lines.join("\n")}\n0\n`, true, max).limit).toBe(max);
    }
  });

  it("NDJSON: blank lines (any whitespace trim() removes) are not events; CR stays on its line", () => {
    const body = '\n  \n\t\r\n{"a":1}\r\n\u00a0\u2028\ufeff\n[2]\n\n';
    expect(splitEventBatch(body, true, 2)).toEqual(['{"a":1}\r', "[2]"]);
    expect(splitEventBatch("\n".repeat(100_000), true, 1)).toEqual([]);
    expect(splitEventBatch("x", true, 1)).toEqual(["x"]);
  });

  it("JSON: nested arrays, objects and strings with brackets, commas and escapes count as one event each", () => {
    const items = [[1, [2, 3]], { a: { b: [",", "]"] } }, 'q"\\', "", null, 0, true, []];
    const text = ` \n[ ${items.map((i) => JSON.stringify(i)).join(" ,\n ")} ] `;
    expect(splitEventBatch(text, false, items.length)).toEqual(items);
    expect(tooMany(text, false, items.length - 1).limit).toBe(items.length - 1);
    expect(splitEventBatch("[]", false, 1)).toEqual([]);
  });

  it("JSON that is not an array, or not JSON, is a 400 (bad_input), not a count", () => {
    for (const bad of ["", "{", '{"a":[1,2,3]}', '"x"', "[1,", '["abc', "[1,]", "\ufeff[]"]) {
      expect(() => splitEventBatch(bad, false, 1000), bad).toThrow(/JSON/);
      try {
        splitEventBatch(bad, false, 1000);
      } catch (err) {
        expect(err, bad).not.toBeInstanceOf(TooManyEventsError);
      }
    }
  });
});
