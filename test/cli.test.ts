import { spawn, spawnSync } from "node:child_process";
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
import Database from "better-sqlite3";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dateFolder, partPath } from "./helpers.js";
import { type TestDb, postgresDb } from "./servers.js";

const CLI = join(import.meta.dirname, "..", "dist", "cli", "main.js");
let dir = "";
let db = "";

function sluice(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: "utf8",
    env: {
      ...process.env,
      SLUICE_DB: `sqlite:${db}`,
      SLUICE_STORE: `file:${join(dir, "archive")}`,
      ...env,
    },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  if (!existsSync(CLI))
    throw new Error(`${CLI} is missing: run 'npm run build' (npm test does it)`);
  dir = mkdtempSync(join(tmpdir(), "sluice-cli-"));
  db = join(dir, "hot.db");
  expect(sluice(["prepare-data", "--count=3000", "--date=2025-10-13"]).code).toBe(0);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("sluice CLI", () => {
  it("runs the whole flow and reports it as JSON for scripts", () => {
    const archived = sluice(["--json", "archive", "--date=2025-10-13"]);
    expect(archived.code).toBe(0);
    expect(JSON.parse(archived.stdout)).toMatchObject({ ok: true, written: { eventCount: 3000 } });
    const cleaned = sluice(["--json", "cleanup", "--date=2025-10-13"]);
    expect(JSON.parse(cleaned.stdout)).toMatchObject({ ok: true, complete: true, deleted: 3000 });
    const status = JSON.parse(sluice(["--json", "status", "--date=2025-10-13"]).stdout);
    expect(status).toMatchObject({
      hotRows: 0,
      lateRows: 0,
      record: { state: "cleaned", cleaned: true },
    });
    expect(sluice(["status"]).stdout).toMatch(/2025-10-13\s+cleaned/);
  });

  // Each bad input: exit code 2 and one line on stderr that names what to fix; no stack trace.
  const bad: [string, string[], RegExp, Record<string, string>?][] = [
    ["archive, malformed date", ["archive", "--date=2025-13-45"], /not a day of the calendar/],
    ["archive, not a date", ["archive", "--date=yesterday"], /not YYYY-MM-DD/],
    ["archive, SQL in the date", ["archive", "--date=2025-10-13' OR 1=1 --"], /not YYYY-MM-DD/],
    ["archive, no date", ["archive"], /required option '--date/],
    ["archive, a date with no rows", ["archive", "--date=2030-01-01"], /nothing to archive/],
    ["verify, a date never archived", ["verify", "--date=2030-01-01"], /no archive/],
    [
      "cleanup, a date never archived",
      ["cleanup", "--date=2030-01-01"],
      /no archive .* run archive first/,
    ],
    [
      "cleanup, bad batch",
      ["cleanup", "--date=2025-10-13", "--batch=0"],
      /--batch must be a whole number/,
    ],
    [
      "cleanup, bad budget",
      ["cleanup", "--date=2025-10-13", "--budget-ms=soon"],
      /--budget-ms must be/,
    ],
    ["verify, neither --date nor --all", ["verify"], /either --date YYYY-MM-DD or --all/],
    ["verify, both", ["verify", "--all", "--date=2025-10-13"], /either --date/],
    ["status, bad date", ["status", "--date=20251013"], /not YYYY-MM-DD/],
    [
      "status, unknown table",
      ["--table=trafic_events", "status"],
      /table 'trafic_events' does not exist/,
    ],
    ["status, SQL as a table", ["--table=x; DROP TABLE y", "status"], /is not a table name/],
    ["backlog, bad retention", ["backlog", "--retention-days=-1"], /retention-days/],
    ["backlog, bad today", ["backlog", "--today=2025-02-30"], /not a day of the calendar/],
    [
      "prepare-data, bad count",
      ["prepare-data", "--count=lots", "--date=2025-10-13"],
      /--count must be/,
    ],
    [
      "prepare-data, bad workload",
      ["prepare-data", "--workload=orders", "--date=2025-10-13"],
      /Allowed choices are traffic, mes/,
    ],
    ["an unknown command", ["archvie", "--date=2025-10-13"], /unknown command 'archvie'/],
    ["an unknown option", ["archive", "--date=2025-10-13", "--fast"], /unknown option '--fast'/],
    [
      "a missing database",
      ["status"],
      /no database at sqlite:.*nope\.db/,
      { SLUICE_DB: "sqlite:/nonexistent/nope.db" },
    ],
    [
      "an unsupported database URL",
      ["status"],
      /unsupported database scheme 'oracle:'/,
      { SLUICE_DB: "oracle://scott@db/orcl" },
    ],
    [
      "a bad env value",
      ["status"],
      /DB_SLOW_FETCHMANY_SIZE="-5"/,
      { DB_SLOW_FETCHMANY_SIZE: "-5" },
    ],
    [
      "serve, a short admin token (never printed)",
      ["serve", "--port=0"],
      /ADMIN_TOKEN=\*\*\*: must be at least 16 characters/,
      { ADMIN_TOKEN: "hunter2" },
    ],
    [
      "serve, a bad schedule",
      ["serve", "--port=0"],
      /ARCHIVE_CRON 'every day at 3'/,
      { ARCHIVE_CRON: "every day at 3" },
    ],
    ["serve, a bad port", ["serve", "--port=99999"], /--port must be a whole number/],
    [
      "serve, bad drop-partitions flag",
      ["serve", "--port=0"],
      /SLUICE_DROP_PARTITIONS="maybe": expected true or false/,
      { SLUICE_DROP_PARTITIONS: "maybe" },
    ],
  ];
  for (const [name, args, message, env] of bad) {
    it(`exits 2 with one clear line: ${name}`, () => {
      const r = sluice(args, env);
      expect(r.code, r.stderr).toBe(2);
      const lines = r.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(message);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    });
  }

  it("with --json, a refused command still prints one JSON object on stdout", () => {
    for (const args of [["archive"], ["archive", "--date=2025-13-45"], ["archvie"]]) {
      const r = sluice(["--json", ...args]);
      expect(r.code, r.stderr).toBe(2);
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, error: "bad_input" });
    }
  });

  it("--version and -V print the package's version; bare sluice prints help and exits 0", () => {
    const { version } = JSON.parse(
      readFileSync(join(import.meta.dirname, "..", "package.json"), "utf8"),
    ) as { version: string };
    for (const flag of ["--version", "-V"]) {
      const r = sluice([flag]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe(version);
    }
    const bare = sluice([]);
    expect(bare.code, bare.stderr).toBe(0);
    expect(bare.stdout).toMatch(/^Usage: sluice /);
    expect(bare.stderr).toBe("");
  });

  it("a command's --help lists the global options, marks the required ones, and shows an example", () => {
    const r = sluice(["archive", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/--date <YYYY-MM-DD>\s+the partition \(required\)/);
    expect(r.stdout).toMatch(/Global Options:[\s\S]*--db <url>[\s\S]*--json/);
    expect(r.stdout).toMatch(/Examples?:\n\s+sluice archive --date 2025-10-13/);
  });

  it("--env-file reads settings from a file; the environment and flags win over it", () => {
    const file = join(dir, "sluice.env");
    writeFileSync(
      file,
      `# as deploy/.env.example writes them\nSLUICE_DB="sqlite:${join(dir, "from-file.db")}"\nARCHIVE_CRON="30 3 * * *"\n`,
    );
    const { SLUICE_DB: _, ...rest } = process.env;
    const fromFile = spawnSync(process.execPath, [CLI, "--env-file", file, "status"], {
      encoding: "utf8",
      env: rest,
    });
    expect(fromFile.stderr).toMatch(/no database at sqlite:.*from-file\.db/);
    expect(sluice(["--env-file", file, "status"]).stderr).not.toMatch(/from-file/);
    // Node 20 itself reads --env-file anywhere on the command line (and exits 9 on a missing
    // file, before sluice runs); later Node leaves it to sluice (exit 2). Either way: not 0,
    // and the file is named.
    const missing = sluice(["--env-file", join(dir, "nope.env"), "status"]);
    expect([2, 9]).toContain(missing.code);
    expect(missing.stderr).toMatch(/nope\.env/);
  });

  it("backlog archives and cleans every date older than the retention, and only those", () => {
    const env = {
      SLUICE_DB: `sqlite:${join(dir, "backlog.db")}`,
      SLUICE_STORE: `file:${join(dir, "backlog")}`,
    };
    expect(sluice(["prepare-data", "--count=700", "--date=2025-11-05", "--days=5"], env).code).toBe(
      0,
    );
    const run = sluice(["backlog", "--today=2025-11-05", "--retention-days=3"], env);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/2025-11-01: cleaned/);
    expect(run.stdout).toMatch(/2025-11-02: cleaned/);
    const list = JSON.parse(sluice(["--json", "status"], env).stdout) as {
      partitions: { date: string; state: string }[];
    };
    expect(list.partitions.map((p) => [p.date, p.state])).toEqual([
      ["2025-11-01", "cleaned"],
      ["2025-11-02", "cleaned"],
    ]);
    for (const [date, rows] of [
      ["2025-11-02", 0],
      ["2025-11-03", 700],
      ["2025-11-05", 700],
    ] as const) {
      expect(JSON.parse(sluice(["--json", "status", `--date=${date}`], env).stdout).hotRows).toBe(
        rows,
      );
    }
    expect(sluice(["backlog", "--today=2025-11-05", "--retention-days=3"], env).stdout).toMatch(
      /nothing older than 2025-11-03/,
    );
  });

  it("verify --all re-reads every archived date, records each failure and goes on", () => {
    const env = {
      SLUICE_DB: `sqlite:${join(dir, "verify-all.db")}`,
      SLUICE_STORE: `file:${join(dir, "verify-all")}`,
    };
    expect(sluice(["prepare-data", "--count=300", "--date=2025-09-03", "--days=3"], env).code).toBe(
      0,
    );
    for (const d of ["2025-09-01", "2025-09-02", "2025-09-03"]) {
      expect(sluice(["archive", `--date=${d}`], env).code).toBe(0);
    }
    expect(sluice(["cleanup", "--date=2025-09-01"], env).code).toBe(0);
    const ok = sluice(["--json", "verify", "--all"], env);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({
      ok: true,
      partitions: [
        { date: "2025-09-01", ok: true, rows: 300 },
        { date: "2025-09-02", ok: true, rows: 300 },
        { date: "2025-09-03", ok: true, rows: 300 },
      ],
    });
    // One archive (already cleaned) damaged, one deleted; the third left alone.
    const damaged = partPath(dateFolder(join(dir, "verify-all"), "2025-09-01"));
    const bytes = readFileSync(damaged);
    const mid = bytes.length >> 1;
    bytes.writeUInt8((bytes[mid] as number) ^ 0xff, mid);
    writeFileSync(damaged, bytes);
    rmSync(partPath(dateFolder(join(dir, "verify-all"), "2025-09-02")));
    const r = sluice(["--json", "verify", "--all"], env);
    expect(r.code).toBe(1);
    expect(r.stdout.trim().split("\n")).toHaveLength(1); // one JSON object, no second one
    const out = JSON.parse(r.stdout) as { ok: boolean; partitions: Record<string, unknown>[] };
    expect(out.ok).toBe(false);
    expect(out.partitions.map((p) => [p.date, p.ok])).toEqual([
      ["2025-09-01", false],
      ["2025-09-02", false],
      ["2025-09-03", true],
    ]);
    expect(out.partitions[0]?.error).toMatch(/sha256/);
    expect(out.partitions[1]?.error).toMatch(/is missing/);
    expect(r.stderr).toMatch(/2 of 3 partitions failed verification \(2025-09-01, 2025-09-02\)/);
    const list = JSON.parse(sluice(["--json", "status"], env).stdout) as {
      partitions: { date: string; state: string; lastError: string | null }[];
    };
    expect(list.partitions.map((p) => [p.date, p.state])).toEqual([
      ["2025-09-01", "failed"],
      ["2025-09-02", "failed"],
      ["2025-09-03", "verified"],
    ]);
    expect(list.partitions[0]?.lastError).toMatch(/sha256/);
    expect(list.partitions[1]?.lastError).toMatch(/is missing/);
    // Nothing else changed: the hot rows of the dates not cleaned are all there.
    for (const d of ["2025-09-02", "2025-09-03"]) {
      expect(JSON.parse(sluice(["--json", "status", `--date=${d}`], env).stdout).hotRows).toBe(300);
    }
  });

  it("exits 1 when the job itself fails, and says why", () => {
    // Verified archive, then the partition's state forbids cleanup: corrupt it on purpose.
    const d = "2025-10-12";
    expect(sluice(["prepare-data", "--count=500", `--date=${d}`]).code).toBe(0);
    expect(sluice(["archive", `--date=${d}`]).code).toBe(0);
    const file = partPath(dateFolder(join(dir, "archive"), d));
    rmSync(file);
    const r = sluice(["cleanup", `--date=${d}`]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/failed verification: object \S+ is missing/);
  });

  it("cleanup refuses (exit 1, nothing deleted) a part whose rollup was altered; sluice rollup rebuilds it", () => {
    const d = "2025-10-11";
    expect(sluice(["prepare-data", "--count=700", `--date=${d}`]).code).toBe(0);
    expect(sluice(["archive", `--date=${d}`]).code).toBe(0);
    expect(sluice(["status", `--date=${d}`]).stdout).toMatch(
      /part 0 .* 700 rows .* rollup 700 rows/,
    );
    const sql = new Database(db);
    try {
      sql
        .prepare("UPDATE archive_rollups SET views = views - 1 WHERE date = ? AND path = '/'")
        .run(d);
      const refused = sluice(["cleanup", `--date=${d}`]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(
        /part 0 holds 700 rows but its rollup counts 699: refusing to delete any row. Run 'sluice rollup --date 2025-10-11'/,
      );
      const hot = () =>
        (
          sql.prepare("SELECT COUNT(*) AS n FROM traffic_events WHERE event_date = ?").get(d) as {
            n: number;
          }
        ).n;
      expect(hot()).toBe(700);
      const rebuilt = sluice(["--json", "rollup", `--date=${d}`]);
      expect(rebuilt.code, rebuilt.stderr).toBe(0);
      expect(JSON.parse(rebuilt.stdout)).toEqual({
        ok: true,
        date: d,
        parts: [{ part: 0, rows: 700, rollupRows: 700 }],
      });
      expect(sluice(["cleanup", `--date=${d}`]).code).toBe(0);
      expect(hot()).toBe(0);
    } finally {
      sql.close();
    }
  });

  it("rollup --all rebuilds the rollups of every cleaned date archived before rollups were kept, only those", () => {
    const d = "2025-10-09";
    expect(sluice(["prepare-data", "--count=900", `--date=${d}`]).code).toBe(0);
    expect(sluice(["archive", `--date=${d}`]).code).toBe(0);
    expect(sluice(["cleanup", `--date=${d}`]).code).toBe(0);
    const sql = new Database(db);
    try {
      // As an archive written before rollups: no counts, no rollup_rows; its rows long deleted.
      sql.prepare("UPDATE archive_parts SET rollup_rows = NULL WHERE date = ?").run(d);
      sql.prepare("DELETE FROM archive_rollups WHERE date = ?").run(d);
      const r = sluice(["--json", "rollup", "--all"]);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({
        ok: true,
        partitions: [{ date: d, ok: true, parts: 1, rows: 900 }],
      });
      const [n] = sql
        .prepare("SELECT SUM(views) AS n FROM archive_rollups WHERE date = ?")
        .all(d) as { n: number }[];
      expect(n?.n).toBe(900);
      expect(sluice(["rollup", "--all"]).stdout).toMatch(/every archived part has its rollup/);
    } finally {
      sql.close();
    }
  });
});

const server = await postgresDb();
afterAll(async () => {
  await server?.close();
});

describe.runIf(server !== null)("sluice CLI on PostgreSQL", () => {
  it("prepare-data --table with SQL in it exits 2 with one line, and runs none of it", async () => {
    const db = server as TestDb;
    await db.run("CREATE TABLE victim (id int)");
    await db.run("INSERT INTO victim VALUES (1), (2)");
    const table = "pwn (id int); DROP TABLE victim; CREATE TABLE pwn2";
    const r = sluice(["prepare-data", "--count=10", "--date=2025-10-13", `--table=${table}`], {
      SLUICE_DB: db.url,
    });
    expect(r.code, r.stderr).toBe(2);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /table 'pwn \(id int\); DROP TABLE victim.*' is not a plain identifier/,
    );
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const victim = await client.query("SELECT COUNT(*)::int AS n FROM victim");
      expect(victim.rows).toEqual([{ n: 2 }]);
      const tables = await client.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1",
      );
      expect(tables.rows.map((t) => t.table_name)).toEqual(["victim"]);
    } finally {
      await client.end();
    }
  });

  it("status creates nothing: no ledger tables appear until a job runs", async () => {
    const db = server as TestDb;
    await db.run("CREATE TABLE pv_ro (id BIGINT PRIMARY KEY, created_at TIMESTAMPTZ NOT NULL)");
    await db.run("INSERT INTO pv_ro VALUES (1, '2025-10-13 12:00+00')");
    const env = { SLUICE_DB: db.url, SLUICE_TABLE: "pv_ro", SLUICE_PARTITION_COLUMN: "created_at" };
    const ledgerTables = async () =>
      (
        await db.query(
          "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name IN ('archive_metadata', 'archive_parts', 'sluice_migrations') ORDER BY 1",
        )
      ).map((t) => t.table_name);
    const list = sluice(["--json", "status"], env);
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout)).toEqual({ ok: true, partitions: [] });
    const one = sluice(["--json", "status", "--date=2025-10-13"], env);
    expect(one.code, one.stderr).toBe(0);
    expect(JSON.parse(one.stdout)).toMatchObject({ hotRows: 1, record: null, parts: [] });
    expect(await ledgerTables()).toEqual([]);
    expect(sluice(["archive", "--date=2025-10-13"], env).code).toBe(0);
    expect(await ledgerTables()).toEqual([
      "archive_metadata",
      "archive_parts",
      "sluice_migrations",
    ]);
    expect(JSON.parse(sluice(["--json", "status"], env).stdout).partitions).toHaveLength(1);
  });
});

describe("sluice restore", () => {
  it("brings back every cleaned row; killed mid-way with SIGKILL and run again, every row is there once", async () => {
    const hot = join(dir, "restore.db");
    const env = {
      SLUICE_DB: `sqlite:${hot}`,
      SLUICE_STORE: `file:${join(dir, "restore-archive")}`,
    };
    const DAY = "2025-10-13";
    const ROWS = 200_000;
    expect(sluice(["prepare-data", `--count=${ROWS}`, `--date=${DAY}`], env).code).toBe(0);
    expect(sluice(["archive", `--date=${DAY}`], env).code).toBe(0);
    const { default: Database } = await import("better-sqlite3");
    const look = new Database(hot, { readonly: true });
    const count = () =>
      look
        .prepare(
          "SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS k FROM traffic_events WHERE event_date = ?",
        )
        .get(DAY) as { n: number; k: number };
    try {
      // Aimed at a restore under way: some rows back, not all. Retried (cleaned again) if the
      // kill lands before the first batch or after the last; the test fails if it never lands.
      let landed = -1;
      for (let attempt = 0; attempt < 5 && landed < 0; attempt++) {
        expect(sluice(["cleanup", `--date=${DAY}`], env).code).toBe(0);
        expect(count().n).toBe(0);
        const child = spawn(process.execPath, [CLI, "restore", `--date=${DAY}`], {
          env: { ...process.env, ...env },
          stdio: "ignore",
        });
        const exited = new Promise((r) => child.once("exit", r));
        for (;;) {
          const n = count().n;
          if (n > 0 || child.exitCode !== null) {
            child.kill("SIGKILL");
            break;
          }
          await new Promise((r) => setTimeout(r, 5));
        }
        await exited;
        const n = count().n;
        if (n > 0 && n < ROWS) landed = n;
      }
      expect(landed, "the kill never landed mid-restore").toBeGreaterThan(0);
      // The killed holder is gone (same host, its pid dead): the rerun takes over at once.
      const again = sluice(["--json", "restore", `--date=${DAY}`], env);
      expect(again.code, again.stderr).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({
        ok: true,
        read: ROWS,
        inserted: ROWS - landed,
        skipped: landed,
      });
      expect(count()).toEqual({ n: ROWS, k: ROWS });
      const status = JSON.parse(sluice(["--json", "status", `--date=${DAY}`], env).stdout);
      expect(status).toMatchObject({
        hotRows: ROWS,
        lateRows: ROWS,
        record: { state: "cleaned", restoredRows: ROWS - landed },
      });
    } finally {
      look.close();
    }
  }, 120_000);
});

describe("--dry-run", () => {
  it("archive, cleanup and backlog say what they would do and change nothing: no ledger table, no row, no file", async () => {
    const hot = join(dir, "dry.db");
    const store = join(dir, "dry-archive");
    const env = { SLUICE_DB: `sqlite:${hot}`, SLUICE_STORE: `file:${store}` };
    expect(sluice(["prepare-data", "--count=500", "--days=2", "--date=2025-10-14"], env).code).toBe(
      0,
    );
    const { default: Database } = await import("better-sqlite3");
    /** Everything a run could change: the tables and their rows, and the store's files. */
    const snapshot = () => {
      const db = new Database(hot, { readonly: true });
      try {
        const tables = db
          .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
          .all() as { name: string }[];
        const rows = tables.map(({ name }) => db.prepare(`SELECT * FROM "${name}"`).all());
        return JSON.stringify({ tables, rows, files: existsSync(store) ? listFiles(store) : [] });
      } finally {
        db.close();
      }
    };
    const dry = (args: string[]) => {
      const before = snapshot();
      const r = sluice(["--json", ...args, "--dry-run"], env);
      expect(r.code, r.stderr).toBe(0);
      expect(snapshot(), `${args.join(" ")} --dry-run changed something`).toBe(before);
      return JSON.parse(r.stdout);
    };

    const first = dry(["archive", "--date=2025-10-13"]);
    expect(first).toMatchObject({ dryRun: true, state: "not archived", part: 0, after: null });
    expect(first).toMatchObject({ rows: 500, verify: [] });
    expect(first.maxKey - first.minKey).toBe(499);
    expect(snapshot()).not.toMatch(/archive_metadata/);
    expect(dry(["cleanup", "--date=2025-10-13"]).refused).toMatch(/no archive/);
    const backlog = dry(["backlog", "--today=2025-10-20"]);
    expect(backlog.tables).toHaveLength(1);
    expect(backlog.tables[0].dates.map((d: { date: string }) => d.date)).toEqual([
      "2025-10-13",
      "2025-10-14",
    ]);

    expect(sluice(["archive", "--date=2025-10-13"], env).code).toBe(0);
    const db = new Database(hot);
    db.prepare(
      "INSERT INTO traffic_events (event_date, ts, path, status, duration_ms) VALUES ('2025-10-13', 1, '/late', 200, 1)",
    ).run();
    db.close();
    const next = dry(["archive", "--date=2025-10-13"]);
    expect(next).toMatchObject({ state: "verified", part: 1, after: first.maxKey, rows: 1 });
    const clean = dry(["cleanup", "--date=2025-10-13"]);
    expect(clean).toMatchObject({ state: "verified", parts: [0], rows: 500, deletedBefore: 0 });
    const text = sluice(["cleanup", "--date=2025-10-13", "--dry-run"], env).stdout;
    expect(text).toMatch(
      /^dry run: cleanup of traffic_events 2025-10-13 \(verified\) would compare 500 rows of part\(s\) 0/,
    );
  });
});

/** Every file under `root`, with its size, sorted. */
function listFiles(root: string): string[] {
  return (readdirSync(root, { recursive: true }) as string[])
    .map((f) => join(root, f))
    .filter((f) => statSync(f).isFile())
    .map((f) => `${f} ${statSync(f).size}`)
    .sort();
}

describe.runIf(server !== null)("a config file of tables (PostgreSQL)", () => {
  it("backlog archives and cleans three tables (text date, DATE, timestamptz in another schema), each by its own retention", async () => {
    const db = server as TestDb;
    const other = `cfg_${process.pid}`;
    await db.run(`CREATE SCHEMA ${other}`);
    await db.run("CREATE TABLE c_text (id BIGINT PRIMARY KEY, event_date VARCHAR(10) NOT NULL)");
    await db.run("CREATE TABLE c_date (k BIGINT PRIMARY KEY, day DATE NOT NULL)");
    await db.run(
      `CREATE TABLE ${other}.c_ts (id BIGINT PRIMARY KEY, created_at TIMESTAMPTZ NOT NULL)`,
    );
    for (let i = 1; i <= 40; i++) {
      const day = `2025-10-${String(10 + (i % 4)).padStart(2, "0")}`; // 10th to 13th
      await db.run(`INSERT INTO c_text VALUES (${i}, '${day}')`);
      await db.run(`INSERT INTO c_date VALUES (${i}, '${day}')`);
      // 22:30 UTC is 00:30 the next day in Berlin (CEST): half the rows land a day later there.
      const at = Math.floor(i / 4) % 2 ? "22:30" : "12:00";
      await db.run(`INSERT INTO ${other}.c_ts VALUES (${i}, '${day} ${at}+00')`);
    }
    const config = join(dir, "sluice.config.json");
    writeFileSync(
      config,
      JSON.stringify(
        {
          tables: {
            c_text: { retentionDays: 2 },
            c_date: { partitionColumn: "day", keyColumn: "k", retentionDays: 1 },
            [`${other}.c_ts`]: {
              partitionColumn: "created_at",
              timeZone: "Europe/Berlin",
              retentionDays: 3,
              deleteBatch: 7,
            },
          },
        },
        null,
        2,
      ),
    );
    const env = { SLUICE_DB: db.url, SLUICE_STORE: `file:${join(dir, "cfg-archive")}` };
    // --today 2025-10-14: today and retentionDays - 1 days before it stay hot, so the three
    // keep the 13th on, the 14th on, and Berlin's 12th on.
    const r = sluice(["--config", config, "--json", "backlog", "--today=2025-10-14"], env);
    expect(r.code, r.stderr).toBe(0);
    // One JSON object for the run, a member per table, a member per date.
    const out = JSON.parse(r.stdout) as {
      ok: boolean;
      tables: { table: string; dates: { date: string; ok: boolean }[] }[];
    };
    expect(out.ok).toBe(true);
    const done = (t: string) =>
      out.tables
        .find((x) => x.table === t)
        ?.dates.filter((d) => d.ok)
        .map((d) => d.date);
    expect(done("c_text")).toEqual(["2025-10-10", "2025-10-11", "2025-10-12"]);
    expect(done("c_date")).toEqual(["2025-10-10", "2025-10-11", "2025-10-12", "2025-10-13"]);
    expect(done(`${other}.c_ts`)).toEqual(["2025-10-10", "2025-10-11"]);
    const left = async (sql: string) => Number((await db.query(sql))[0]?.n);
    expect(await left("SELECT COUNT(*) AS n FROM c_text")).toBe(10);
    expect(await left("SELECT COUNT(*) AS n FROM c_text WHERE event_date < '2025-10-13'")).toBe(0);
    expect(await left("SELECT COUNT(*) AS n FROM c_date")).toBe(0);
    // Berlin's 12th starts at 22:00 UTC on the 11th: a row at 22:30 UTC on the 11th is
    // Berlin's 12th and stays, with every later one; every earlier one went.
    expect(
      await left(
        `SELECT COUNT(*) AS n FROM ${other}.c_ts WHERE created_at < '2025-10-11 22:00+00'`,
      ),
    ).toBe(0);
    expect(await left(`SELECT COUNT(*) AS n FROM ${other}.c_ts`)).toBe(
      Array.from({ length: 40 }, (_, k) => k + 1).filter(
        (i) => i % 4 > 1 || (i % 4 === 1 && Math.floor(i / 4) % 2 === 1),
      ).length,
    );

    // One table by --table, its settings from the file.
    const one = sluice(["--config", config, "--json", "status", "--table=c_date"], env);
    expect(one.code, one.stderr).toBe(0);
    expect(JSON.parse(one.stdout).partitions.map((p: { date: string }) => p.date)).toEqual([
      "2025-10-10",
      "2025-10-11",
      "2025-10-12",
      "2025-10-13",
    ]);
    // Several tables and none named: the command says which there are.
    const which = sluice(["--config", config, "status"], env);
    expect(which.code).toBe(2);
    expect(which.stderr).toMatch(/names 3 tables: choose one with --table \(c_text, c_date, /);
  });

  const badConfigs: [string, string, RegExp][] = [
    [
      "an unknown field",
      '{\n  "tables": {\n    "c_text": {\n      "retention": 2\n    }\n  }\n}\n',
      /line 4: tables\.c_text\.retention: is not a setting sluice knows/,
    ],
    [
      "a wrong type",
      '{\n  "tables": {\n    "c_text": {\n      "retentionDays": "2"\n    }\n  }\n}\n',
      /line 4: tables\.c_text\.retentionDays: .*number/i,
    ],
    ["not JSON", '{\n  "tables": {\n    "c_text": {,\n  }\n}\n', /line 3: not JSON/],
    [
      "a table that is not there",
      '{"tables": {"c_text": {}, "c_missing": {"partitionColumn": "day"}}}',
      /table 'c_missing' does not exist/,
    ],
  ];
  for (const [name, text, message] of badConfigs) {
    it(`a config file with ${name} exits 2 naming it, before any work`, async () => {
      const db = server as TestDb;
      const config = join(dir, `bad-${name.replaceAll(" ", "-")}.json`);
      writeFileSync(config, text);
      const env = { SLUICE_DB: db.url, SLUICE_STORE: `file:${join(dir, "bad-archive")}` };
      const r = sluice(["--config", config, "backlog", "--today=2025-10-20"], env);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(message);
      expect(existsSync(join(dir, "bad-archive"))).toBe(false);
    });
  }
});

describe("status of a date a killed job left", () => {
  it("shows the state and who holds the lease until when, not 'not archived'", async () => {
    const hot = join(dir, "killed.db");
    const env = { SLUICE_DB: `sqlite:${hot}`, SLUICE_STORE: `file:${join(dir, "killed-archive")}` };
    expect(sluice(["prepare-data", "--count=50", "--days=2", "--date=2025-10-14"], env).code).toBe(
      0,
    );
    expect(sluice(["archive", "--date=2025-10-13"], env).code).toBe(0);
    const { default: Database } = await import("better-sqlite3");
    const db = new Database(hot);
    const until = Date.parse("2030-01-01T00:00:00Z");
    db.prepare(
      "INSERT INTO archive_metadata (source_table, date, state, lease_owner, lease_expires_at) VALUES ('traffic_events', '2025-10-14', 'archiving', 'otherhost:pid:123', ?)",
    ).run(until);
    db.close();
    const r = sluice(["status", "--date=2025-10-14"], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /^traffic_events 2025-10-14: archiving, no part recorded yet; 50 rows/,
    );
    expect(r.stdout).toContain(
      "lease     held by otherhost:pid:123 until 2030-01-01T00:00:00.000Z",
    );
  });
});
