import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyStatement } from "../src/adapters/postgres/copy-sql.js";
import { type CopyColumn, CopyTextRows } from "../src/core/json/copy-text.js";
import type { JsonRows } from "../src/core/json/json-rows.js";
import type { Row, SqlSource } from "../src/core/sql/source.js";
import { openSource } from "../src/node/open.js";
import { type TestDb, postgresDb } from "./servers.js";

const decoder = new TextDecoder();
const bytes = (text: string) => new TextEncoder().encode(text);

/** `text` fed in chunks of `size` bytes (the last shorter); every batch taken at the end. */
function convert(columns: CopyColumn[], text: Uint8Array, size: number): JsonRows {
  const rows = new CopyTextRows(columns);
  for (let at = 0; at < text.length; at += size) rows.push(text.subarray(at, at + size));
  rows.end();
  return rows.take();
}

/** What the values path writes for the same rows: JSON.stringify of each, comma-joined. */
const stringified = (rows: Row[]) => rows.map((r) => JSON.stringify(r)).join(",");

const COLUMNS: CopyColumn[] = [
  { name: "ID", kind: "number", keep: true },
  { name: "NAME", kind: "string", keep: true },
  { name: "NOTE", kind: "string" },
  { name: "QTY", kind: "number" },
];

describe("CopyTextRows", () => {
  // COPY text as PostgreSQL writes it: \N for NULL, a backslash before b f n r t v and itself;
  // other control characters raw.
  const copy =
    "1\tC0001\tplain\t5\n" +
    '2\t\\N\tquote " and back\\\\slash\t-12\n' +
    "3\ttab\\there\tnew\\nline cr\\r bs\\b ff\\f vt\\v\t\\N\n" +
    "4\tctl \u0001 \u001f del \u007f\t\\\\N is text\t0\n" +
    "5\tnon-ASCII é 中 😀\t\t7\n";
  const values: Row[] = [
    { ID: 1, NAME: "C0001", NOTE: "plain", QTY: 5 },
    { ID: 2, NAME: null, NOTE: 'quote " and back\\slash', QTY: -12 },
    { ID: 3, NAME: "tab\there", NOTE: "new\nline cr\r bs\b ff\f vt\v", QTY: null },
    { ID: 4, NAME: "ctl \u0001 \u001f del \u007f", NOTE: "\\N is text", QTY: 0 },
    { ID: 5, NAME: "non-ASCII é 中 😀", NOTE: "", QTY: 7 },
  ];

  it("writes each row as JSON.stringify writes its values, however the chunks fall", () => {
    const text = bytes(copy);
    for (const size of [1, 2, 3, 5, 7, 13, 64, text.length]) {
      const batch = convert(COLUMNS, text, size);
      expect(decoder.decode(batch.text), `chunks of ${size}`).toBe(stringified(values));
      expect(batch.rows).toEqual(values.map((v) => ({ ID: v.ID, NAME: v.NAME })));
      expect(batch.length).toBe(5);
      expect(JSON.parse(decoder.decode(batch.row(2)))).toEqual(values[2]);
      expect(JSON.parse(`[${decoder.decode(batch.slice(1, 3).text)}]`)).toEqual(values.slice(1, 3));
    }
  });

  it("refuses a row that is not the columns it was told, and a COPY that ends inside a row", () => {
    const two: CopyColumn[] = [
      { name: "A", kind: "string" },
      { name: "B", kind: "number" },
    ];
    const refusal = (text: string) => () => convert(two, bytes(text), 4);
    expect(refusal("x\n")).toThrow("a COPY row has fewer than 2 fields");
    expect(refusal("x\t1\t2\n")).toThrow("a COPY row has more than 2 fields");
    expect(refusal("x\t1.5\n")).toThrow('column B: "1.5" is not an integer');
    expect(refusal("x\t-\n")).toThrow('column B: "-" is not an integer');
    expect(refusal("x\t\n")).toThrow('column B: "" is not an integer');
    expect(refusal("x\t1\ny\t2")).toThrow("the COPY ended inside a row");
    expect(refusal("x\\\n1\n")).toThrow("a COPY row ends inside a field");
  });

  it("writes a row whose JSON is six times its COPY text, given whole in one chunk", () => {
    // Every control character becomes \u00XX: the most a byte can grow.
    const field = "\u0001\u0002\u001e".repeat(40_000);
    const copy = `1\t${field}\t\t0\n2\tON\tN\t12\n`;
    const batch = convert(COLUMNS, bytes(copy), copy.length);
    expect(decoder.decode(batch.text)).toBe(
      stringified([
        { ID: 1, NAME: field, NOTE: "", QTY: 0 },
        // Two bytes ending in N are text, not \N.
        { ID: 2, NAME: "ON", NOTE: "N", QTY: 12 },
      ]),
    );
    expect(() => new CopyTextRows([])).toThrow("a COPY has at least one column");
    expect(() => convert(COLUMNS.slice(3), bytes("12a\n"), 8)).toThrow(
      'column QTY: "12a" is not an integer',
    );
  });

  it("keeps a value once while rows repeat it, and reads it anew when it changes", () => {
    const batch = convert(COLUMNS.slice(0, 2), bytes("1\tA\n2\tA\n3\tB\n4\tA\n"), 3);
    expect(batch.rows.map((r) => r.NAME)).toEqual(["A", "A", "B", "A"]);
    expect(batch.rows.map((r) => r.ID)).toEqual([1, 2, 3, 4]);
  });
});

describe("copyStatement", () => {
  it("writes each parameter in as a literal of its kind, and refuses any other", () => {
    expect(
      copyStatement("SELECT a FROM t WHERE b = ? AND c IN (?, ?, ?) AND d = '?'", [
        "it's \\",
        -1.5,
        12n,
        null,
      ]),
    ).toBe(
      "COPY (SELECT a FROM t WHERE b =  E'it''s \\\\' AND c IN (-1.5, 12, NULL) AND d = '?') TO STDOUT",
    );
    for (const bad of [
      Number.NaN,
      Number.POSITIVE_INFINITY,
      undefined,
      true,
      { a: 1 },
      new Date(0),
    ]) {
      expect(() => copyStatement("SELECT ?", [bad])).toThrow(
        /a COPY parameter must be a string, a finite number or null/,
      );
    }
    expect(() => copyStatement("SELECT ?, ?", [1])).toThrow("parameter 2 of 1 is missing");
  });
});

const pgdb = await postgresDb();

describe.runIf(pgdb !== null)("PostgreSQL's COPY read as JSON", () => {
  const db = pgdb as TestDb;
  let source: SqlSource;
  const APP = `sluice_copy_${process.pid}`;
  // Every code unit a text column can hold (no NUL in PostgreSQL's text), and more.
  const nasty = [
    Array.from({ length: 127 }, (_, i) => String.fromCharCode(i + 1)).join(""),
    'O\'Brien \\ "quoted" \\N',
    "é 中 😀 \u2028 \u00ff",
    "",
    "   ",
  ];

  beforeAll(async () => {
    source = await openSource(`${db.url}&application_name=${APP}`);
    await source.execute(
      "CREATE TABLE copy_rows (id SERIAL PRIMARY KEY, n INTEGER, s SMALLINT, t TEXT, v VARCHAR(300), c CHAR(6))",
    );
    let k = 0;
    for (const text of nasty) {
      for (const n of [0, -2147483648, 2147483647, null]) {
        await source.execute("INSERT INTO copy_rows (n, s, t, v, c) VALUES (?, ?, ?, ?, ?)", [
          n,
          k % 2 ? -32768 : null,
          text,
          k % 3 ? text : null,
          text.slice(0, 6),
        ]);
        k++;
      }
    }
    for (let i = 0; i < 3000; i++) {
      await source.execute("INSERT INTO copy_rows (n, s, t, v, c) VALUES (?, ?, ?, ?, ?)", [
        i,
        i % 100,
        `row ${i} ${nasty[i % nasty.length]}`,
        `v${i}`,
        "c",
      ]);
    }
  });
  afterAll(async () => {
    await source?.close();
    await db.close();
  });

  const SELECT = "SELECT n, s, t, v, c FROM copy_rows WHERE id > ? AND t <> ? ORDER BY id";
  const columns = async (): Promise<CopyColumn[]> => {
    const types = new Map((await source.columnInfo("copy_rows"))?.map((c) => [c.name, c.type]));
    return ["n", "s", "t", "v", "c"].map((name) => {
      const kind = source.dialect.copyKind?.(types.get(name) ?? "");
      if (!kind) throw new Error(`no COPY kind for ${name}`);
      return { name, kind, keep: name === "t" };
    });
  };

  it("gives, byte for byte, the JSON of the rows the driver reads as values", async () => {
    // The parameters are written into the COPY as literals: a quote and a backslash in them
    // must stay text (the second excludes no row that is there).
    const params = [0, "x' OR '1'='1 \\' --"];
    const rows = new CopyTextRows(await columns());
    for await (const chunk of source.copyText?.(SELECT, params) ?? []) rows.push(chunk);
    rows.end();
    const batch = rows.take();
    const values = await source.query(SELECT, params);
    expect(values).toHaveLength(nasty.length * 4 + 3000);
    expect(decoder.decode(batch.text)).toBe(stringified(values));
    expect(batch.rows).toEqual(values.map((r) => ({ t: r.t })));
  });

  it("a parameter that would be SQL stays a value", async () => {
    const got: Uint8Array[] = [];
    const sql = "SELECT t FROM copy_rows WHERE t = ? ORDER BY id LIMIT 1";
    for await (const chunk of source.copyText?.(sql, [nasty[1]]) ?? []) got.push(chunk);
    const rows = new CopyTextRows([{ name: "t", kind: "string" }]);
    for (const c of got) rows.push(c);
    expect(JSON.parse(`[${decoder.decode(rows.take().text)}]`)).toEqual([{ t: nasty[1] }]);
  });

  /** Statements of this test's connections still open on the server. */
  const open = async () =>
    Number(
      (
        await db.query(
          "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND state <> 'idle'",
          [APP],
        )
      )[0]?.n,
    );

  /** Wait until none is open, a few polls at most: long before the statement would end. */
  const drained = async () => {
    for (let i = 0; i < 40 && (await open()) > 0; i++) await new Promise((r) => setTimeout(r, 50));
    return open();
  };
  const rows = nasty.length * 4 + 3000;

  it("a COPY left after its first rows is stopped, and its connection is not reused", async () => {
    // 5 ms a row, unsorted so that rows leave as they pass: ~15 s in all, were it not stopped.
    const slow = "SELECT n, t FROM copy_rows WHERE pg_sleep(0.005)::text = '' AND id > ?";
    let chunks = 0;
    let pid = 0;
    for await (const _ of source.copyText?.(slow, [0]) ?? []) {
      chunks++;
      const copying = await db.query(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'COPY %'",
        [APP],
      );
      pid = Number(copying[0]?.pid);
      break;
    }
    expect(chunks).toBe(1);
    expect(pid).toBeGreaterThan(0);
    expect(await drained()).toBe(0);
    // Its connection was closed, not given back to the pool with a COPY on it.
    const backend = () => db.query("SELECT pid FROM pg_stat_activity WHERE pid = $1", [pid]);
    for (let i = 0; i < 40 && (await backend()).length > 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await backend()).toEqual([]);
    // The pool serves the next statement at once.
    expect(await source.query("SELECT count(*)::int AS n FROM copy_rows")).toEqual([{ n: rows }]);
  });

  it("a COPY aborted before its first row is cancelled on the server, which was still sorting", async () => {
    // Sorted: nothing is sent until every row has waited its 5 ms, so the server never learns
    // from a closed connection that no one reads; only a cancel stops it.
    const slow =
      "SELECT n, t FROM copy_rows WHERE pg_sleep(0.005)::text = '' AND id > ? ORDER BY t";
    const stop = new AbortController();
    const read = async () => {
      for await (const _ of source.copyText?.(slow, [0], { signal: stop.signal }) ?? []);
    };
    const reading = read();
    for (let i = 0; i < 40 && (await open()) === 0; i++)
      await new Promise((r) => setTimeout(r, 25));
    expect(await open()).toBeGreaterThan(0);
    stop.abort(new Error("the client left"));
    await expect(reading).rejects.toThrow("the client left");
    expect(await drained()).toBe(0);
    expect(await source.query("SELECT count(*)::int AS n FROM copy_rows")).toEqual([{ n: rows }]);
  });
});
