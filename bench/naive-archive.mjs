// The seed's old archive (archive-cleanup-fix.md, "问题 1"), for comparison only: read the
// whole day with LIMIT/OFFSET pages into one array, join it into one JSONL string, gzip it
// whole, write the file. Memory grows with the day; this is what sluice replaces.
// usage: node naive-archive.mjs DB_PATH DATE OUT_FILE
import { writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import Database from "better-sqlite3";

const [dbPath, date, out] = process.argv.slice(2);
const db = new Database(dbPath, { readonly: true });
const page = db.prepare("SELECT * FROM traffic_events WHERE event_date = ? LIMIT ? OFFSET ?");
const allEvents = [];
for (let offset = 0; ; offset += 1000) {
  const batch = page.all(date, 1000, offset);
  if (batch.length === 0) break;
  allEvents.push(...batch);
}
const jsonl = allEvents.map((e) => JSON.stringify(e)).join("\n");
const compressed = gzipSync(jsonl);
writeFileSync(out, compressed);
console.log(JSON.stringify({ rows: allEvents.length, bytes: compressed.length }));
