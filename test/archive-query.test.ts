import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { DuckDBInstance } from "@duckdb/node-api";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WHOLE_ROWS } from "../src/node/query/archive-query.js";
import { type S3Server, startS3rver } from "./s3rver.js";

/**
 * `sluice query`: SQL with DuckDB over exactly the verified parts, with --hot over both tiers
 * (each row once, whatever cleanup has done), read-only and confined to the archive.
 */
const CLI = join(import.meta.dirname, "..", "dist", "cli", "main.js");
const DAYS = ["2025-10-11", "2025-10-12", "2025-10-13"];
const dir = mkdtempSync(join(tmpdir(), "sluice-query-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sluice(env: Record<string, string>, ...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: "utf8",
    env: { ...process.env, ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const ndjson = (text: string) =>
  text
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

const PER_DAY =
  "SELECT CAST(date AS VARCHAR) AS date, COUNT(*) AS n, SUM(id) AS ids, SUM(duration_ms) AS ms FROM traffic_events GROUP BY date ORDER BY date";

describe("sluice query on a folder store", () => {
  const env = {
    SLUICE_DB: `sqlite:${join(dir, "hot.db")}`,
    SLUICE_STORE: `file:${join(dir, "archive")}`,
  };
  let before: Record<string, unknown>[] = [];
  beforeAll(() => {
    expect(existsSync(CLI), "run npm run build").toBe(true);
    expect(sluice(env, "prepare-data", "--date=2025-10-13", "--days=3", "--count=4000").code).toBe(
      0,
    );
    const hot = new Database(join(dir, "hot.db"), { readonly: true });
    before = hot
      .prepare(
        "SELECT event_date AS date, COUNT(*) AS n, SUM(id) AS ids, SUM(duration_ms) AS ms FROM traffic_events GROUP BY event_date ORDER BY event_date",
      )
      .all() as Record<string, unknown>[];
    hot.close();
  });

  it("a table whose ledger was never created: warned of, not read, nothing created", () => {
    const fresh = { ...env, SLUICE_DB: `sqlite:${join(dir, "no-ledger.db")}` };
    expect(sluice(fresh, "prepare-data", "--date=2025-10-13", "--count=10").code).toBe(0);
    const r = sluice(fresh, "query", "SELECT COUNT(*) AS n FROM traffic_events");
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /warning: traffic_events: its ledger is missing or older than this sluice; its archive is not read/,
    );
    const db = new Database(join(dir, "no-ledger.db"), { readonly: true });
    const tables = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
      .all();
    db.close();
    expect(tables).toEqual([{ name: "traffic_events" }]);
  });

  it("reads exactly the verified parts, Parquet and JSONL alike; --hot adds the rest, each row once at every step of cleanup", () => {
    // One day as Parquet, the next as JSONL: the view reads both.
    const parquet = sluice({ ...env, SLUICE_FORMAT: "parquet" }, "archive", `--date=${DAYS[0]}`);
    expect(parquet.code, parquet.stderr).toBe(0);
    expect(parquet.stderr).not.toMatch(/warning/);
    const day0 = join(dir, "archive", "traffic_events", `date=${DAYS[0]}`);
    expect(readdirSync(day0).filter((f) => f.endsWith(".parquet"))).toHaveLength(1);
    expect(sluice(env, "archive", `--date=${DAYS[1]}`).code).toBe(0);
    const archived = sluice(env, "--json", "query", PER_DAY);
    expect(archived.code, archived.stderr).toBe(0);
    expect(ndjson(archived.stdout)).toEqual(before.slice(0, 2));
    // Archived, not cleaned: the hot copies of archived rows are not counted twice.
    const both = sluice(env, "--json", "query", "--hot", PER_DAY);
    expect(ndjson(both.stdout)).toEqual(before);
    // Half-way through a cleanup, and after it.
    const half = sluice(env, "cleanup", `--date=${DAYS[0]}`, "--batch=1000", "--budget-ms=1");
    expect(half.code, half.stderr).toBe(0);
    expect(ndjson(sluice(env, "--json", "query", "--hot", PER_DAY).stdout)).toEqual(before);
    expect(sluice(env, "cleanup", `--date=${DAYS[0]}`).code).toBe(0);
    expect(sluice(env, "cleanup", `--date=${DAYS[1]}`).code).toBe(0);
    expect(ndjson(sluice(env, "--json", "query", "--hot", PER_DAY).stdout)).toEqual(before);
    // --from/--to take only those days' parts.
    const one = sluice(env, "--json", "query", `--from=${DAYS[1]}`, `--to=${DAYS[1]}`, PER_DAY);
    expect(ndjson(one.stdout)).toEqual([before[1]]);
    // A table for a person, CSV for a spreadsheet.
    const table = sluice(env, "query", PER_DAY);
    expect(table.stdout).toMatch(/^date\s+n\s+ids\s+ms\n-+/);
    expect(table.stdout).toMatch(/\(2 rows\)\n$/);
    const csv = sluice(env, "query", "--csv", "SELECT 'a,b' AS x, 1 AS y");
    expect(csv.stdout).toBe('x,y\n"a,b",1\n');
  });

  it("never reads an object the ledger does not list as verified (a killed writer's upload)", () => {
    const day = join(dir, "archive", "traffic_events", `date=${DAYS[1]}`);
    expect(readdirSync(day).some((f) => f.endsWith(".jsonl.gz"))).toBe(true);
    // Whole, and cut short: either would add a row, or fail the read, if it were read.
    const line = `${JSON.stringify({ id: 999_999_999, event_date: DAYS[1], duration_ms: 1 })}\n`;
    const gz = gzipSync(line.repeat(10));
    writeFileSync(join(day, "part-0007-deadbeef.jsonl.gz"), gz);
    writeFileSync(join(day, "part-0008-deadbeef.jsonl.gz"), gz.subarray(0, gz.length >> 1));
    // A Parquet upload cut short beside the day's Parquet part: its footer is missing.
    const day0 = join(dir, "archive", "traffic_events", `date=${DAYS[0]}`);
    const [stored] = readdirSync(day0).filter((f) => f.endsWith(".parquet"));
    const whole = readFileSync(join(day0, stored as string));
    writeFileSync(join(day0, "part-0009-deadbeef.parquet"), whole.subarray(0, whole.length >> 1));
    try {
      // Two days archived and cleaned, the third hot.
      for (const [hot, rows] of [
        [[], before.slice(0, 2)],
        [["--hot"], before],
      ] as const) {
        const r = sluice(env, "--json", "query", ...hot, PER_DAY);
        expect(r.code, r.stderr).toBe(0);
        expect(ndjson(r.stdout)).toEqual(rows);
      }
    } finally {
      rmSync(join(day, "part-0007-deadbeef.jsonl.gz"));
      rmSync(join(day, "part-0008-deadbeef.jsonl.gz"));
      rmSync(join(day0, "part-0009-deadbeef.parquet"));
    }
  });

  it("--out writes Parquet that DuckDB reads back as the same rows", async () => {
    const file = join(dir, "per-day.parquet");
    const r = sluice(env, "query", "--hot", "--out", file, PER_DAY);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/wrote 3 rows/);
    const duck = await (await DuckDBInstance.create(":memory:")).connect();
    const read = await duck.runAndReadAll(
      `SELECT date, n::INTEGER AS n, ids::BIGINT AS ids, ms::BIGINT AS ms FROM '${file}' ORDER BY date`,
    );
    const rows = read.getRowObjects().map((x) => ({ ...x, ids: Number(x.ids), ms: Number(x.ms) }));
    expect(rows).toEqual(before);
  });

  // Each row as the table has it now: a row deleted by hand after its archive is not read
  // from the part, an updated row archived again counts once, and a late row under a key of
  // a part's range counts from the table.
  it("a row deleted or updated after its archive, and a late row under a key a part's range spans: each as the table has it now", () => {
    const day = DAYS[2] as string;
    expect(sluice(env, "archive", `--date=${day}`).code).toBe(0);
    const hot = new Database(join(dir, "hot.db"));
    const { lo, hi } = hot
      .prepare("SELECT MIN(id) AS lo, MAX(id) AS hi FROM traffic_events WHERE event_date = ?")
      .get(day) as { lo: number; hi: number };
    hot
      .prepare("UPDATE traffic_events SET duration_ms = duration_ms + 1000 WHERE id = ?")
      .run(lo + 5);
    // A key inside the archived part's range that no row held (taken from the gap made here).
    hot.prepare("DELETE FROM traffic_events WHERE id = ?").run(lo + 9);
    const now = () =>
      hot
        .prepare(
          "SELECT event_date AS date, COUNT(*) AS n, SUM(id) AS ids, SUM(duration_ms) AS ms FROM traffic_events WHERE event_date = ? GROUP BY event_date",
        )
        .all(day) as Record<string, unknown>[];
    const dayOnly = `SELECT * FROM (${PER_DAY}) WHERE date = '${day}'`;
    try {
      // The hot table as it is now: the updated row once, the deleted one gone.
      const expected = now();
      expect(ndjson(sluice(env, "--json", "query", "--hot", dayOnly).stdout)).toEqual(expected);
      // Cleanup keeps the updated row; the next part archives it; cleanup deletes it.
      sluice(env, "cleanup", `--date=${day}`);
      expect(sluice(env, "archive", `--date=${day}`).code).toBe(0);
      expect(sluice(env, "cleanup", `--date=${day}`).code).toBe(0);
      expect(ndjson(sluice(env, "--json", "query", "--hot", dayOnly).stdout)).toEqual(expected);
      expect(ndjson(sluice(env, "--json", "query", dayOnly).stdout)).toEqual(expected);
      // A row written late under the gap's key, inside part 0's key range.
      hot
        .prepare(
          "INSERT INTO traffic_events (id, event_date, ts, path, referrer, country, user_agent, status, duration_ms) VALUES (?, ?, 1, '/gap', NULL, 'DE', 'x', 200, 7)",
        )
        .run(lo + 9, day);
      expect(hi).toBeGreaterThan(lo + 9);
      const withGap = sluice(env, "--json", "query", "--hot", dayOnly);
      const [was] = expected as { n: number; ids: number; ms: number }[];
      expect(ndjson(withGap.stdout)).toEqual([
        { ...was, n: Number(was?.n) + 1, ids: Number(was?.ids) + lo + 9, ms: Number(was?.ms) + 7 },
      ]);
      // Without --hot, the archive alone: the late row is in no part.
      expect(ndjson(sluice(env, "--json", "query", dayOnly).stdout)).toEqual(expected);
    } finally {
      hot.close();
    }
  });

  it("a result read whole (its LIMIT at most WHOLE_ROWS) and one streamed (above it, or with no LIMIT): every row, in order", () => {
    for (const limit of [WHOLE_ROWS, WHOLE_ROWS + 1, null]) {
      const sql = `SELECT i, i * 2 AS twice FROM range(3 * ${WHOLE_ROWS}) t(i) ORDER BY i DESC${limit === null ? "" : ` LIMIT ${limit}`}`;
      const r = sluice(env, "--json", "query", sql);
      expect(r.code, r.stderr).toBe(0);
      const rows = ndjson(r.stdout);
      const n = limit ?? 3 * WHOLE_ROWS;
      expect(rows).toHaveLength(n);
      expect(
        rows.every((x, k) => x.i === 3 * WHOLE_ROWS - 1 - k && x.twice === 2 * Number(x.i)),
      ).toBe(true);
    }
    // LIMIT and OFFSET over both tiers, read whole.
    const top = sluice(env, "--json", "query", "--hot", `${PER_DAY} LIMIT 1 OFFSET 1`);
    expect(ndjson(top.stdout)).toEqual(before.slice(1, 2));
  });

  for (const [name, sql, message] of [
    ["bad SQL", "SELEC 1", /Parser Error: syntax error at or near "SELEC"/],
    ["an unknown table", "SELECT * FROM nope", /Table with name nope does not exist/],
    ["a write", "CREATE TABLE t AS SELECT 1", /runs only a SELECT/],
    ["two statements", "SELECT 1; SELECT 2", /exactly one SELECT statement \(found 2\)/],
    ["ATTACH", "ATTACH '/tmp/x.db'", /runs only a SELECT/],
    ["a file outside the archive", "SELECT * FROM read_csv('/etc/passwd')", /Permission Error/],
    ["a setting changed", "SET enable_external_access = true", /runs only a SELECT/],
  ] as const) {
    it(`${name}: exits 2 with DuckDB's or sluice's own words, and nothing runs`, () => {
      const r = sluice(env, "query", sql);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe("");
    });
  }
});

describe("sluice query on an S3-protocol store", () => {
  let s3: S3Server;
  const cache = join(dir, "cache");
  let env: Record<string, string>;
  beforeAll(async () => {
    s3 = await startS3rver(["arch"]);
    env = {
      SLUICE_DB: `sqlite:${join(dir, "s3-hot.db")}`,
      SLUICE_STORE: s3.storeUrl("arch", "pv"),
      SLUICE_CACHE: cache,
    };
    expect(sluice(env, "prepare-data", "--date=2025-10-13", "--days=3", "--count=3000").code).toBe(
      0,
    );
    for (const d of DAYS) expect(sluice(env, "archive", `--date=${d}`).code).toBe(0);
  });
  afterAll(() => s3?.stop());

  const cached = () => {
    const out: string[] = [];
    const walk = (d: string) => {
      if (!existsSync(d)) return;
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(d, e.name));
        else out.push(join(d, e.name));
      }
    };
    walk(cache);
    return out.sort();
  };

  it("fetches only the days asked for into the cache, checked, and reads them from there next time", () => {
    const one = sluice(env, "--json", "query", `--from=${DAYS[2]}`, PER_DAY);
    expect(one.code, one.stderr).toBe(0);
    expect(ndjson(one.stdout).map((r) => r.n)).toEqual([3000]);
    expect(cached()).toHaveLength(1);
    expect(cached()[0]).toMatch(/traffic_events\/date=2025-10-13\/part-0000-[0-9a-f]+\.jsonl\.gz$/);
    const all = sluice(env, "--json", "query", PER_DAY);
    expect(ndjson(all.stdout).map((r) => r.n)).toEqual([3000, 3000, 3000]);
    expect(cached()).toHaveLength(3);
  });

  it("an object changed in the store fails the download's sha256 check: exit 1, not a wrong answer", async () => {
    rmSync(cache, { recursive: true, force: true });
    const hot = new Database(join(dir, "s3-hot.db"), { readonly: true });
    const { object_key: key } = hot
      .prepare("SELECT object_key FROM archive_parts WHERE date = ?")
      .get(DAYS[0]) as { object_key: string };
    hot.close();
    await s3.client.send(
      new PutObjectCommand({ Bucket: "arch", Key: `pv/${key}`, Body: Buffer.from("tampered") }),
    );
    const r = sluice(env, "query", `--to=${DAYS[0]}`, PER_DAY);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/downloaded 8 bytes with sha256 [0-9a-f]{64}; the ledger has/);
    expect(cached()).toEqual([]);
  });

  it("past its cap the least recently used parts go, never the ones the query reads", async () => {
    const { PartCache } = await import("../src/node/query/part-cache.js");
    const { openStore } = await import("../src/node/open.js");
    const store = await openStore(env.SLUICE_STORE as string);
    const hot = new Database(join(dir, "s3-hot.db"), { readonly: true });
    const { toPart } = await import("../src/core/archive/ledger/records.js");
    const parts = (
      hot
        .prepare("SELECT * FROM archive_parts WHERE date > ? ORDER BY date")
        .all(DAYS[0]) as Record<string, unknown>[]
    ).map(toPart);
    hot.close();
    const small = new PartCache(
      join(dir, "small-cache"),
      Math.max(...parts.map((p) => p.fileSize)),
    );
    const [older, newer] = await Promise.all(parts.map((p) => small.local(store, p)));
    // The older part is the least recently used, but the query reads it: it stays.
    expect(await small.evict(new Set([older as string]))).toBe(1);
    expect(existsSync(older as string)).toBe(true);
    expect(existsSync(newer as string)).toBe(false);
    // Read again: fetched again, whole.
    expect(statSync(await small.local(store, parts[1] as (typeof parts)[0])).size).toBe(
      parts[1]?.fileSize,
    );
  });
});

describe("sluice query over days whose columns differ", () => {
  it.each(["jsonl", "parquet"])(
    "%s: a column added after some days were archived: every day's rows, the column null where it did not exist",
    (format) => {
      const sub = join(dir, `added-column-${format}`);
      const env = {
        SLUICE_DB: `sqlite:${join(sub, "hot.db")}`,
        SLUICE_STORE: `file:${join(sub, "archive")}`,
        SLUICE_FORMAT: format,
      };
      expect(sluice(env, "prepare-data", "--date=2025-10-13", "--days=2", "--count=300").code).toBe(
        0,
      );
      expect(sluice(env, "archive", "--date=2025-10-12").code).toBe(0);
      const hot = new Database(join(sub, "hot.db"));
      hot.exec("ALTER TABLE traffic_events ADD COLUMN note TEXT");
      hot.exec("UPDATE traffic_events SET note = 'n' || id WHERE event_date = '2025-10-13'");
      const sums = hot
        .prepare(
          "SELECT event_date AS date, COUNT(*) AS n, COUNT(note) AS notes, SUM(id) AS ids FROM traffic_events GROUP BY event_date ORDER BY event_date",
        )
        .all();
      hot.close();
      expect(sluice(env, "archive", "--date=2025-10-13").code).toBe(0);
      const sql =
        "SELECT CAST(date AS VARCHAR) AS date, COUNT(*) AS n, COUNT(note) AS notes, SUM(id) AS ids FROM traffic_events GROUP BY date ORDER BY date";
      for (const hotToo of [[], ["--hot"]]) {
        const r = sluice(env, "--json", "query", ...hotToo, sql);
        expect(r.code, r.stderr).toBe(0);
        expect(ndjson(r.stdout)).toEqual(sums);
      }
      // The added column's values as the table holds them, on the day that has them.
      const notes = sluice(
        env,
        "--json",
        "query",
        "SELECT note FROM traffic_events WHERE note IS NOT NULL ORDER BY id LIMIT 2",
      );
      expect(ndjson(notes.stdout).map((r) => r.note)).toEqual([
        expect.stringMatching(/^n\d+$/),
        expect.stringMatching(/^n\d+$/),
      ]);
    },
  );
});

describe("a result proven small by its LIMIT (read whole, not streamed)", () => {
  it("counts only a constant integer LIMIT of the top level, the least of several", async () => {
    const { limitOf } = await import("../src/node/query/statement.js");
    const conn = await (await DuckDBInstance.create(":memory:")).connect();
    const cases: [string, number | null][] = [
      ["SELECT 1", null],
      ["SELECT 1 LIMIT 10", 10],
      ["SELECT 1 LIMIT 10 OFFSET 5", 10],
      ["SELECT 1 UNION ALL SELECT 2 LIMIT 5", 5],
      ["WITH x AS (SELECT 1 LIMIT 1) SELECT * FROM x, range(10) LIMIT 4", 4],
      ["(SELECT 1 LIMIT 3) ORDER BY 1", 3],
      ["SELECT * FROM (SELECT 1 LIMIT 2), range(10)", null],
      ["SELECT 1 LIMIT ALL", null],
      ["SELECT 1 LIMIT NULL", null],
      ["SELECT 1 LIMIT 10%", null],
      ["SELECT 1 LIMIT 2 + 3", null],
      ["SELECT 1 LIMIT $1", null],
      ["SELECT 1 LIMIT 5.5", null],
      ["SELECT 1 LIMIT '5'", null],
      ["SELECT 1 LIMIT 99999999999999999999", null],
      ["PIVOT (SELECT 1 a, 'x' b) ON b USING sum(a)", null],
      ["SUMMARIZE SELECT 1", null],
    ];
    for (const [sql, bound] of cases) expect([sql, await limitOf(conn, sql)]).toEqual([sql, bound]);
    conn.closeSync();
  });
});
