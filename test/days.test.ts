import { describe, expect, it, vi } from "vitest";
import { dayColumnOf, dayCondition, dayOfValue } from "../src/core/archive/days.js";
import { lineReader } from "../src/core/archive/line-reader.js";
import { BadInputError } from "../src/core/errors.js";
import { dayInZone, dayStartInZone } from "../src/core/time-zones.js";

/**
 * Days of a timestamp partition: where each starts as an instant, which day a value the
 * database rendered falls on, and the condition that reads one day. A row must land in exactly
 * one day, whatever the zone does at midnight or across a DST change.
 */
const at = (iso: string) => Date.parse(iso);
const berlin = { kind: "timestamp", aware: true, timeZone: "Europe/Berlin" } as const;
const wall = { kind: "timestamp", aware: false, timeZone: "UTC" } as const;

describe("days in a time zone", () => {
  it("start at midnight in UTC and in Berlin, summer and winter", () => {
    expect(dayStartInZone("2025-10-13", "UTC")).toBe(at("2025-10-13T00:00:00Z"));
    expect(dayStartInZone("2025-07-01", "Europe/Berlin")).toBe(at("2025-06-30T22:00:00Z"));
    expect(dayStartInZone("2025-12-01", "Europe/Berlin")).toBe(at("2025-11-30T23:00:00Z"));
  });

  it("are 23 hours long when the clocks go forward and 25 when they go back", () => {
    const hours = (d: string, next: string) =>
      (dayStartInZone(next, "Europe/Berlin") - dayStartInZone(d, "Europe/Berlin")) / 3_600_000;
    expect(hours("2025-03-30", "2025-03-31")).toBe(23);
    expect(hours("2025-10-26", "2025-10-27")).toBe(25);
    expect(hours("2025-10-27", "2025-10-28")).toBe(24);
  });

  it("start at their first minute where the zone skips midnight (Santiago, 2025-09-07)", () => {
    expect(dayStartInZone("2025-09-07", "America/Santiago")).toBe(at("2025-09-07T04:00:00Z"));
    expect(dayInZone(at("2025-09-07T03:59:59.999Z"), "America/Santiago")).toBe("2025-09-06");
  });

  it("put every instant of a year in the day whose bounds hold it", () => {
    for (let t = at("2025-01-01T00:00:00Z"); t < at("2026-01-01T00:00:00Z"); t += 1_800_000 - 7) {
      const d = dayInZone(t, "Europe/Berlin");
      const start = dayStartInZone(d, "Europe/Berlin");
      expect(start).toBeLessThanOrEqual(t);
      expect(t - start).toBeLessThan(25 * 3_600_000);
    }
  });
});

describe("UTC, the default", () => {
  it("needs no time-zone data: a process on the default maps none of ICU's", () => {
    const spy = vi.spyOn(Intl, "DateTimeFormat");
    try {
      expect(dayStartInZone("2025-10-13", "UTC")).toBe(at("2025-10-13T00:00:00Z"));
      expect(dayInZone(at("2025-10-13T23:59:59.999Z"), "UTC")).toBe("2025-10-13");
      expect(dayColumnOf("postgres", "c", "timestamptz", "UTC")).toMatchObject({ aware: true });
      expect(spy).not.toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
  });
});

describe("the day kind of a partition column", () => {
  it("instants where the database holds them, wall-clock times elsewhere", () => {
    const kind = (d: "postgres" | "mysql" | "sqlite", type: string) =>
      dayColumnOf(d, "c", type, "UTC");
    expect(kind("postgres", "timestamp with time zone")).toMatchObject({ aware: true });
    expect(kind("postgres", "timestamptz")).toMatchObject({ aware: true });
    expect(kind("postgres", "timestamp without time zone")).toMatchObject({ aware: false });
    expect(kind("postgres", "timestamp")).toMatchObject({ aware: false });
    expect(kind("mysql", "timestamp")).toMatchObject({ aware: true });
    expect(kind("mysql", "datetime(3)")).toMatchObject({ aware: false });
    expect(kind("sqlite", "DATETIME")).toMatchObject({ kind: "timestamp", aware: false });
    for (const type of ["date", "DATE", "", "TEXT", "varchar(10)", "character(10)", "CLOB"]) {
      expect(kind("sqlite", type), type).toEqual({ kind: "date" });
    }
    expect(() => kind("postgres", "integer")).toThrow(BadInputError);
  });

  it("a SQLite timestamp in a zone other than UTC is refused: its text holds no zone", () => {
    expect(() => dayColumnOf("sqlite", "c", "DATETIME", "Europe/Berlin")).toThrow(
      /SLUICE_PARTITION_TIME_ZONE=UTC/,
    );
    expect(() => dayColumnOf("d1", "c", "timestamp", "Asia/Tokyo")).toThrow(BadInputError);
    expect(dayColumnOf("postgres", "c", "timestamp", "Asia/Tokyo")).toEqual({
      kind: "timestamp",
      aware: false,
      timeZone: "Asia/Tokyo",
    });
  });
});

describe("the day of a rendered value", () => {
  it("reads instants as PostgreSQL and MySQL render them, in the partition's zone", () => {
    expect(dayOfValue(berlin, "2025-10-12T22:00:00+00:00")).toBe("2025-10-13");
    expect(dayOfValue(berlin, "2025-10-12T21:59:59.999999+00:00")).toBe("2025-10-12");
    expect(dayOfValue(berlin, "2025-10-12 21:59:59.999999+00")).toBe("2025-10-12");
    expect(dayOfValue(berlin, "2025-10-13 00:30:00+02")).toBe("2025-10-13");
    expect(dayOfValue(berlin, "2025-10-12 22:00:00")).toBe("2025-10-13"); // MySQL, UTC session
    expect(dayOfValue(berlin, "2025-10-12 18:00:00-04:00")).toBe("2025-10-13");
  });

  it("reads offsets with minutes, with or without a colon, either side of UTC", () => {
    const utc = { kind: "timestamp", aware: true, timeZone: "UTC" } as const;
    // 05:29 at +05:30 is 23:59 the day before in UTC; 05:30 is midnight.
    expect(dayOfValue(utc, "2025-10-13T05:29:00+05:30")).toBe("2025-10-12");
    expect(dayOfValue(utc, "2025-10-13T05:30:00+0530")).toBe("2025-10-13");
    // 19:29 at -04:30 is 23:59 in UTC; 19:30 is the next midnight.
    expect(dayOfValue(utc, "2025-10-12T19:29:59-04:30")).toBe("2025-10-12");
    expect(dayOfValue(utc, "2025-10-12T19:30:00-0430")).toBe("2025-10-13");
    // Hours only: -05 is 5 hours behind.
    expect(dayOfValue(utc, "2025-10-12 19:00:00-05")).toBe("2025-10-13");
    expect(dayOfValue(utc, "2025-10-12 18:59:59.999999-05")).toBe("2025-10-12");
  });

  it("reads wall-clock times by their date part, and refuses a non-UTC offset on them", () => {
    expect(dayOfValue(wall, "2025-10-13T23:59:59.999999")).toBe("2025-10-13");
    expect(dayOfValue(wall, "2025-10-13 00:00:00")).toBe("2025-10-13");
    expect(dayOfValue(wall, "2025-10-13T23:00:00Z")).toBe("2025-10-13");
    expect(dayOfValue(wall, "2025-10-13T23:00:00+02:00")).toBeNull();
  });

  it("reads an aware value with no offset as UTC, a date alone as its midnight, and refuses a day that does not exist", () => {
    const tokyo = { kind: "timestamp", aware: true, timeZone: "Asia/Tokyo" } as const;
    expect(dayOfValue(tokyo, "2025-10-12 14:59:59")).toBe("2025-10-12");
    expect(dayOfValue(tokyo, "2025-10-12 15:00:00")).toBe("2025-10-13");
    expect(dayOfValue(tokyo, "2025-10-12T15:00:00Z")).toBe("2025-10-13");
    expect(dayOfValue(tokyo, "2025-10-13")).toBe("2025-10-13");
    expect(dayOfValue(wall, "2025-10-13")).toBe("2025-10-13");
    expect(dayOfValue(tokyo, "2025-13-45 00:00:00")).toBeNull();
  });

  it("refuses what is not a date or a timestamp", () => {
    for (const v of ["", "2025-10-13x", "13.10.2025", "infinity", null, 20251013]) {
      expect(dayOfValue(berlin, v)).toBeNull();
    }
    expect(dayOfValue({ kind: "date" }, "2025-10-13")).toBe("2025-10-13");
    expect(dayOfValue({ kind: "date" }, "2025-10-13 00:00:00")).toBeNull();
  });
});

describe("the condition that reads one day", () => {
  it("is equality for a date and a half-open range for a timestamp", () => {
    expect(dayCondition('"d"', { kind: "date" }, "2025-10-13")).toEqual({
      sql: '"d" = ?',
      params: ["2025-10-13"],
    });
    expect(dayCondition('"t"', berlin, "2025-10-26")).toEqual({
      sql: '"t" >= ? AND "t" < ?',
      params: ["2025-10-25 22:00:00.000", "2025-10-26 23:00:00.000"],
    });
    expect(dayCondition('"t"', wall, "2025-10-13").params).toEqual(["2025-10-13", "2025-10-14"]);
  });

  it("is chosen from the column's declared type, or refused with the reason", () => {
    const of = (dialect: "postgres" | "mysql" | "sqlite", type: string, tz = "Europe/Berlin") =>
      dayColumnOf(dialect, "c", type, tz);
    expect(of("postgres", "timestamp(6) with time zone")).toEqual(berlin);
    expect(of("postgres", "timestamp without time zone")).toMatchObject({ aware: false });
    expect(of("mysql", "timestamp(6)")).toMatchObject({ kind: "timestamp", aware: true });
    expect(of("mysql", "datetime(3)")).toMatchObject({ kind: "timestamp", aware: false });
    expect(of("postgres", "date")).toEqual({ kind: "date" });
    expect(of("mysql", "varchar(10)")).toEqual({ kind: "date" });
    expect(of("sqlite", "TEXT")).toEqual({ kind: "date" });
    expect(of("sqlite", "TIMESTAMP", "UTC")).toMatchObject({ kind: "timestamp", aware: false });
    expect(() => of("sqlite", "DATETIME")).toThrow(/SLUICE_PARTITION_TIME_ZONE=UTC/);
    expect(() => of("postgres", "bigint")).toThrow(BadInputError);
    // A timestamp only at the start of the type's name: integers named so are refused.
    expect(() => of("sqlite", "EPOCH_TIMESTAMP", "UTC")).toThrow(BadInputError);
    expect(() => of("sqlite", "UNIX_DATETIME", "UTC")).toThrow(BadInputError);
    expect(of("postgres", "timestamptz(3)")).toMatchObject({ kind: "timestamp", aware: true });
    expect(of("postgres", "timestamp(3) without time zone")).toMatchObject({ aware: false });
    expect(of("mysql", "datetime")).toMatchObject({ aware: false });
    // SQLite's wall-clock text in another zone is refused, naming the column and its type.
    expect(() => of("sqlite", "DATETIME")).toThrow(
      "partition column 'c' is DATETIME in SQLite, read as UTC text: days in 'Europe/Berlin' need a time zone in the values",
    );
    expect(() => of("postgres", "bigint")).toThrow(
      "partition column 'c' is bigint: sluice partitions by a DATE, a YYYY-MM-DD text or a timestamp column",
    );
  });
});

describe("archived lines of a timestamp partition", () => {
  const read = lineReader("id", "created_at", "2025-10-13", berlin);
  it("belong to the day their timestamp falls on, read from the text or parsed", () => {
    expect(read('{"id":1,"created_at":"2025-10-12T22:00:00+00:00","p":"/"}')).toEqual({
      key: 1,
      inPartition: true,
    });
    expect(read('{"id":2,"created_at":"2025-10-12T21:59:59.999+00:00"}').inPartition).toBe(false);
    expect(read('{"id":3,"created_at":null}').inPartition).toBe(false);
    expect(read('{"id":4,"x":{"created_at":"2025-10-12T22:00:00Z"}}').inPartition).toBe(false);
    expect(read('{"x":{},"id":5,"created_at":"2025-10-13T10:00:00Z"}')).toEqual({
      key: 5,
      inPartition: true,
    });
  });
});
