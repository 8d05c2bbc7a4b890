// ContainerIds: time per add and indexOf for ordinary container ids (the seed's shape), and
// the time to add ids crafted so that they all collide under the unseeded FNV-1a hash the
// table used before keyed hashing: what a hostile client could post. Prints figures; passes
// or fails nothing.
//
//   npm run build && node bench/container-ids.mjs [--k=14] [path/to/container-ids.js ...]
//
// Each path is another build's dist/core/trace/container-ids.js (default: this checkout's);
// the one before keyed hashing is 3962434 (git worktree add /tmp/sluice-old 3962434, then
// npm run build there). --k: 2^k crafted ids of 4k characters (default 14: 16,384 ids).
import { pathToFileURL } from "node:url";

const args = process.argv.slice(2);
const K = Number(args.find((a) => a.startsWith("--k="))?.slice(4) ?? 14);
const paths = args.filter((a) => !a.startsWith("--"));
if (paths.length === 0) paths.push(new URL("../dist/core/trace/container-ids.js", import.meta.url));

/** The hash ContainerIds used before keyed hashing: FNV-1a over the code units, unseeded. */
function oldFnv1a(s, from = 0x811c9dc5) {
  let h = from;
  for (let k = 0; k < s.length; k++) h = Math.imul(h ^ s.charCodeAt(k), 0x01000193);
  return h >>> 0;
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.";
const randomId = (n) =>
  Array.from({ length: n }, () => ALPHABET[Math.floor(Math.random() * ALPHABET.length)]).join("");

/**
 * 2^k distinct ids of 4k characters with one and the same FNV-1a hash (Joux's
 * multicollision): per stage two 4-character blocks that lead from the same state to the same
 * full 32-bit state (a birthday search), so any choice of one block per stage ends in the same
 * hash, whatever the table size. As test/container-ids.test.ts crafts them.
 */
function multicollision(k) {
  let ids = [""];
  let state = 0x811c9dc5;
  for (let stage = 0; stage < k; stage++) {
    const seen = new Map();
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

const n = 200_000;
const ordinary = Array.from({ length: n }, (_, i) => `C${String(i).padStart(7, "0")}-01`);
const crafted = multicollision(K);
const plain = crafted.map(() => randomId(4 * K)); // random ids of the crafted ids' length
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

for (const path of paths) {
  const href = path instanceof URL ? path.href : pathToFileURL(path).href;
  const { ContainerIds } = await import(href);
  const runs = [];
  for (let run = 0; run < 7; run++) {
    const set = new ContainerIds({ ids: n, chars: n * 11 });
    const t0 = performance.now();
    for (const id of ordinary) set.add(id);
    const t1 = performance.now();
    let found = 0;
    for (const id of ordinary) found += set.indexOf(id) >= 0 ? 1 : 0;
    const t2 = performance.now();
    // Grown from the default size: every rehash too.
    const grown = new ContainerIds();
    const t3 = performance.now();
    for (const id of ordinary) grown.add(id);
    const t4 = performance.now();
    if (found !== n || grown.size !== n) throw new Error("lost ids");
    runs.push({
      add: ((t1 - t0) * 1e6) / n,
      indexOf: ((t2 - t1) * 1e6) / n,
      grown: ((t4 - t3) * 1e6) / n,
    });
  }
  const m = (k) => median(runs.map((r) => r[k])).toFixed(0);
  console.log(`${href}`);
  console.log(
    `  ${n} ordinary ids of 11 chars, median of ${runs.length} runs: add ${m("add")} ns, indexOf ${m("indexOf")} ns, add growing from 64 ${m("grown")} ns`,
  );
  // The whole add of each list, fastest of 3 (the event loop is blocked for that long).
  const addAll = (ids) => {
    let best = Number.POSITIVE_INFINITY;
    for (let run = 0; run < 3; run++) {
      const set = new ContainerIds({ ids: ids.length, chars: ids.length * 4 * K });
      const t0 = performance.now();
      for (const id of ids) set.add(id);
      best = Math.min(best, performance.now() - t0);
      if (set.size !== ids.length) throw new Error("lost ids");
    }
    return best;
  };
  addAll(plain); // warm-up
  const p = addAll(plain);
  const c = addAll(crafted);
  console.log(
    `  ${crafted.length} ids of ${4 * K} chars, fastest of 3: random ${p.toFixed(1)} ms, all colliding under FNV-1a ${c.toFixed(1)} ms (${(c / p).toFixed(1)}x)`,
  );
}
