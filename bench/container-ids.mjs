// Time per ContainerIds.add and indexOf for ordinary container ids (the seed's shape), to
// compare hash functions. Prints figures; passes or fails nothing.
//   npm run build && node bench/container-ids.mjs [path/to/container-ids.js]
import { pathToFileURL } from "node:url";

const path = process.argv[2] ?? new URL("../dist/core/trace/container-ids.js", import.meta.url);
const { ContainerIds } = await import(path instanceof URL ? path.href : pathToFileURL(path).href);

const n = 200_000;
const ids = Array.from({ length: n }, (_, i) => `C${String(i).padStart(7, "0")}-01`);
const runs = [];
for (let run = 0; run < 7; run++) {
  const set = new ContainerIds({ ids: n, chars: n * 11 });
  const t0 = performance.now();
  for (const id of ids) set.add(id);
  const t1 = performance.now();
  let found = 0;
  for (const id of ids) found += set.indexOf(id) >= 0 ? 1 : 0;
  const t2 = performance.now();
  // Grown from the default size: every rehash too.
  const grown = new ContainerIds();
  const t3 = performance.now();
  for (const id of ids) grown.add(id);
  const t4 = performance.now();
  if (found !== n || grown.size !== n) throw new Error("lost ids");
  runs.push({
    add: ((t1 - t0) * 1e6) / n,
    indexOf: ((t2 - t1) * 1e6) / n,
    grown: ((t4 - t3) * 1e6) / n,
  });
}
const median = (k) => runs.map((r) => r[k]).sort((a, b) => a - b)[runs.length >> 1];
console.log(
  `${n} ids of 11 chars, median of ${runs.length} runs: add ${median("add").toFixed(0)} ns, indexOf ${median("indexOf").toFixed(0)} ns, add growing from 64 ${median("grown").toFixed(0)} ns`,
);
