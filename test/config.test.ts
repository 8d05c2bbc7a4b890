import { describe, expect, it } from "vitest";
import { daysBefore, parsePartitionDate, retentionCutoff } from "../src/core/dates.js";
import { BadInputError } from "../src/core/errors.js";
import { checkIdentifier } from "../src/core/ident.js";
import { loadConfig } from "../src/node/config.js";

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
});
