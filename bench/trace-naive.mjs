// bench/trace-naive: the seed's old events path, for bench/trace.mjs to run beside sluice.
//
//   node bench/trace-naive.mjs --db=<postgres url> --ids=<file, one container id a line>
//
// For each domain: every row for the containers, fetched in IN-lists of 1000 with plain
// client.query (each result materialised whole, two statements in flight per domain, as the
// seed's two workers), kept (fetchall -> DataFrame), grouped into an object keyed by
// CONTAINERID (-> dict); then the whole `{"results":{...}}` response flattened and
// JSON.stringify'd in one piece and written to /dev/null. Prints one JSON line on stdout:
// rows per domain and the response's bytes. No MSD pareto (a few KB beside the rows).
import { readFileSync, writeFileSync } from "node:fs";
import pg from "pg";
import { EVENT_DOMAINS } from "../dist/core/trace/events.js";

const arg = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const DB = arg("db");
const IDS = arg("ids");
if (!DB || !IDS) throw new Error("usage: node bench/trace-naive.mjs --db=URL --ids=FILE");

// The columns the trace API returns for each domain: the same list sluice uses.
const DOMAINS = EVENT_DOMAINS;
const WORKERS = 2;
const PER_STATEMENT = 1000;

const ids = readFileSync(IDS, "utf8").split("\n").filter(Boolean);
const batches = [];
for (let i = 0; i < ids.length; i += PER_STATEMENT) batches.push(ids.slice(i, i + PER_STATEMENT));

const clients = Array.from({ length: WORKERS }, () => new pg.Client({ connectionString: DB }));
await Promise.all(clients.map((c) => c.connect()));

const grouped = {};
try {
  for (const [domain, columns] of Object.entries(DOMAINS)) {
    const cols = columns.map((c) => `"${c}"`).join(", ");
    const perBatch = new Array(batches.length);
    let next = 0;
    await Promise.all(
      clients.map(async (client) => {
        while (next < batches.length) {
          const i = next++;
          const list = batches[i].map((_, j) => `$${j + 1}`).join(", ");
          const r = await client.query(
            `SELECT ${cols} FROM "${domain}" WHERE "CONTAINERID" IN (${list}) ORDER BY "CONTAINERID", "ID"`,
            batches[i],
          );
          perBatch[i] = r.rows;
        }
      }),
    );
    const rows = perBatch.flat(); // fetchall -> DataFrame
    const groups = {}; // -> dict keyed by container
    for (const row of rows) {
      const key = row.CONTAINERID;
      const list = groups[key];
      if (list) list.push(row);
      else groups[key] = [row];
    }
    grouped[domain] = groups;
  }
} finally {
  await Promise.all(clients.map((c) => c.end()));
}

// The response, flattened and serialised whole.
const response = { results: {} };
for (const [domain, groups] of Object.entries(grouped)) {
  const data = Object.values(groups).flat();
  response.results[domain] = { data, count: data.length };
}
const text = JSON.stringify(response);
writeFileSync("/dev/null", text);
const rows = Object.fromEntries(
  Object.entries(response.results).map(([domain, r]) => [domain, r.count]),
);
console.log(JSON.stringify({ rows, bytes: Buffer.byteLength(text) }));
