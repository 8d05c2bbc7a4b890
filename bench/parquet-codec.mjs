// bench/parquet-codec: what the exact Parquet codec costs beside gzip JSONL, in wall time and
// peak RSS, for one part of traffic-like lines.
//
//   npm run build && node bench/parquet-codec.mjs                    # 1M lines
//   node bench/parquet-codec.mjs --rows=200000 --row-group=20000
//
// Each contender runs in its own process under /usr/bin/time -v, from the same deterministic
// generator of lines (pages of 5000, the archive's shape: key first, as SQLite renders them):
//   (a) generate only: the floor every contender pays;
//   (b) gzip JSONL: the lines + newlines through zlib level 6 to a file (today's part);
//   (c) Parquet encode: encodeParquet (roundtrip check per line, snappy, statistics), each row
//       group written to the file as it is yielded;
//   (d) Parquet decode: decodeParquetLines over the file through positional reads (as a
//       spooled temp file would be read), every line compared with the generator's.
// Figures, not pass/fail.
import {
  closeSync,
  createWriteStream,
  mkdirSync,
  openSync,
  readSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createGzip } from "node:zlib";
import { loads, timed } from "./timed.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const CODEC = join(ROOT, "dist", "core", "archive", "parquet", "index.js");
const OUT = join(ROOT, "bench", "out", "parquet-codec");
const arg = (name, def) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : def;
};
const ROWS = Number(arg("rows", "1000000"));
const ROW_GROUP = Number(arg("row-group", "20000"));
const mode = arg("mode", "");

const COLUMNS = [
  { name: "id", type: "INTEGER" },
  { name: "event_date", type: "TEXT" },
  { name: "ts", type: "INTEGER" },
  { name: "path", type: "TEXT" },
  { name: "referrer", type: "TEXT" },
  { name: "country", type: "TEXT" },
  { name: "user_agent", type: "TEXT" },
  { name: "status", type: "INTEGER" },
  { name: "duration_ms", type: "INTEGER" },
];
const PATHS = [
  "/",
  "/pricing",
  "/docs/getting-started",
  "/blog/2025/10/launch",
  "/api/v1/events",
  "/login",
];
const REFS = [null, "https://www.google.com/", "https://news.ycombinator.com/", "https://t.co/x"];
const COUNTRIES = ["US", "DE", "FR", "JP", "BR", "IN", "GB", null];
const AGENTS = [
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/129.0 Safari/537.36",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
  "curl/8.5.0",
];

/** Pages of 5000 lines, deterministic (a small LCG), as the archive would render them. */
function* pages() {
  let seed = 42;
  const rnd = (n) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const base = Date.UTC(2025, 9, 13) / 1000;
  for (let start = 1; start <= ROWS; start += 5000) {
    const page = [];
    for (let id = start; id < Math.min(start + 5000, ROWS + 1); id++) {
      page.push(
        JSON.stringify({
          id,
          event_date: "2025-10-13",
          ts: base + Math.floor((id * 86400) / ROWS),
          path: `${PATHS[rnd(PATHS.length)]}${rnd(4) === 0 ? `?q=${rnd(1000)}` : ""}`,
          referrer: REFS[rnd(REFS.length)],
          country: COUNTRIES[rnd(COUNTRIES.length)],
          user_agent: AGENTS[rnd(AGENTS.length)],
          status: [200, 200, 200, 304, 404, 500][rnd(6)],
          duration_ms: rnd(2000),
        }),
      );
    }
    yield page;
  }
}

const [file] = process.argv.filter((a) => !a.startsWith("--")).slice(2);

if (mode === "generate") {
  let n = 0;
  for (const page of pages()) n += page.length;
  if (n !== ROWS) process.exit(1);
  process.exit(0);
}

if (mode === "jsonl") {
  const gzip = createGzip({ level: 6 });
  const out = createWriteStream(file);
  gzip.pipe(out);
  for (const page of pages()) {
    if (!gzip.write(`${page.join("\n")}\n`)) await new Promise((r) => gzip.once("drain", r));
  }
  gzip.end();
  await new Promise((r) => out.once("finish", r));
  process.exit(0);
}

if (mode === "encode") {
  const { encodeParquet, planColumns } = await import(CODEC);
  const fd = openSync(file, "w");
  const { chunks, totals } = encodeParquet(pages(), planColumns(COLUMNS), {
    rowGroupRows: ROW_GROUP,
  });
  for await (const chunk of chunks) writeSync(fd, chunk);
  closeSync(fd);
  process.stdout.write(JSON.stringify(totals));
  process.exit(0);
}

if (mode === "decode") {
  const { decodeParquetLines } = await import(CODEC);
  const fd = openSync(file, "r");
  // What a spooled part needs: positional reads, never the whole file in memory.
  const asyncBuffer = {
    byteLength: statSync(file).size,
    slice(start, end = this.byteLength) {
      const buf = new Uint8Array(end - start);
      readSync(fd, buf, 0, buf.byteLength, start);
      return buf.buffer;
    },
  };
  const want = pages();
  let expected = [];
  let at = 0;
  let n = 0;
  for await (const batch of decodeParquetLines(asyncBuffer)) {
    for (const line of batch) {
      if (at === expected.length) {
        expected = want.next().value;
        at = 0;
      }
      if (line !== expected[at++]) {
        process.stderr.write(`line ${n + 1} differs\n`);
        process.exit(1);
      }
      n++;
    }
  }
  closeSync(fd);
  process.exit(n === ROWS ? 0 : 1);
}

// The driver.
rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });
const self = fileURLToPath(import.meta.url);
const files = { jsonl: join(OUT, "part.jsonl.gz"), encode: join(OUT, "part.parquet") };
const rows = [];
// The capped runs: V8 with a 64 MB old space (a Worker's isolate has 128 MB in all), which
// shows what the codec keeps rather than what a lazy collector leaves behind.
const CAP = "--max-old-space-size=64";
for (const [name, label, target, flags] of [
  ["generate", "generate the lines only (the floor)", "", []],
  ["jsonl", "gzip JSONL write (zlib 6)", files.jsonl, []],
  ["encode", "Parquet encode (exactness check, snappy, statistics)", files.encode, []],
  ["decode", "Parquet decode + compare every line", files.encode, []],
  ["jsonl", "gzip JSONL write, old space capped at 64 MB", files.jsonl, [CAP]],
  ["encode", "Parquet encode, old space capped at 64 MB", files.encode, [CAP]],
  ["decode", "Parquet decode, old space capped at 64 MB", files.encode, [CAP]],
]) {
  process.stderr.write(`(${label}) ...\n`);
  const r = timed(process.execPath, [
    ...flags,
    self,
    `--mode=${name}`,
    `--rows=${ROWS}`,
    `--row-group=${ROW_GROUP}`,
    target || "-",
  ]);
  if (r.code !== 0) throw new Error(`${name} failed: ${r.err}`);
  const size =
    name === "jsonl" || name === "encode" ? (statSync(target).size / 1048576).toFixed(1) : "";
  rows.push(`| ${label} | ${r.secs.toFixed(2)} | ${r.rssMB.toFixed(1)} | ${size} |`);
  if (name === "encode" && !flags.length) rows.push(`|   totals: ${r.stdout} | | | |`);
}
console.log(`\nbench/parquet-codec  ${new Date().toISOString()}  load ${loads()}`);
console.log(
  `node bench/parquet-codec.mjs --rows=${ROWS} --row-group=${ROW_GROUP}  (Node ${process.version})`,
);
console.log("| step | wall s | peak RSS MB | file MB |");
console.log("|---|---|---|---|");
for (const r of rows) console.log(r);
