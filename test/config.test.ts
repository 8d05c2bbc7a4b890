import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseEnv } from "node:util";
import { describe, expect, it } from "vitest";
import { daysBefore, parsePartitionDate, retentionCutoff } from "../src/core/dates.js";
import { BadInputError } from "../src/core/errors.js";
import { specOfSettings } from "../src/core/settings.js";
import { checkIdentifier } from "../src/core/sql/ident.js";
import { checkSeedFilter } from "../src/core/trace/seed-resolve.js";
import { loadConfig } from "../src/node/config.js";
import {
  cgroupMemoryMax,
  defaultTraceMemoryLimitMb,
  traceMemoryLimit,
} from "../src/node/memory-limit.js";
import { apiTable, loadTablesFile, tableOverrides } from "../src/node/tables-file.js";

describe("configuration and input validation", () => {
  it("defaults to the embedded store: SQLite and a local folder", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      SLUICE_DB: "sqlite:./data/sluice.db",
      SLUICE_STORE: "file:./data/archive",
      DB_SLOW_FETCHMANY_SIZE: 5000,
      SLUICE_DELETE_BATCH: 1000,
      HOT_RETENTION_DAYS: 3,
    });
  });

  it("trace fetches: TRACE_FETCHMANY_SIZE, else the seed's DB_SLOW_FETCHMANY_SIZE when set, else 1000", () => {
    expect(loadConfig({}).TRACE_FETCHMANY_SIZE).toBe(1000);
    expect(loadConfig({ DB_SLOW_FETCHMANY_SIZE: "5000" }).TRACE_FETCHMANY_SIZE).toBe(5000);
    expect(
      loadConfig({ DB_SLOW_FETCHMANY_SIZE: "5000", TRACE_FETCHMANY_SIZE: "200" })
        .TRACE_FETCHMANY_SIZE,
    ).toBe(200);
    expect(loadConfig({}, { DB_SLOW_FETCHMANY_SIZE: 300 }).TRACE_FETCHMANY_SIZE).toBe(300);
    expect(() => loadConfig({ TRACE_FETCHMANY_SIZE: "0" })).toThrow(/TRACE_FETCHMANY_SIZE="0"/);
  });

  it("trace collections: every 100000 rows unless TRACE_GC_EVERY_ROWS says otherwise (0: off)", () => {
    expect(loadConfig({}).TRACE_GC_EVERY_ROWS).toBe(100_000);
    expect(loadConfig({ TRACE_GC_EVERY_ROWS: "0" }).TRACE_GC_EVERY_ROWS).toBe(0);
    expect(() => loadConfig({ TRACE_GC_EVERY_ROWS: "-5" })).toThrow(/TRACE_GC_EVERY_ROWS="-5"/);
    expect(() => loadConfig({ TRACE_GC_EVERY_ROWS: "many" })).toThrow(/TRACE_GC_EVERY_ROWS/);
  });

  it("trace jobs: TRACE_JOBS_MAX 8, TRACE_JOB_TTL a duration (a bare number is seconds), 24h", () => {
    expect(loadConfig({})).toMatchObject({ TRACE_JOBS_MAX: 8, TRACE_JOB_TTL: 86_400_000 });
    expect(loadConfig({ TRACE_JOB_TTL: "90m" }).TRACE_JOB_TTL).toBe(5_400_000);
    expect(loadConfig({ TRACE_JOB_TTL: "7d" }).TRACE_JOB_TTL).toBe(7 * 86_400_000);
    expect(loadConfig({ TRACE_JOB_TTL: "3600" }).TRACE_JOB_TTL).toBe(3_600_000);
    expect(() => loadConfig({ TRACE_JOB_TTL: "10ms" })).toThrow(/TRACE_JOB_TTL="10ms".*1 s/);
    expect(() => loadConfig({ TRACE_JOB_TTL: "1 day" })).toThrow(/TRACE_JOB_TTL/);
    expect(() => loadConfig({ TRACE_JOBS_MAX: "0" })).toThrow(/TRACE_JOBS_MAX="0"/);
  });

  it("TRACE_MEMORY_LIMIT_MB's default: the cgroup's limit shared by the workers, with headroom", () => {
    const GiB = 1024 ** 3;
    expect(defaultTraceMemoryLimitMb(6 * GiB, 2)).toBe(2304);
    expect(defaultTraceMemoryLimitMb(6 * GiB, 1)).toBe(4608);
    expect(defaultTraceMemoryLimitMb(2 * GiB, 4)).toBe(384);
    // No limit found: the seed's MemoryMax=6G is assumed.
    expect(defaultTraceMemoryLimitMb(null, 2)).toBe(2304);
    for (const workers of [1, 2, 3, 8]) {
      expect(defaultTraceMemoryLimitMb(6 * GiB, workers) * workers).toBeLessThan(6 * 1024);
    }
  });

  it("as deployed (sluice.service's MemoryMax, WEB_CONCURRENCY's default), the workers' limits stay under MemoryMax", () => {
    const unit = readFileSync(join(import.meta.dirname, "..", "deploy", "sluice.service"), "utf8");
    const [, size, unitSuffix] = /^MemoryMax=(\d+)([KMGT]?)$/m.exec(unit) ?? [];
    const memoryMax = Number(size) * 1024 ** " KMGT".indexOf(unitSuffix || " ");
    expect(memoryMax).toBe(6 * 1024 ** 3);
    const config = loadConfig({});
    const inUnit = (path: string) =>
      path === "/proc/self/cgroup"
        ? "0::/system.slice/sluice.service\n"
        : path === "/sys/fs/cgroup/system.slice/sluice.service/memory.max"
          ? `${memoryMax}\n`
          : null;
    const { mb, from } = traceMemoryLimit(
      config.TRACE_MEMORY_LIMIT_MB,
      config.WEB_CONCURRENCY,
      inUnit,
    );
    expect(mb * config.WEB_CONCURRENCY * 1048576).toBeLessThan(memoryMax);
    expect(from).toMatch(/cgroup memory limit 6144 MB/);
    // Set explicitly, it is taken as it is.
    const set = loadConfig({ TRACE_MEMORY_LIMIT_MB: "1000" });
    expect(traceMemoryLimit(set.TRACE_MEMORY_LIMIT_MB, 2, inUnit).mb).toBe(1000);
  });

  it("reads the tightest cgroup memory limit (v2 memory.max, v1 memory.limit_in_bytes), or none", () => {
    const files = (map: Record<string, string>) => (path: string) => map[path] ?? null;
    expect(
      cgroupMemoryMax(
        files({
          "/proc/self/cgroup": "0::/system.slice/sluice.service\n",
          "/sys/fs/cgroup/system.slice/sluice.service/memory.max": "6442450944\n",
          "/sys/fs/cgroup/system.slice/memory.max": "max\n",
        }),
      ),
    ).toBe(6442450944);
    // Inside a container: its namespace's root.
    expect(
      cgroupMemoryMax(
        files({ "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/memory.max": "2147483648" }),
      ),
    ).toBe(2147483648);
    expect(
      cgroupMemoryMax(
        files({
          "/proc/self/cgroup": "4:memory:/box/a\n1:cpu:/\n",
          "/sys/fs/cgroup/memory/box/a/memory.limit_in_bytes": "9223372036854771712",
          "/sys/fs/cgroup/memory/box/memory.limit_in_bytes": "1073741824",
        }),
      ),
    ).toBe(1073741824);
    expect(cgroupMemoryMax(files({ "/proc/self/cgroup": "0::/user.slice\n" }))).toBeNull();
    expect(cgroupMemoryMax(files({}))).toBeNull();
  });

  it("stops on a bad value, naming the variable, the value and the rule", () => {
    expect(() => loadConfig({ SLUICE_DELETE_BATCH: "1e9", HOT_RETENTION_DAYS: "three" })).toThrow(
      /SLUICE_DELETE_BATCH="1e9".*HOT_RETENTION_DAYS="three"/,
    );
    expect(() => loadConfig({ DB_SLOW_FETCHMANY_SIZE: "0" })).toThrow(BadInputError);
  });

  it("accepts only calendar dates and plain identifiers", () => {
    expect(parsePartitionDate("2024-02-29")).toBe("2024-02-29");
    for (const bad of ["2025-02-29", "2025-1-01", "2025-10-13T00:00", "", "0000-00-00", 20251013]) {
      expect(() => parsePartitionDate(bad)).toThrow(BadInputError);
    }
    expect(checkIdentifier("table", "traffic_events")).toBe("traffic_events");
    for (const bad of ["events; DROP TABLE x", "a b", "1abc", 'x"y', "x".repeat(64)]) {
      expect(() => checkIdentifier("table", bad)).toThrow(/not a plain identifier/);
    }
    expect(daysBefore(new Date("2025-03-01T15:00:00Z"), 1)).toBe("2025-02-28");
    expect(retentionCutoff(new Date("2025-11-05T23:59:00Z"), 3)).toBe("2025-11-03");
  });

  it("deploy/.env.example can be sourced by a shell and read by the env-file parser, with valid values", () => {
    const path = join(import.meta.dirname, "..", "deploy", ".env.example");
    const sh = spawnSync("sh", ["-c", `set -a; . '${path}'; printf %s "$ARCHIVE_CRON"`], {
      encoding: "utf8",
    });
    expect(sh.status, sh.stderr).toBe(0);
    expect(sh.stderr).toBe("");
    const parsed = parseEnv(readFileSync(path, "utf8"));
    expect(parsed.ARCHIVE_CRON).toBe(sh.stdout);
    expect(() => loadConfig(parsed)).not.toThrow();
  });

  it("a trace filter's dates: a missing or bad one is named by its field", () => {
    const f = (x: object) => () => checkSeedFilter({ workcenter: "TMTT", ...x });
    expect(f({ to: "2025-10-13" })).toThrow(/^filter\.from is missing \(YYYY-MM-DD\)$/);
    expect(f({ from: "2025-10-13" })).toThrow(/^filter\.to is missing/);
    expect(f({ from: "2025-10-13", to: "13.10.2025" })).toThrow(
      /^filter\.to: date '13\.10\.2025' is not YYYY-MM-DD/,
    );
    expect(f({ from: "2025-10-14", to: "2025-10-13" })).toThrow(/from 2025-10-14 is after to/);
    expect(f({ from: "2025-10-13", to: "2025-10-13" })()).toEqual({
      workcenter: "TMTT",
      from: "2025-10-13",
      to: "2025-10-13",
    });
  });

  it("a config file names at most one table for ingest and the stats routes (api), the first by default", () => {
    const dir = mkdtempSync(join(tmpdir(), "sluice-config-"));
    const file = (tables: object) => {
      const path = join(dir, `c${Math.random()}.json`);
      writeFileSync(path, JSON.stringify({ tables }, null, 2));
      return path;
    };
    expect(apiTable(loadTablesFile(file({ a: {}, b: {} })))).toBe("a");
    const chosen = loadTablesFile(file({ a: {}, b: { api: true, pathColumn: "url" } }));
    expect(apiTable(chosen)).toBe("b");
    expect(chosen.tables.get("b")).toMatchObject({ pathColumn: "url" });
    expect(() => loadTablesFile(file({ a: { api: true }, b: { api: true } }))).toThrow(
      /line 7: tables\.b\.api: a second table for ingest and stats \(a has "api": true\)/,
    );
    expect(() => loadTablesFile(file({ a: { pathColumn: "u rl" } }))).toThrow(
      /tables\.a\.pathColumn: is not a plain identifier/,
    );
  });

  it("the part format: SLUICE_FORMAT, per table in the config file; anything else stops start-up", () => {
    expect(loadConfig({})).toMatchObject({ SLUICE_FORMAT: "jsonl", SLUICE_ROW_GROUP_ROWS: 5000 });
    const parquet = loadConfig({ SLUICE_FORMAT: "parquet", SLUICE_ROW_GROUP_ROWS: "1000" });
    expect(specOfSettings(parquet)).toMatchObject({ format: "parquet", rowGroupRows: 1000 });
    expect(() => loadConfig({ SLUICE_FORMAT: "csv" })).toThrow(/SLUICE_FORMAT="csv"/);
    expect(() => loadConfig({ SLUICE_ROW_GROUP_ROWS: "10" })).toThrow(/SLUICE_ROW_GROUP_ROWS="10"/);
    const dir = mkdtempSync(join(tmpdir(), "sluice-config-"));
    const path = join(dir, "tables.json");
    writeFileSync(
      path,
      JSON.stringify({ tables: { pv: { format: "parquet", rowGroupRows: 2000 } } }),
    );
    const pv = loadTablesFile(path).tables.get("pv");
    expect(loadConfig({}, tableOverrides("pv", pv ?? {}))).toMatchObject({
      SLUICE_FORMAT: "parquet",
      SLUICE_ROW_GROUP_ROWS: 2000,
    });
    writeFileSync(path, JSON.stringify({ tables: { pv: { format: "orc" } } }));
    expect(() => loadTablesFile(path)).toThrow(/tables\.pv\.format/);
  });
});
