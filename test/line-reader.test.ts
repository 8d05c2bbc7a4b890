import { afterEach, describe, expect, it, vi } from "vitest";
import { lineReader } from "../src/core/archive/line-reader.js";

// How verification and cleanup read an archived line: its key, and whether it is of the date.

describe("reading archived lines", () => {
  const read = lineReader("id", "event_date", "2025-10-13");
  it("reads the key from the text of a key-first line and checks the partition member", () => {
    expect(read('{"id":42,"event_date":"2025-10-13","path":"/"}')).toEqual({
      key: 42,
      inPartition: true,
    });
    expect(read('{"id":-7,"event_date":"2025-10-14"}')).toEqual({ key: -7, inPartition: false });
  });
  it("is not fooled by the partition member quoted inside a string value", () => {
    const line = JSON.stringify({
      id: 5,
      event_date: "2025-10-14",
      path: '"event_date":"2025-10-13"',
    });
    expect(read(line)).toEqual({ key: 5, inPartition: false });
  });
  it("falls back to JSON for other shapes, and throws on what is not JSON", () => {
    expect(read('{"event_date":"2025-10-13","id":9}')).toEqual({ key: 9, inPartition: true });
    expect(read('{"id":1.5,"event_date":"2025-10-13"}')).toEqual({ key: 1.5, inPartition: true });
    expect(() => read('{"id":12,"event_date":"2025-10-13"')).toThrow();
  });
  it("is not fooled by the member inside a nested object, also within an array", () => {
    const nested = '{"id":5,"event_date":"2025-10-14","meta":{"event_date":"2025-10-13"}}';
    expect(read(nested)).toEqual({ key: 5, inPartition: false });
    const inArray = '{"id":7,"event_date":"2025-10-14","a":[{"event_date":"2025-10-13"}]}';
    expect(read(inArray)).toEqual({ key: 7, inPartition: false });
  });
  it("reads a key followed by the end of the object, and refuses a key that is not a whole number", () => {
    expect(read('{"id":8}')).toEqual({ key: 8, inPartition: false });
    expect(read('{"id":12,"event_date":"2025-10-13"}').key).toBe(12);
    expect(read('{"id":"12","event_date":"2025-10-13"}')).toEqual({ key: "12", inPartition: true });
    expect(read('{"id":-,"event_date":"2025-10-13"}'.replace("-,", "-3,"))).toEqual({
      key: -3,
      inPartition: true,
    });
    expect(read('{"id":1e3,"event_date":"2025-10-13"}')).toEqual({ key: 1000, inPartition: true });
    // Another column whose name starts like the key's is not the key.
    const other = lineReader("id", "event_date", "2025-10-13");
    expect(other('{"idx":3,"id":4,"event_date":"2025-10-13"}').key).toBe(4);
  });

  describe("the text path (a key-first line read without JSON.parse)", () => {
    afterEach(() => vi.restoreAllMocks());
    /** What `read` answers for each line, and how many of them it parsed as JSON. */
    function reading(r: ReturnType<typeof lineReader>, lines: string[]) {
      const parse = vi.spyOn(JSON, "parse");
      const out = lines.map((l) => r(l));
      return { out, parsed: parse.mock.calls.length };
    }

    it("reads every well-formed key-first line from its text", () => {
      const { out, parsed } = reading(read, [
        '{"id":42,"event_date":"2025-10-13","path":"/"}',
        '{"id":-7,"event_date":"2025-10-14"}',
        '{"id":8}',
        '{"id":0,"path":"[1,2]","event_date":"2025-10-13"}',
        '{"id":1234567890,"event_date":"2025-10-13"}',
      ]);
      expect(out).toEqual([
        { key: 42, inPartition: true },
        { key: -7, inPartition: false },
        { key: 8, inPartition: false },
        { key: 0, inPartition: true },
        { key: 1234567890, inPartition: true },
      ]);
      expect(parsed).toBe(0);
    });

    it("parses, and so checks, every line the text path cannot vouch for", () => {
      const lines = [
        '{"id":1.5,"event_date":"2025-10-13"}', // not a whole number
        '{"id":1e3,"event_date":"2025-10-13"}',
        '{"id":"12","event_date":"2025-10-13"}', // a string key
        '{"id":5,"m":{"a":1},"event_date":"2025-10-13"}', // a nested object
        '{"id":5,"event_date":"2025-10-13"} ', // not ending at the object's end
        '{"event_date":"2025-10-13","id":9}', // key not first
        ' {"id":3,"event_date":"2025-10-13"}',
      ];
      const { out, parsed } = reading(read, lines);
      expect(parsed).toBe(lines.length);
      expect(out.map((o) => o.key)).toEqual([1.5, 1000, "12", 5, 5, 9, 3]);
    });

    // The text path reads the key and the day, not the whole syntax: the lines it reads are
    // the bytes sluice wrote, vouched for by their sha256 and chunk digests before any use.
    it("refuses lines that only look key-first", () => {
      for (const bad of [
        '{"id":,"event_date":"2025-10-13"}',
        '{"id":-,"event_date":"2025-10-13"}',
        '{"id":12"event_date":"2025-10-13"}',
        '{"id":12,"event_date":"2025-10-13"',
      ]) {
        expect(() => read(bad), bad).toThrow();
      }
    });

    it("works out a timestamp's day from its text, in the partition's time zone", () => {
      const berlin = lineReader("id", "created_at", "2025-10-13", {
        kind: "timestamp",
        aware: true,
        timeZone: "Europe/Berlin",
      });
      const { out, parsed } = reading(berlin, [
        '{"id":1,"created_at":"2025-10-12T22:00:00+00:00"}', // 00:00 in Berlin
        '{"id":2,"created_at":"2025-10-12T21:59:59.999+00:00"}', // 23:59:59.999 the day before
        '{"id":3,"created_at":"2025-10-13T21:59:59+00:00"}',
        '{"id":4,"created_at":"2025-10-13T22:00:00+00:00"}', // the next day
        '{"id":5,"path":"x"}', // no day at all
      ]);
      expect(out.map((o) => o.inPartition)).toEqual([true, false, true, false, false]);
      expect(parsed).toBe(0);
      // Parsed lines are judged the same way.
      expect(berlin('{"created_at":"2025-10-12T22:00:00+00:00","id":6}')).toEqual({
        key: 6,
        inPartition: true,
      });
      expect(berlin('{"created_at":"2025-10-13T22:00:00Z","id":7}').inPartition).toBe(false);
    });
  });
});
