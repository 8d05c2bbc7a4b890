import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import type { Lease } from "../src/core/archive/ledger/lease.js";
import { pagesByKey, tableLines } from "../src/core/archive/pages.js";
import {
  NotExactError,
  PlanError,
  bytesAsyncBuffer,
  decodeParquetLines,
  encodeParquet,
  encodeParquetStream,
  planColumns,
} from "../src/core/archive/parquet/index.js";
import { whereNotExact } from "../src/core/archive/parquet/values.js";
import type { Column, Dialect } from "../src/core/sql/source.js";
import { loadConfig } from "../src/node/config.js";
import { type NodeContext, openContext } from "../src/node/context.js";
import { type TestDb, mariaDb, postgresDb } from "./servers.js";

/**
 * A Parquet part is another encoding of a JSONL part's lines: for real tables on each
 * database, the lines archive would write (through the adapters and `tableLines` /
 * `pagesByKey`) are encoded over several row groups and decoded back equal, byte for byte;
 * DuckDB, an independent reader, finds the same rows and types.
 */
const DAY = "2025-10-13";
const GROUP = 7;
const dir = mkdtempSync(join(tmpdir(), "sluice-parquet-"));
const [pg, maria] = [await postgresDb(), await mariaDb()];
afterAll(async () => {
  await pg?.close();
  await maria?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Archive never reads past its lease here: one page run, no renewals needed. */
const lease = { keepAlive: async () => undefined } as unknown as Lease;

/** The lines archive would write for the table's date, as pages. */
async function archiveLines(
  url: string,
  table: string,
): Promise<{ lines: string[][]; columns: readonly Column[]; dialect: Dialect["name"] }> {
  const c: NodeContext = await openContext(
    loadConfig({ SLUICE_DB: url, SLUICE_STORE: `file:${join(dir, "store")}`, SLUICE_TABLE: table }),
  );
  try {
    const ctx = { ...c.ctx, fetchSize: 10 };
    const rows = await tableLines(ctx);
    const lines: string[][] = [];
    for await (const page of pagesByKey(ctx, rows, DAY, null, lease)) lines.push(page.lines);
    return { lines, columns: rows.columns, dialect: ctx.source.dialect.name };
  } finally {
    await c.close();
  }
}

async function encodeAll(
  pages: Iterable<readonly string[]>,
  columns: readonly Column[],
  rowGroupRows = GROUP,
  dialect?: Dialect["name"],
) {
  const { chunks, totals } = encodeParquet(pages, planColumns(columns, dialect), { rowGroupRows });
  const parts: Uint8Array[] = [];
  for await (const c of chunks) parts.push(c);
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.byteLength;
  }
  return { bytes, totals, chunkCount: parts.length };
}

async function decodeAll(bytes: Uint8Array): Promise<string[][]> {
  const batches: string[][] = [];
  for await (const b of decodeParquetLines(bytesAsyncBuffer(bytes))) batches.push(b);
  return batches;
}

async function duck() {
  const { DuckDBInstance } = await import("@duckdb/node-api");
  return (await DuckDBInstance.create(":memory:")).connect();
}

type Duck = Awaited<ReturnType<typeof duck>>;

async function rowsOf(conn: Duck, sql: string): Promise<Record<string, unknown>[]> {
  return (await conn.runAndReadAll(sql)).getRowObjectsJson() as Record<string, unknown>[];
}

/**
 * The whole check for one table: exact lines back in one batch per row group, the totals, and
 * DuckDB's reading of the file (row count, types of the typed columns, values, row groups,
 * statistics).
 */
async function roundtrip(
  name: string,
  url: string,
  table: string,
  want: { types: Record<string, string>; values: string[]; rows: number },
) {
  const { lines, columns, dialect } = await archiveLines(url, table);
  const flat = lines.flat();
  expect(flat).toHaveLength(want.rows);
  const { bytes, totals, chunkCount } = await encodeAll(lines, columns, GROUP, dialect);
  const groups = Math.ceil(want.rows / GROUP);
  // Bytes leave as each row group is encoded: one chunk per group, then the footer.
  expect(chunkCount).toBe(groups + 1);
  expect(totals).toEqual({
    rows: want.rows,
    rawBytes: flat.reduce((n, l) => n + new TextEncoder().encode(l).byteLength + 1, 0),
    rowGroups: groups,
    bytes: bytes.byteLength,
  });
  const batches = await decodeAll(bytes);
  expect(batches.map((b) => b.length)).toEqual(
    Array.from({ length: groups }, (_, i) => Math.min(GROUP, want.rows - i * GROUP)),
  );
  const back = batches.flat();
  for (let i = 0; i < flat.length; i++) expect(back[i]).toBe(flat[i]);

  const file = join(dir, `${name}.parquet`);
  writeFileSync(file, bytes);
  const conn = await duck();
  const described = await rowsOf(conn, `DESCRIBE SELECT * FROM '${file}'`);
  const types = Object.fromEntries(described.map((r) => [r.column_name, r.column_type]));
  expect(types).toMatchObject(want.types);
  const [count] = await rowsOf(conn, `SELECT COUNT(*)::INTEGER AS n FROM '${file}'`);
  expect(count?.n).toBe(want.rows);
  // Values of the typed columns, as DuckDB reads them, equal the line's JSON values.
  const read = await rowsOf(
    conn,
    `SELECT ${want.values.map((v) => `"${v}"::VARCHAR AS "v_${v}"`).join(", ")} FROM '${file}' ORDER BY id`,
  );
  const parsedValue = (line: string, col: string): string | null => {
    const raw = line.match(
      new RegExp(`[{,]"${col}":(-?[0-9][0-9.e+-]*|"[0-9-]+"|true|false|null)`),
    )?.[1];
    if (raw === undefined) return JSON.parse(line)[col];
    if (raw === "null") return null;
    return raw.replace(/^"|"$/g, "");
  };
  for (let i = 0; i < flat.length; i++) {
    for (const v of want.values) {
      const got = read[i]?.[`v_${v}`];
      const line = flat[i] as string;
      const expected = parsedValue(line, v);
      if (want.types[v] === "DOUBLE" && expected !== null) {
        expect(Number(got)).toBe(Number(expected));
      } else {
        expect(got, `${v} of ${line}`).toBe(expected);
      }
    }
  }
  const [meta] = await rowsOf(
    conn,
    `SELECT COUNT(DISTINCT row_group_id)::INTEGER AS g,
            BOOL_AND(stats_min_value IS NOT NULL AND stats_max_value IS NOT NULL) FILTER (WHERE path_in_schema = 'id') AS stats
       FROM parquet_metadata('${file}')`,
  );
  expect(meta).toEqual({ g: groups, stats: true });
  return flat;
}

/** Awkward strings every table holds, one per row in turn, with nulls and empty strings. */
const TEXTS = [
  'q"uote',
  "back\\slash",
  "ctl \u001f\u0001\b\f\n\r\t end",
  "naïve ünïcödé",
  "emoji 😀👍🏽",
  "a/slash</script>",
  "",
  null,
  "del \u007f and \u2028\u2029",
  '{"looks": "like json"}',
];
const ROWS = 40;

describe("SQLite", () => {
  it("lines from SQLite's own JSON decode back exactly, DuckDB reads the same rows", async () => {
    const file = join(dir, "hot.db");
    const db = new Database(file);
    db.exec(`CREATE TABLE ty (id INTEGER PRIMARY KEY, event_date TEXT NOT NULL, big INTEGER,
      neg INTEGER, txt TEXT, vc VARCHAR(64), r REAL, num NUMERIC, bl BLOB, ts TEXT, flag BOOLEAN)`);
    const insert = db.prepare("INSERT INTO ty VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    for (let i = 1; i <= ROWS; i++) {
      insert.run(
        i,
        DAY,
        i % 5 === 0 ? null : i === 2 ? -9223372036854775808n : 9007199254740993n + BigInt(i),
        -i * 1000,
        TEXTS[i % TEXTS.length],
        i % 3 ? `v${i}` : "",
        i % 4 ? i / 8 : null,
        i % 6 ? i * 100 + 25 : null,
        i % 2 ? Buffer.from([0, i, 255]) : null,
        `2025-10-13 12:${String(i).padStart(2, "0")}:00`,
        i % 3 === 0 ? null : i % 2,
      );
    }
    db.close();
    await roundtrip("sqlite", `sqlite:${file}`, "ty", {
      rows: ROWS,
      types: {
        id: "BIGINT",
        big: "BIGINT",
        neg: "BIGINT",
        txt: "VARCHAR",
        r: "DOUBLE",
        ts: "VARCHAR",
        flag: "BIGINT",
      },
      values: ["id", "big", "neg", "txt", "vc", "r", "ts", "flag"],
    });
  });
});

describe.runIf(pg !== null)("PostgreSQL", () => {
  it("lines from row_to_json decode back exactly, DuckDB reads the same rows", async () => {
    const db = pg as TestDb;
    await db.run(`CREATE TABLE ty (
      id BIGINT PRIMARY KEY, event_date DATE NOT NULL, big BIGINT, neg INTEGER, txt TEXT,
      vc VARCHAR(64), ts TIMESTAMP(6), tstz TIMESTAMPTZ(6), d DATE, num NUMERIC(10, 2),
      f8 DOUBLE PRECISION, f4 REAL, b BOOLEAN, js JSON, jb JSONB, bin BYTEA)`);
    // As text: node-pg would send the number -0 as "0".
    const f8s = ["0.1", "-0", "1e308", "1.5e-300", "123456.789", "-2.5", null];
    const jsons = [
      '{"a": [1,2], "n": 12345678901234567890}',
      "null",
      '"str"',
      "[]",
      null,
      '{"b": 1.50, "a": "x"}',
    ];
    for (let i = 1; i <= ROWS; i++) {
      await db.run(
        "INSERT INTO ty VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        [
          i,
          DAY,
          i % 5 === 0
            ? null
            : i === 2
              ? "-9223372036854775808"
              : i === 3
                ? "9223372036854775807"
                : String(9007199254740993n + BigInt(i)),
          -i * 1000,
          TEXTS[i % TEXTS.length],
          i % 3 ? `v${i}` : "",
          `2025-10-13 12:00:00.${String(i * 1111).padStart(6, "0")}`,
          `2025-10-13 12:00:00.${i}+0${i % 9}`,
          i % 7 ? DAY : null,
          i % 4 ? (i * 1.5).toFixed(2) : i % 8 ? "-0.01" : null,
          f8s[i % f8s.length],
          i % 2 ? 0.1 * i : null,
          i % 3 === 0 ? null : i % 3 === 1,
          jsons[i % jsons.length],
          jsons[(i + 1) % jsons.length],
          i % 2 ? Buffer.from([0xde, 0xad, i]) : null,
        ],
      );
    }
    const lines = await roundtrip("postgres", db.url, "ty", {
      rows: ROWS,
      types: {
        id: "BIGINT",
        big: "BIGINT",
        neg: "BIGINT",
        txt: "VARCHAR",
        tstz: "VARCHAR",
        num: "VARCHAR",
        f8: "DOUBLE",
        b: "BOOLEAN",
        jb: "VARCHAR",
      },
      values: ["id", "big", "neg", "txt", "vc", "tstz", "d", "num", "f8", "f4", "b", "js", "jb"],
    });
    // The traps are really in the lines: PostgreSQL's -0, numerics with their zeros, JSON text.
    expect(lines.some((l) => l.includes('"f8":-0,'))).toBe(true);
    expect(lines.some((l) => l.includes('"num":1.50,'))).toBe(true);
    expect(lines.some((l) => l.includes('"big":-9223372036854775808,'))).toBe(true);
    expect(lines.some((l) => l.includes('"jb":"{\\"a\\": \\"x\\", \\"b\\": 1.50}"'))).toBe(true);
    expect(lines.some((l) => l.includes("\\u001f"))).toBe(true);
  });
});

describe.runIf(maria !== null)("MariaDB", () => {
  it("lines rendered in JS from mysql2's values decode back exactly, DuckDB reads the same rows", async () => {
    const db = maria as TestDb;
    await db.run(`CREATE TABLE ty (
      id BIGINT PRIMARY KEY, event_date DATE NOT NULL, big BIGINT, neg INT(11), txt TEXT,
      vc VARCHAR(64), dt DATETIME(6), ts TIMESTAMP(3) NULL, d DATE, num DECIMAL(10, 2),
      f8 DOUBLE, b BOOLEAN, js JSON, bl BLOB) DEFAULT CHARSET utf8mb4`);
    for (let i = 1; i <= ROWS; i++) {
      await db.run("INSERT INTO ty VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        i,
        DAY,
        i % 5 === 0
          ? null
          : i === 2
            ? "-9223372036854775808"
            : String(9007199254740993n + BigInt(i)),
        -i * 1000,
        TEXTS[i % TEXTS.length],
        i % 3 ? `v${i}` : "",
        `2025-10-13 12:00:00.${String(i * 1111).padStart(6, "0")}`,
        i % 4 ? "2025-10-13 12:00:00.123" : null,
        DAY,
        i % 4 ? (i * 1.5).toFixed(2) : null,
        i % 6 ? i / 8 : null,
        i % 2,
        i % 3 ? '{"a": [1, 2], "n": 12345678901234567890}' : null,
        i % 2 ? Buffer.from([0, i, 255]) : null,
      ]);
    }
    const lines = await roundtrip("mariadb", db.url, "ty", {
      rows: ROWS,
      types: {
        id: "BIGINT",
        big: "BIGINT",
        neg: "BIGINT",
        txt: "VARCHAR",
        f8: "DOUBLE",
        dt: "VARCHAR",
        b: "BIGINT",
      },
      values: ["id", "big", "neg", "txt", "vc", "dt", "f8", "b"],
    });
    // mysql2 gives BIGINTs past 2^53 and decimals as strings: the lines quote them.
    expect(lines.some((l) => l.includes('"big":"9007199254740994"'))).toBe(true);
    expect(lines.some((l) => l.includes('"num":"1.50"'))).toBe(true);
  });
});

describe("lines that cannot be exact are refused", () => {
  const columns: Column[] = [
    { name: "id", type: "bigint" },
    { name: "v", type: "double precision" },
    { name: "s", type: "text" },
  ];
  const refused = async (line: string, column?: string) => {
    const good = '{"id":1,"v":1.5,"s":"x"}';
    const err = await encodeAll([[good, line]], columns).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, line).toBeInstanceOf(NotExactError);
    expect((err as NotExactError).lineNumber).toBe(2);
    expect((err as NotExactError).column).toBe(column);
  };

  it("a number written otherwise than JavaScript writes it, or outside INT64", async () => {
    await refused('{"id":2,"v":1.0,"s":"x"}');
    await refused('{"id":2,"v":1e5,"s":"x"}');
    await refused('{"id":-0,"v":1,"s":"x"}');
    await refused('{"id":9223372036854775808,"v":1,"s":"x"}', "id");
    await refused('{"id":1.5,"v":1,"s":"x"}', "id");
    await refused('{"id":"2","v":1,"s":"x"}', "id");
    await refused('{"id":2,"v":"NaN","s":"x"}', "v");
  });

  it("what a person is told: where the texts part, or the value and why its column refused it", () => {
    const line = `{"id":2,"v":1.0,"s":"${"x".repeat(100)}"}`;
    const again = `{"id":2,"v":1,"s":"${"x".repeat(100)}"}`;
    // The texts part at character 13 ("." against ","): 24 characters either side, from the start.
    expect(whereNotExact(new NotExactError(7, undefined, line, again))).toBe(
      `line 7: ${JSON.stringify(line.slice(0, 37))} would come back as ${JSON.stringify(again.slice(0, 37))}`,
    );
    expect(whereNotExact(new NotExactError(3, "id", '"2"', "a quoted integer"))).toBe(
      `line 3, column 'id': "\\"2\\"" (a quoted integer)`,
    );
  });

  it("a key order, a missing or an extra key, a duplicate, whitespace", async () => {
    await refused('{"v":1,"id":2,"s":"x"}');
    await refused('{"id":2,"v":1}');
    await refused('{"id":2,"v":1,"s":"x","t":1}');
    await refused('{"id":2,"v":1,"v":1,"s":"x"}');
    await refused('{"id":2, "v":1,"s":"x"}');
    await refused('{"id":2,"v":1,"s":"x"} ');
  });

  it("strings escaped otherwise than JSON.stringify, a value of the wrong kind, broken text", async () => {
    await refused('{"id":2,"v":1,"s":"\\u001F"}');
    await refused('{"id":2,"v":1,"s":"\\/"}');
    await refused('{"id":2,"v":1,"s":"\\u00e9"}');
    await refused('{"id":2,"v":1,"s":"\\ud800"}', "s");
    await refused('{"id":2,"v":1,"s":{"nested":true}}', "s");
    await refused('{"id":2,"v":1,"s":3}', "s");
    await refused('{"id":2,"v":1,"s":"x"');
  });

  it("the same value shapes round-trip where they are what the renderer writes", async () => {
    const lines = [
      '{"id":9223372036854775807,"v":-0,"s":"\\u001f/é😀"}',
      '{"id":-9223372036854775808,"v":1e+300,"s":""}',
      '{"id":0,"v":null,"s":null}',
    ];
    const { bytes } = await encodeAll([lines], columns);
    expect((await decodeAll(bytes)).flat()).toEqual(lines);
  });

  it("any line, canonical or not: encoded only when it decodes to itself, and every canonical line is encoded", async () => {
    // Value texts of each kind, canonical or not, and the key shapes around them.
    const ints = [
      "0",
      "7",
      "-12",
      "123456789012345",
      "9007199254740993",
      "-0",
      "01",
      "1.0",
      '"3"',
      "null",
      "1e3",
    ];
    const doubles = [
      "1.5",
      "-0",
      "0",
      "1e+300",
      "1e300",
      "1.50",
      "2",
      ".5",
      "NaN",
      "null",
      "-1.25e-7",
    ];
    const strings = [
      '"a"',
      '""',
      '"\\"',
      '"\u0001"',
      '"\u00e9"',
      '"é😀"',
      '"\ud800"',
      '"tab\t"',
      '"tab\\t"',
      '"\\u0001"',
      '"\\u00e9"',
      '"\\/"',
      "null",
      "3",
      '"\u2028"',
    ];
    const separators = [",", ", "];
    const lines = fc.sample(
      fc
        .tuple(
          fc.constantFrom(...ints),
          fc.constantFrom(...doubles),
          fc.constantFrom(...strings),
          fc.constantFrom(...separators),
          fc.boolean(),
        )
        .map(
          ([i, v, t, sep, swap]) =>
            `{"id":${i}${sep}${swap ? `"s":${t},"v":${v}` : `"v":${v},"s":${t}`}}`,
        ),
      { numRuns: 400, seed: 20261204 },
    );
    let encoded = 0;
    for (const line of lines) {
      const canonical = (() => {
        try {
          const o = JSON.parse(line) as Record<string, unknown>;
          const again = `{"id":${o.id === null ? "null" : String(o.id)},"v":${Object.is(o.v, -0) ? "-0" : JSON.stringify(o.v)},"s":${JSON.stringify(o.s)}}`;
          return (
            again === line &&
            (o.id === null || Number.isSafeInteger(o.id)) &&
            typeof o.s !== "number"
          );
        } catch {
          return false;
        }
      })();
      const got = await encodeAll([[line]], columns).then(
        async ({ bytes }) => (await decodeAll(bytes)).flat(),
        (e: unknown) => e,
      );
      if (Array.isArray(got)) {
        expect(got, line).toEqual([line]);
        encoded++;
      } else {
        expect(got, line).toBeInstanceOf(NotExactError);
        expect(canonical, `a canonical line refused: ${line}`).toBe(false);
      }
    }
    expect(encoded).toBeGreaterThan(20);
  });

  it("integers past 2^53 quoted and bare in one part, decimals as numbers and strings: refused", async () => {
    const cols: Column[] = [
      { name: "id", type: "int(11)" },
      { name: "n", type: "numeric(10,2)" },
    ];
    const err = (lines: string[]) =>
      encodeAll([lines], cols).then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(
      await err(['{"id":"9007199254740993","n":null}', '{"id":9007199254740995,"n":null}']),
    ).toBeInstanceOf(NotExactError);
    expect(await err(['{"id":1,"n":1.50}', '{"id":2,"n":"1.50"}'])).toBeInstanceOf(NotExactError);
    // A small integer quoted is not what any renderer writes.
    expect(await err(['{"id":"7","n":null}'])).toBeInstanceOf(NotExactError);
  });

  it("a json value nested in the line is kept as its raw text; a part mixing that with JSON strings is refused", async () => {
    const cols: Column[] = [
      { name: "id", type: "integer" },
      { name: "j", type: "jsonb" },
    ];
    const nested = [
      '{"id":1,"j":{"a": [1, 2.50], "s": "\\u00e9"}}',
      '{"id":2,"j":null}',
      '{"id":3,"j":[]}',
    ];
    const { bytes } = await encodeAll([nested], cols);
    expect((await decodeAll(bytes)).flat()).toEqual(nested);
    await expect(encodeAll([['{"id":1,"j":"{}"}', '{"id":2,"j":{}}']], cols)).rejects.toThrow(
      NotExactError,
    );
  });

  it("a BOOLEAN column holds JSON booleans on PostgreSQL and 0/1 on SQLite: planned for each", async () => {
    const cols: Column[] = [
      { name: "id", type: "integer" },
      { name: "b", type: "BOOLEAN" },
    ];
    const pgLines = ['{"id":1,"b":true}'];
    const sqliteLines = ['{"id":1,"b":1}'];
    const pgPart = await encodeAll([pgLines], cols, GROUP, "postgres");
    expect((await decodeAll(pgPart.bytes)).flat()).toEqual(pgLines);
    const sqlitePart = await encodeAll([sqliteLines], cols, GROUP, "sqlite");
    expect((await decodeAll(sqlitePart.bytes)).flat()).toEqual(sqliteLines);
    await expect(encodeAll([sqliteLines], cols, GROUP, "postgres")).rejects.toThrow(NotExactError);
  });

  it("a table with two columns of one name cannot be planned", () => {
    expect(() =>
      planColumns([
        { name: "id", type: "bigint" },
        { name: "id", type: "text" },
      ]),
    ).toThrow(PlanError);
  });
});

describe("corruption and format", () => {
  const columns: Column[] = [
    { name: "id", type: "bigint" },
    { name: "s", type: "text" },
  ];
  const lines = Array.from(
    { length: 50 },
    (_, i) => `{"id":${i + 1},"s":${JSON.stringify(`row ${i + 1} ${"x".repeat(i)}`)}}`,
  );

  it("a flipped byte inside each position of the first row group never decodes to the same lines", async () => {
    const { bytes } = await encodeAll([lines], columns, 20);
    const first = await decodeAll(bytes);
    expect(first.flat()).toEqual(lines);
    // Every byte of the first row group (after the 4-byte magic, up to the second group's
    // start as the footer says) flipped in turn: each either throws or decodes differently.
    // Observed with hyparquet 1.31: most flips throw (thrift page headers, snappy, RLE), the
    // rest change a value (a digit of an id, a character of a string) or a length.
    const { parquetMetadata } = await import("hyparquet");
    const meta = parquetMetadata(
      bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer,
    );
    const end = Number(meta.row_groups[0]?.total_compressed_size) + 4;
    let threw = 0;
    let differed = 0;
    for (let at = 4; at < end; at++) {
      const bad = bytes.slice();
      bad[at] = (bad[at] as number) ^ 0x01;
      try {
        const got = (await decodeAll(bad)).flat();
        expect(got, `byte ${at}`).not.toEqual(lines);
        differed++;
      } catch (err) {
        if ((err as { matcherResult?: unknown }).matcherResult) throw err;
        threw++;
      }
    }
    expect(threw + differed).toBe(end - 4);
    expect(threw).toBeGreaterThan(0);
  });

  it("a Parquet file sluice did not write is refused", async () => {
    const { parquetWriteBuffer } = await import("hyparquet-writer");
    const foreign = new Uint8Array(
      parquetWriteBuffer({ columnData: [{ name: "id", data: [1n, 2n], type: "INT64" }] }),
    );
    await expect(decodeAll(foreign)).rejects.toThrow(/not a sluice part/);
  });

  it("the stream form gives the same bytes, pulled a row group at a time", async () => {
    const { bytes } = await encodeAll([lines], columns, 20);
    const { stream, totals } = encodeParquetStream([lines], planColumns(columns), {
      rowGroupRows: 20,
    });
    const streamed = new Uint8Array(await new Response(stream).arrayBuffer());
    expect(streamed).toEqual(bytes);
    expect(totals).toMatchObject({ rows: 50, rowGroups: 3, bytes: bytes.byteLength });
  });

  it("an empty part decodes to no lines", async () => {
    const { bytes, totals } = await encodeAll([], columns);
    expect(totals).toEqual({ rows: 0, rawBytes: 0, rowGroups: 0, bytes: bytes.byteLength });
    expect(await decodeAll(bytes)).toEqual([]);
  });
});

describe("runs where the Worker runs", () => {
  it("the codec bundles for the browser platform with no Node built-in, and that bundle round-trips a part", async () => {
    const { build } = await import("esbuild");
    const out = await build({
      entryPoints: [
        join(import.meta.dirname, "..", "src", "core", "archive", "parquet", "index.ts"),
      ],
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      write: false,
      logLevel: "silent",
    });
    const text = out.outputFiles[0]?.text ?? "";
    expect(text).not.toMatch(/from\s*["'](node:|fs|zlib|buffer)["']|require\(/);
    const file = join(dir, "codec-bundle.mjs");
    writeFileSync(file, text);
    const codec = (await import(file)) as typeof import("../src/core/archive/parquet/index.js");
    const lines = ['{"id":1,"s":"é😀"}', '{"id":9007199254740993,"s":null}'];
    const { chunks } = codec.encodeParquet(
      [lines],
      codec.planColumns([
        { name: "id", type: "bigint" },
        { name: "s", type: "text" },
      ]),
    );
    const parts: Uint8Array[] = [];
    for await (const c of chunks) parts.push(c);
    const bytes = new Uint8Array(await new Blob(parts).arrayBuffer());
    const back: string[] = [];
    for await (const b of codec.decodeParquetLines(codec.bytesAsyncBuffer(bytes))) back.push(...b);
    expect(back).toEqual(lines);
  });
});
