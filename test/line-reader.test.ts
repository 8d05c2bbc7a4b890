import { describe, expect, it } from "vitest";
import { lineReader } from "../src/core/archive/verify.js";

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
});
