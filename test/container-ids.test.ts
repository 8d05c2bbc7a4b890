import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { KeyedHash } from "../src/core/keyed-hash.js";
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
    expect(ids.has("LOT-1")).toBe(true);
    expect(ids.has("LOT-10")).toBe(true);
    expect(ids.has("LOT-100")).toBe(false);
    expect(ids.has("LOT-")).toBe(false);
    expect(() => ids.at(3)).toThrow(new RangeError("no container 3 of 3"));
    expect(() => ids.at(-1)).toThrow(new RangeError("no container -1 of 3"));
  });

  it("never takes an id for a longer one it is the start of, however the slots collide", () => {
    // 300 ids, each the start of the next: with 512 slots, probes pass many of the others.
    const chain = Array.from({ length: 300 }, (_, i) => "k".repeat(i + 1));
    const ids = ContainerIds.from(chain);
    expect(ids.size).toBe(300);
    for (const [i, id] of chain.entries()) expect(ids.indexOf(id)).toBe(i);
    expect(ids.indexOf("k".repeat(301))).toBe(-1);
  });

  it("keeps ids beyond Latin-1 once one arrives, and the ones before it", () => {
    const ids = ContainerIds.from(["A-1", "é-2", "批次-3", "A-1", "Z-4"]);
    expect([...ids]).toEqual(["A-1", "é-2", "批次-3", "Z-4"]);
    // U+00FF still fits a byte; U+0100 is the first that does not.
    expect([...ContainerIds.from(["ÿ-1", "Ā-2", "ÿ-1"])]).toEqual(["ÿ-1", "Ā-2"]);
    expect(ids.indexOf("批次-3")).toBe(2);
    expect(ids.indexOf("批次-4")).toBe(-1);
  });

  it("makes room for an id longer than the buffer doubled, given a capacity too small", () => {
    const ids = new ContainerIds({ ids: 1, chars: 1 });
    const long = ["x".repeat(100), "y".repeat(300), "批".repeat(700), "z"];
    for (const id of long) ids.add(id);
    expect([...ids]).toEqual(long);
    for (const [i, id] of long.entries()) expect(ids.indexOf(id)).toBe(i);
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

/** The hash ContainerIds used before keyed hashing: FNV-1a over the code units, unseeded. */
function oldFnv1a(s: string, from = 0x811c9dc5): number {
  let h = from;
  for (let k = 0; k < s.length; k++) h = Math.imul(h ^ s.charCodeAt(k), 0x01000193);
  return h >>> 0;
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.";

/** A random string of `n` characters that MES_ID accepts. */
function randomId(n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(Math.random() * ALPHABET.length)];
  return s;
}

/**
 * 2^k distinct ids of 4k characters with one and the same old FNV-1a hash (Joux's
 * multicollision): per stage two 4-character blocks that lead from the same state to the
 * same full 32-bit state (a birthday search, ~2^16 blocks), so that any choice of one block
 * per stage ends in the same hash, whatever the table size. What a hostile client can post.
 */
function oldHashMulticollision(k: number): string[] {
  let ids = [""];
  let state = 0x811c9dc5;
  for (let stage = 0; stage < k; stage++) {
    const seen = new Map<number, string>();
    for (;;) {
      const block = randomId(4);
      const h = oldFnv1a(block, state);
      const other = seen.get(h);
      if (other !== undefined && other !== block) {
        ids = ids.flatMap((id) => [id + other, id + block]);
        state = h | 0;
        break;
      }
      seen.set(h, block);
    }
  }
  return ids;
}

describe("ContainerIds under hostile ids (invariant 10: no unseeded hash of request data)", () => {
  it("ids that all collide under the old FNV-1a spread over the table as random ids do", () => {
    const crafted = oldHashMulticollision(14);
    expect(crafted.length).toBe(16_384);
    expect(new Set(crafted).size).toBe(crafted.length);
    // Under the old hash every one of them falls in one slot: each add probes all before it.
    expect(new Set(crafted.map((id) => oldFnv1a(id))).size).toBe(1);
    // Under the keyed hash, as the table masks it (2 slots per id), they fill as many slots as
    // random ids would: 32768 x (1 - e^-0.5) = 12,893 expected. A linear hash spreads a set
    // with this much structure (every id a choice of 14 block pairs) as random ids do on
    // average over keys, but one key's count varies far more than random ids' (~50): over
    // 1000 keys, 9,714 to 14,182, 5% under 11,724. So: the median of 101 keys, and every one
    // far from a pile-up (all in one slot under FNV-1a).
    const mask = 2 * crafted.length - 1;
    const filled = Array.from({ length: 101 }, () => {
      const h = new KeyedHash();
      return new Set(crafted.map((id) => h.string(id) & mask)).size;
    }).sort((a, b) => a - b);
    expect(Math.abs((filled[50] as number) - 12_893)).toBeLessThan(400);
    expect(filled[0]).toBeGreaterThan(6_000);
    const ids = new ContainerIds({ ids: crafted.length, chars: crafted.length * 56 });
    for (const id of crafted) ids.add(id);
    expect(ids.size).toBe(crafted.length);
    expect(ids.indexOf(crafted[12_345] as string)).toBe(12_345);
  });

  it("the keys differ per process: the same ids hash differently in two processes", () => {
    const script = `import("./dist/core/keyed-hash.js").then((m) => console.log(JSON.stringify(["C-1", "LOT-20251013-0001", "x"].map((s) => m.processHash().string(s)))))`;
    const run = () =>
      JSON.parse(
        execFileSync(process.execPath, ["--input-type=module", "-e", script], {
          encoding: "utf8",
        }),
      ) as number[];
    const a = run();
    const b = run();
    expect(a).toHaveLength(3);
    // Equal in all three would be a 2^-96 chance with independent keys.
    expect(a).not.toEqual(b);
    // Within one process, one id always has one hash (the table relies on it).
    const h = new KeyedHash();
    expect(h.string("C-1")).toBe(h.string("C-1"));
    expect(h.codes(new Uint8Array([67, 45, 49]), 0, 3)).toBe(h.string("C-1"));
    // Only the code units in [start, end) count, not those around them in the buffer.
    expect(h.codes(new Uint8Array([76, 67, 45, 49, 50]), 1, 4)).toBe(h.string("C-1"));
  });

  it("uses every character of a long id: keys grow past the first 64 positions, drawn in chunks", () => {
    for (const n of [64, 65, 200, 20_000]) {
      const a = "x".repeat(n - 1);
      const codes = (id: string) => new Uint16Array([...`..${id}`].map((c) => c.charCodeAt(0)));
      // Ids that differ only in their last character, beyond the keys first drawn: through
      // codes() first on a fresh hash (it grows the keys itself), then string().
      const h = new KeyedHash();
      const [one, two] = [codes(`${a}1`), codes(`${a}2`)];
      expect(h.codes(one, 2, one.length), `length ${n}`).not.toBe(h.codes(two, 2, two.length));
      expect(h.string(`${a}1`)).toBe(h.codes(one, 2, one.length));
      expect(h.string(`${a}1`)).not.toBe(h.string(`${a}2`));
      // And through string() first on a fresh hash, which grows the keys itself too.
      const fresh = new KeyedHash();
      expect(fresh.string(`${a}1`), `length ${n}`).not.toBe(fresh.string(`${a}2`));
    }
  });
});
