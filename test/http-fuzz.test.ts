import { connect } from "node:net";
import type Database from "better-sqlite3";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TRAFFIC_COLUMNS } from "../src/core/ingest/event.js";
import {
  MAX_BYTES,
  MAX_EVENTS,
  TOKEN,
  type TestServer,
  bearer,
  call,
  filesUnder,
  qs,
  startServer,
  tableCount,
} from "./http-helpers.js";

/**
 * Thousands of malformed requests against a real server: each must be answered with a 4xx and
 * a JSON body naming the error, never a 5xx, never a write; and the server must live on.
 */

const SEED_LAST = "2025-06-03";
let srv: TestServer;
let sql: Database.Database;
let requests = 0;
/** How many answers of each status the fuzzing got, to show it mostly hit errors. */
const statuses = new Map<number, number>();

beforeAll(async () => {
  srv = await startServer({ seed: [{ date: SEED_LAST, count: 300, days: 3 }] });
  sql = srv.sql();
});

afterAll(async () => {
  await srv?.stop();
});

async function send(path: string, init: RequestInit = {}) {
  requests++;
  const res = await call(`${srv.url}${path}`, init);
  statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
  return res;
}

/** A 4xx whose body is JSON with a string `error`; its `error` is returned. */
function clientError(res: { status: number; text: string; body: unknown }, what: string): string {
  const where = `${what} -> ${res.status} ${res.text.slice(0, 300)}`;
  expect(res.status, where).toBeGreaterThanOrEqual(400);
  expect(res.status, where).toBeLessThan(500);
  expect(typeof res.body, where).toBe("object");
  const error = (res.body as { error?: unknown } | null)?.error;
  expect(typeof error, where).toBe("string");
  return error as string;
}

/** fast-check's settings: the run count; a failure prints its seed and path to replay it. */
const runs = (numRuns: number) => ({ numRuns });

// ---------------------------------------------------------------------------------------------
// An independent oracle for dates: the proleptic Gregorian calendar by arithmetic, no Date.

/** Days since 1970-01-01 of a YYYY-MM-DD calendar day, or null if it is not one. */
function dayNumber(s: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (!m) return null;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  const lengths = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
  if (mo < 1 || mo > 12 || d < 1 || d > (lengths[mo - 1] as number)) return null;
  // Howard Hinnant's days_from_civil.
  const yy = mo <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

const todayNumber = () => Math.floor(Date.now() / 86_400_000);
const dayString = (n: number) => new Date(n * 86_400_000).toISOString().slice(0, 10);

const SQL_TEXT = [
  "'; DROP TABLE traffic_events; --",
  "2025-01-01' OR '1'='1",
  "1; DELETE FROM traffic_events",
  '" OR ""="',
  "2025-01-01); DROP TABLE archive_metadata; --",
  "/' UNION SELECT name, 1 FROM sqlite_master --",
];
const BAD_DATES = [
  "2025-13-40",
  "2025-02-30",
  "2025-02-29",
  "2100-02-29",
  "2024-02-30",
  "2025-00-10",
  "2025-04-31",
  "2025-06-00",
  "0000-00-00",
  "2025-1-01",
  "25-01-01",
  "20250101",
  "2025/01/01",
  "2025-01-01T00:00:00Z",
  "2025-01-01 ",
  " 2025-01-01",
  "2025-01-01\n",
  "２０２５-０１-０１",
  "٢٠٢٥-٠١-٠١",
  "-2025-01-01",
  "+2025-01-01",
  "12025-01-01",
  "NaN",
  "null",
  "undefined",
  "[object Object]",
  "Infinity",
  "-1",
  "0",
  "1e308",
  "9".repeat(400),
  "today",
  "",
  ...SQL_TEXT,
];

const goodDate = fc
  .integer({ min: dayNumber("1970-01-01") as number, max: dayNumber("2100-12-31") as number })
  .map(dayString);
/** Strings that look like dates, some of them real days (the oracle tells). */
const dateShaped = fc
  .tuple(
    fc.integer({ min: 0, max: 99_999 }),
    fc.integer({ min: 0, max: 99 }),
    fc.integer({ min: 0, max: 99 }),
    fc.boolean(),
  )
  .map(([y, m, d, pad]) =>
    pad
      ? `${String(y).padStart(4, "0")}-${String(m).padStart(2, "0")}-${String(d).padStart(2, "0")}`
      : `${y}-${m}-${d}`,
  );
/** Long, but a URL of three of them stays under Node's 16 KB header limit. */
const longString = fc.string({ minLength: 600, maxLength: 1500 });
const unicodeString = fc.string({ unit: "grapheme", maxLength: 40 });
const anyNumber = fc.oneof(
  fc.integer().map(String),
  fc.double().map(String),
  fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }).map(String),
);
const badDateValue = fc.oneof(
  { arbitrary: fc.constantFrom(...BAD_DATES), weight: 4 },
  { arbitrary: dateShaped, weight: 3 },
  { arbitrary: fc.string({ maxLength: 30 }), weight: 2 },
  { arbitrary: unicodeString, weight: 1 },
  { arbitrary: anyNumber, weight: 1 },
  { arbitrary: longString, weight: 1 },
);
/** A query value as a list: absent, one value, or a repeated parameter (the first one counts). */
const param = (value: fc.Arbitrary<string>) =>
  fc.oneof(
    { arbitrary: fc.constant([] as string[]), weight: 2 },
    { arbitrary: value.map((v) => [v]), weight: 6 },
    { arbitrary: fc.array(value, { minLength: 2, maxLength: 3 }), weight: 1 },
  );
const dateParam = param(fc.oneof({ arbitrary: badDateValue, weight: 3 }, goodDate));
const limitParam = param(
  fc.oneof(
    fc.constantFrom(
      "0",
      "-1",
      "1001",
      "1.5",
      "1e2",
      "0x10",
      " 5",
      "5 ",
      "+5",
      "５",
      "10abc",
      "NaN",
      "Infinity",
      "99999999999999999999",
      "",
      ...SQL_TEXT,
    ),
    anyNumber,
    fc.integer({ min: 1, max: 1000 }).map(String),
    fc.string({ maxLength: 12 }),
    unicodeString,
  ),
);
const junkParams = fc.array(
  fc.tuple(
    fc
      .string({ minLength: 1, maxLength: 8 })
      .filter((k) => !["from", "to", "limit", "path", "date"].includes(k)),
    fc.string({ maxLength: 20 }),
  ),
  { maxLength: 2 },
);

type Pairs = [string, string][];
const pairs = (name: string, values: string[]): Pairs => values.map((v) => [name, v]);

/**
 * What the stats routes must answer for from/to/limit: 200 with the range, or 400. Years
 * before 1000 are left out: their handling is tested on its own in http.test.ts.
 */
function expectRange(
  from: string[],
  to: string[],
  limit: string[],
): { ok: true; from: string; to: string } | { ok: false } | "skip" {
  const toDay = to.length ? dayNumber(to[0] as string) : todayNumber();
  const fromDay = from.length ? dayNumber(from[0] as string) : toDay === null ? null : toDay - 6;
  for (const v of [from[0], to[0]]) {
    if (v !== undefined && dayNumber(v) !== null && Number(v.slice(0, 4)) < 1000) return "skip";
  }
  const rawLimit = limit[0];
  const limitOk =
    rawLimit === undefined ||
    rawLimit === "" ||
    (/^\d{1,9}$/.test(rawLimit) && Number(rawLimit) >= 1 && Number(rawLimit) <= 1000);
  if (toDay === null || fromDay === null || !limitOk) return { ok: false };
  if (fromDay > toDay || toDay - fromDay > 365) return { ok: false };
  return { ok: true, from: dayString(fromDay), to: dayString(toDay) };
}

describe("stats routes: malformed query strings", () => {
  it("top-paths answers 400 JSON for every bad from/to/limit, 200 for the valid ones", async () => {
    let bad = 0;
    await fc.assert(
      fc.asyncProperty(
        dateParam,
        dateParam,
        limitParam,
        junkParams,
        fc.boolean(),
        async (from, to, limit, junk, shuffle) => {
          const expected = expectRange(from, to, limit);
          fc.pre(expected !== "skip");
          // The names in another order, junk first: only each name's own order matters.
          const list: Pairs = shuffle
            ? [...junk, ...pairs("limit", limit), ...pairs("to", to), ...pairs("from", from)]
            : [...pairs("from", from), ...pairs("to", to), ...pairs("limit", limit), ...junk];
          const path = `/api/stats/top-paths${qs(list)}`;
          const res = await send(path);
          if (expected.ok) {
            expect(res.status, `${path} -> ${res.text}`).toBe(200);
            const body = res.body as { from: string; to: string; paths: unknown[] };
            expect(body.from).toBe(expected.from);
            expect(body.to).toBe(expected.to);
            expect(Array.isArray(body.paths)).toBe(true);
          } else {
            bad++;
            expect(res.status, `${path} -> ${res.text}`).toBe(400);
            expect(clientError(res, path)).toBe("bad_input");
          }
        },
      ),
      runs(500),
    );
    expect(bad).toBeGreaterThan(350);
  });

  it("path-daily answers 400 JSON for a bad path or range, 200 for the valid ones", async () => {
    const badPath = fc.oneof(
      fc.constantFrom(
        "",
        "blog",
        "blog/",
        " /blog",
        "\\blog",
        "%2Fblog",
        "http://example.com/",
        `/${"a".repeat(512)}`,
        `/${"é".repeat(600)}`,
        ...SQL_TEXT.filter((s) => !s.startsWith("/")),
      ),
      fc.string({ maxLength: 30 }).filter((s) => !s.startsWith("/")),
      unicodeString.filter((s) => !s.startsWith("/")),
      longString.map((s) => `/${s}`).filter((s) => s.length > 512),
    );
    const goodPath = fc.oneof(
      fc.constantFrom("/", "/blog", "/docs/docs-article-3", SQL_TEXT[5] as string),
      fc.string({ maxLength: 60 }).map((s) => `/${s}`),
      unicodeString.map((s) => `/${s}`),
    );
    const pathParam = param(fc.oneof({ arbitrary: badPath, weight: 3 }, goodPath));
    let bad = 0;
    await fc.assert(
      fc.asyncProperty(pathParam, dateParam, dateParam, junkParams, async (p, from, to, junk) => {
        const range = expectRange(from, to, []);
        fc.pre(range !== "skip");
        const first = p[0];
        const pathOk =
          first !== undefined && first.length > 0 && first.length <= 512 && first.startsWith("/");
        const list: Pairs = [
          ...pairs("path", p),
          ...junk,
          ...pairs("from", from),
          ...pairs("to", to),
        ];
        const url = `/api/stats/path-daily${qs(list)}`;
        const res = await send(url);
        if (pathOk && range.ok) {
          expect(res.status, `${url} -> ${res.text}`).toBe(200);
          expect(res.body).toMatchObject({ path: first, from: range.from, to: range.to });
        } else {
          bad++;
          expect(res.status, `${url} -> ${res.text}`).toBe(400);
          expect(clientError(res, url)).toBe("bad_input");
        }
      }),
      runs(500),
    );
    expect(bad).toBeGreaterThan(350);
  });

  it("takes broken percent-encoding in the query as text, and still answers 400", async () => {
    const raw = [
      "%",
      "%%",
      "%ZZ",
      "%E0%A4%A",
      "%C0%AF",
      "%00",
      "%2e%2e%2f",
      "%FF%FE",
      "%u0041",
      "+",
    ];
    for (const v of raw) {
      for (const path of [
        `/api/stats/top-paths?from=${v}&to=2025-06-03`,
        `/api/stats/top-paths?from=2025-06-01&to=2025-06-03&limit=${v}`,
        `/api/stats/path-daily?path=${v}&from=2025-06-01&to=2025-06-03`,
        `/api/stats/path-daily?path=/blog&from=${v}`,
        `/api/stats/top-paths?${v}=${v}&from=${v}`,
      ]) {
        const res = await send(path);
        expect(res.status, path).toBe(400);
        clientError(res, path);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe("admin routes: bad dates and bad credentials", () => {
  const ROUTES: [string, string][] = [
    ["GET", "/admin/trigger-archive"],
    ["POST", "/admin/trigger-archive"],
    ["GET", "/admin/trigger-cleanup"],
    ["POST", "/admin/trigger-cleanup"],
    ["GET", "/admin/archive-status"],
  ];

  it("answers 400 JSON for every bad date, with a valid token, and starts no job", async () => {
    const badFirst = fc
      .tuple(
        badDateValue.filter((v) => dayNumber(v) === null),
        fc.array(fc.oneof(badDateValue, goodDate), { maxLength: 2 }),
      )
      .map(([first, rest]) => [first, ...rest]);
    const dates = fc.oneof({ arbitrary: badFirst, weight: 9 }, fc.constant([] as string[]));
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ROUTES),
        dates,
        junkParams,
        async ([method, route], d, junk) => {
          const path = `${route}${qs([...pairs("date", d), ...junk])}`;
          const res = await send(path, { method, headers: bearer() });
          expect(res.status, `${method} ${path} -> ${res.text}`).toBe(400);
          expect(clientError(res, `${method} ${path}`)).toBe("bad_input");
        },
      ),
      runs(450),
    );
    expect(sql.prepare("SELECT COUNT(*) AS n FROM archive_metadata").get()).toEqual({ n: 0 });
    expect(filesUnder(srv.store)).toEqual([]);
  });

  it("never runs anything without the exact token, whatever the path spelling", async () => {
    const header = fc
      .oneof(
        fc.constant(undefined),
        fc.constantFrom(
          `bearer ${TOKEN}`,
          `BEARER ${TOKEN}`,
          `Bearer  ${TOKEN}`,
          `Bearer\t${TOKEN}`,
          `Bearer ${TOKEN.toUpperCase()}`,
          `Bearer ${TOKEN}${TOKEN}`,
          `Bearer ${TOKEN.slice(0, -1)}`,
          `Bearer ${TOKEN} x`,
          `Bearer "${TOKEN}"`,
          `Basic ${btoa(`admin:${TOKEN}`)}`,
          `Token ${TOKEN}`,
          TOKEN,
          "Bearer",
          "Bearer ",
          "",
        ),
        fc
          .tuple(fc.nat({ max: TOKEN.length }), fc.string({ minLength: 1, maxLength: 4 }))
          .map(([at, s]) => `Bearer ${TOKEN.slice(0, at)}${s}${TOKEN.slice(at)}`),
        fc.string({ maxLength: 80 }).map((s) => `Bearer ${s}`),
      )
      // Headers lose surrounding whitespace on the way: that would be the real token.
      .filter((h) => h?.trim() !== `Bearer ${TOKEN}`);
    const route = fc.constantFrom(
      "/admin/partitions",
      "/admin/trigger-archive?date=2025-06-02",
      "/admin/trigger-cleanup?date=2025-06-02",
      "/admin/archive-status?date=2025-06-02",
      "/admin/%70artitions",
      "/%61dmin/trigger-archive?date=2025-06-02",
      "/admin/trigger-archive/?date=2025-06-02",
      "/admin//trigger-archive?date=2025-06-02",
      "//admin/trigger-archive?date=2025-06-02",
      "/ADMIN/trigger-archive?date=2025-06-02",
      "/admin/trigger-archive;x?date=2025-06-02",
      "/admin/trigger-archive%3Fdate=2025-06-02",
      "/admin",
      "/admin/",
      "/admin/nope",
    );
    await fc.assert(
      fc.asyncProperty(
        route,
        fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH"),
        header,
        async (path, method, auth) => {
          const headers: Record<string, string> = auth === undefined ? {} : { authorization: auth };
          const res = await send(path, { method, headers });
          const what = `${method} ${path} auth=${JSON.stringify(auth)}`;
          const error = clientError(res, what);
          expect([401, 404], what).toContain(res.status);
          if (res.status === 401) {
            expect(error).toBe("unauthorized");
            expect(res.headers.get("www-authenticate"), what).toMatch(/^Bearer /);
          }
        },
      ),
      runs(300),
    );
    await new Promise((r) => setTimeout(r, 100));
    expect(sql.prepare("SELECT COUNT(*) AS n FROM archive_metadata").get()).toEqual({ n: 0 });
    expect(filesUnder(srv.store)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Ingest. Valid events are generated; then exactly one is broken in a way the schema refuses.

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what ingest refuses
const noControl = (s: string) => !/[\u0000-\u001f\u007f]/.test(s);
const text = (max: number) =>
  fc
    .oneof(fc.string({ maxLength: max }), fc.string({ unit: "grapheme", maxLength: max / 4 }))
    .filter((s) => noControl(s) && s.length <= max);
const validEvent = fc
  .record(
    {
      ts: fc.integer({ min: 946_684_800_000, max: 4_102_444_800_000 }),
      path: text(60).map((s) => `/${s}`),
      referrer: fc.option(text(80)),
      country: fc.option(fc.stringMatching(/^[A-Z]{2}$/)),
      user_agent: fc.option(text(80)),
      status: fc.integer({ min: 100, max: 599 }),
      duration_ms: fc.integer({ min: 0, max: 86_400_000 }),
      withDate: fc.boolean(),
    },
    { requiredKeys: ["ts", "path", "status", "duration_ms", "withDate"] },
  )
  .map(({ withDate, ...e }) => {
    const out: Record<string, unknown> = { ...e };
    if (withDate) out.event_date = new Date(e.ts).toISOString().slice(0, 10);
    return out;
  });

/** The fields of an ingest event: the traffic table's columns. */
const KEYS: string[] = [...TRAFFIC_COLUMNS];
const nested = fc.jsonValue({ maxDepth: 3 });
/** Values each field must refuse. */
const BAD_VALUES: Record<string, fc.Arbitrary<unknown>> = {
  ts: fc.oneof(
    fc.constantFrom(
      "1749000000000",
      1749000000000.5,
      1e308,
      -1e308,
      -1,
      0,
      946_684_799_999,
      4_102_444_800_001,
      Number.MAX_SAFE_INTEGER,
      null,
      true,
      "NaN",
      "Infinity",
      "",
    ),
    fc.double({ noInteger: true, noDefaultInfinity: true, noNaN: true }),
    fc.string(),
    nested.filter((v) => typeof v !== "number"),
  ),
  status: fc.oneof(
    fc.constantFrom("200", 99, 600, 200.5, -200, 1e308, 0, null, false, "NaN", [200], { v: 200 }),
    fc.integer().filter((n) => n < 100 || n > 599),
    fc.double({ noInteger: true, noNaN: true, noDefaultInfinity: true }),
  ),
  duration_ms: fc.oneof(
    fc.constantFrom(-1, 86_400_001, 1.5, "12", null, 1e308, -0.5, "0", [], {}),
    fc.integer().filter((n) => n < 0 || n > 86_400_000),
  ),
  path: fc.oneof(
    fc.constantFrom(
      "",
      "blog",
      " /blog",
      `/${"a".repeat(512)}`,
      "/a\nb",
      "/a\u0000",
      "/x\u007f",
      5,
      null,
      ["/"],
      {},
    ),
    fc.string().filter((s) => !s.startsWith("/")),
    fc
      .string({ minLength: 1, maxLength: 20, unit: "binary-ascii" })
      .filter((s) => !noControl(s))
      .map((s) => `/${s}`),
  ),
  referrer: fc.constantFrom(5, true, "x".repeat(513), "a\tb", "\u001b[31m", {}, [], ["x"]),
  user_agent: fc.constantFrom(7, false, "\u0001", "x".repeat(513), "ua\r\n", {}, [null]),
  country: fc.oneof(
    fc.constantFrom("us", "USA", "U", "", 12, "ÜS", "D E", "de", "1A", true, []),
    fc.string().filter((s) => !/^[A-Z]{2}$/.test(s)),
  ),
  event_date: fc.constantFrom("2025-1-1", 20250101, null, "", "tomorrow", true, "1999-12-31T00:00"),
};

type Ev = Record<string, unknown>;
type Mutation = { kind: string; apply: (e: Ev) => unknown };
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  // A field with a value it must refuse.
  fc
    .constantFrom(...KEYS)
    .chain((k) => (BAD_VALUES[k] as fc.Arbitrary<unknown>).map((v) => ({ k, v })))
    .map(({ k, v }) => ({
      kind: `${k}=${JSON.stringify(v)?.slice(0, 40)}`,
      apply: (e: Ev) => ({ ...e, [k]: v }),
    })),
  // event_date a real day, but not the UTC day of ts.
  fc
    .integer({ min: 1, max: 4000 })
    .map((shift) => ({
      kind: `event_date shifted ${shift}`,
      apply: (e: Ev) => ({
        ...e,
        event_date: new Date((e.ts as number) + shift * 86_400_000 * (shift % 2 ? 1 : -1))
          .toISOString()
          .slice(0, 10),
      }),
    })),
  // A required field missing.
  fc
    .constantFrom("ts", "path", "status", "duration_ms")
    .map((k) => ({
      kind: `missing ${k}`,
      apply: (e: Ev) => {
        const { [k]: _, ...rest } = e;
        return rest;
      },
    })),
  // A field the schema does not know (the row's own id included).
  fc
    .tuple(
      fc
        .oneof(
          fc.constantFrom("id", "__proto__", "constructor", "toString", "Path", "ts ", "extra"),
          fc.string({ minLength: 1, maxLength: 10 }),
        )
        .filter((k) => !KEYS.includes(k)),
      nested,
    )
    .map(([k, v]) => ({
      kind: `extra ${k}`,
      apply: (e: Ev) => {
        const out = { ...e };
        Object.defineProperty(out, k, {
          value: v,
          enumerable: true,
          configurable: true,
          writable: true,
        });
        return out;
      },
    })),
  // Not an object at all.
  fc
    .constantFrom<unknown>(null, 0, 1e308, "event", true, [], [{}])
    .map((v) => ({ kind: `event is ${JSON.stringify(v)}`, apply: () => v })),
  fc.constant({ kind: "event wrapped in an array", apply: (e: Ev) => [e] }),
);

/** The generated cases must be invalid for reasons the oracle knows; check one directly. */
function isValidEvent(e: unknown): boolean {
  if (typeof e !== "object" || e === null || Array.isArray(e)) return false;
  const o = e as Record<string, unknown>;
  if (Object.keys(o).some((k) => !KEYS.includes(k))) return false;
  const int = (v: unknown, min: number, max: number) =>
    typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;
  const str = (v: unknown, max: number) => typeof v === "string" && v.length <= max && noControl(v);
  const opt = (v: unknown, ok: (v: unknown) => boolean) => v === undefined || v === null || ok(v);
  if (!int(o.ts, 946_684_800_000, 4_102_444_800_000)) return false;
  if (!int(o.status, 100, 599) || !int(o.duration_ms, 0, 86_400_000)) return false;
  if (!str(o.path, 512) || !(o.path as string).startsWith("/")) return false;
  if (!opt(o.referrer, (v) => str(v, 512)) || !opt(o.user_agent, (v) => str(v, 512))) return false;
  if (!opt(o.country, (v) => typeof v === "string" && /^[A-Z]{2}$/.test(v))) return false;
  if (o.event_date !== undefined) {
    if (o.event_date !== new Date(o.ts as number).toISOString().slice(0, 10)) return false;
  }
  return true;
}

const batchAround = fc.record({
  before: fc.array(validEvent, { maxLength: 6 }),
  bad: fc.tuple(validEvent, mutation).map(([e, m]) => ({ kind: m.kind, event: m.apply(e) })),
  after: fc.array(fc.oneof(validEvent, nested), { maxLength: 4 }),
  ndjson: fc.boolean(),
});

function ndjsonBody(items: unknown[]): string {
  return `${items.map((i) => JSON.stringify(i)).join("\n")}\n`;
}

async function post(body: string | Uint8Array, type?: string) {
  return send("/api/events", {
    method: "POST",
    headers: type === undefined ? {} : { "content-type": type },
    body,
  });
}

describe("POST /api/events: malformed batches", () => {
  it("refuses a batch with one bad event: 400 bad_event at its index, nothing written", async () => {
    const before = tableCount(sql);
    await fc.assert(
      fc.asyncProperty(batchAround, async ({ before: ok, bad, after, ndjson }) => {
        expect(isValidEvent(bad.event), bad.kind).toBe(false);
        for (const e of ok) expect(isValidEvent(e)).toBe(true);
        const items = [...ok, bad.event, ...after];
        const res = ndjson
          ? await post(ndjsonBody(items), "application/x-ndjson")
          : await post(JSON.stringify(items), "application/json");
        const what = `${bad.kind} at ${ok.length} (${ndjson ? "ndjson" : "json"})`;
        expect(res.status, `${what} -> ${res.text}`).toBe(400);
        expect(clientError(res, what)).toBe("bad_event");
        expect((res.body as { index: number }).index, what).toBe(ok.length);
        expect(typeof (res.body as { reason: unknown }).reason).toBe("string");
      }),
      runs(700),
    );
    expect(tableCount(sql)).toBe(before);
  });

  it("refuses bodies that are not a JSON array of events: 400 JSON, nothing written", async () => {
    const before = tableCount(sql);
    const broken = fc
      .tuple(fc.array(validEvent, { minLength: 1, maxLength: 3 }), fc.nat())
      .map(([events, cut]) => {
        const s = JSON.stringify(events);
        return s.slice(0, cut % s.length);
      });
    const notArray = fc.oneof(
      validEvent.map((e) => JSON.stringify(e)),
      fc.array(validEvent, { maxLength: 2 }).map((events) => JSON.stringify({ events })),
      fc
        .jsonValue()
        .filter((v) => !Array.isArray(v))
        .map((v) => JSON.stringify(v)),
    );
    const rawBad = fc.constantFrom(
      "",
      " ",
      "[",
      "]",
      "{",
      "[]",
      "[ ]",
      "\n[]\n",
      "[1,]",
      "[NaN]",
      "[Infinity]",
      "[undefined]",
      "['a']",
      "\u0000",
      "\ufeff[]",
      '[{"ts": 01}]',
      '[{"ts":1e400,"path":"/","status":200,"duration_ms":1}]',
      '[{"ts":1749000000000,"path":"/","status":200,"duration_ms":1e400}]',
      '[{"ts":17490000000000000000000,"path":"/","status":200,"duration_ms":1}]',
      '[{"ts":1749000000000,"path":"/","status":-0.0000001,"duration_ms":1}]',
      '[{"ts":1749000000000,"path":"/","path":"/x","status":200,"duration_ms":1,"status":"200"}]',
      "[1,2,3]",
      "[null]",
      "[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]",
      `${"[".repeat(5000)}${"]".repeat(5000)}`,
      `[${'{"a":'.repeat(3000)}1${"}".repeat(3000)}]`,
      "<events><event/></events>",
      "ts=1&path=/",
    );
    const arrays = fc
      .array(
        fc.oneof(
          fc.jsonValue({ maxDepth: 2 }),
          validEvent.map((e) => ({ ...e, status: String(e.status) })),
        ),
        { minLength: 1, maxLength: 5 },
      )
      .filter((items) => !isValidEvent(items[0]));
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          broken,
          notArray,
          rawBad,
          arrays.map((a) => JSON.stringify(a)),
        ),
        fc.constantFrom("application/json", "application/json; charset=utf-8", "Application/JSON"),
        async (body, type) => {
          const res = await post(body, type);
          const what = `${type} ${JSON.stringify(body).slice(0, 200)}`;
          expect(res.status, `${what} -> ${res.text}`).toBe(400);
          expect(["bad_input", "bad_event"], what).toContain(clientError(res, what));
        },
      ),
      runs(350),
    );
    expect(tableCount(sql)).toBe(before);
  });

  it("refuses NDJSON with a bad line: 400 bad_event counting only non-blank lines", async () => {
    const before = tableCount(sql);
    const badLine = fc.oneof(
      fc.constantFrom("{", "nope", "[1,", '{"ts":}', "{'a':1}", "NaN", "undefined", "\u0000", "}{"),
      fc.string({ minLength: 1, maxLength: 40 }).filter((s) => {
        if (s.includes("\n") || s.trim() === "") return false;
        try {
          JSON.parse(s);
          return false;
        } catch {
          return true;
        }
      }),
      fc.tuple(validEvent, mutation).map(([e, m]) => JSON.stringify(m.apply(e))),
    );
    const blank = fc.constantFrom("", " ", "\t", "\r", "  \r");
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(validEvent, fc.array(blank, { maxLength: 2 })), { maxLength: 6 }),
        badLine,
        fc.array(
          fc.oneof(
            validEvent.map((e) => ({ line: JSON.stringify(e), bad: false })),
            badLine.map((line) => ({ line, bad: true })),
          ),
          { maxLength: 3 },
        ),
        fc.constantFrom(
          "application/x-ndjson",
          "application/ndjson",
          "application/x-ndjson; charset=utf-8",
        ),
        async (good, bad, rest, type) => {
          const lines = [
            ...good.flatMap(([e, blanks]) => [JSON.stringify(e), ...blanks]),
            bad,
            ...rest.map((r) => r.line),
          ];
          const res = await post(lines.join("\n"), type);
          const what = `line ${good.length}: ${JSON.stringify(bad).slice(0, 100)}`;
          expect(res.status, `${what} -> ${res.text}`).toBe(400);
          expect(clientError(res, what)).toBe("bad_event");
          // The index names a bad event; the first one when the lines after it are good. (With
          // an unparsable line further on, that line is named: lines are parsed before checked.)
          const index = (res.body as { index: number }).index;
          const badIndexes = [
            good.length,
            ...rest.flatMap((r, i) => (r.bad ? [good.length + 1 + i] : [])),
          ];
          expect(badIndexes, what).toContain(index);
          if (!rest.some((r) => r.bad)) expect(index, what).toBe(good.length);
        },
      ),
      runs(300),
    );
    // Only blank lines: no events.
    for (const body of ["", "\n", "\n\n  \n\r\n", " "]) {
      const res = await post(body, "application/x-ndjson");
      expect(res.status).toBe(400);
      expect(clientError(res, JSON.stringify(body))).toBe("bad_input");
    }
    expect(tableCount(sql)).toBe(before);
  });

  it("answers 415 JSON for every content type but JSON and NDJSON", async () => {
    const before = tableCount(sql);
    const accepted = ["application/json", "application/x-ndjson", "application/ndjson"];
    const type = fc
      .oneof(
        fc.constantFrom(
          "text/plain",
          "text/json",
          "application/xml",
          "application/jsonl",
          "application/json-seq",
          "application/jsonx",
          "application/ld+json",
          "application/x-www-form-urlencoded",
          "multipart/form-data; boundary=x",
          "application/octet-stream",
          "json",
          "*/*",
          ";application/json",
          "application/json,text/plain",
          "application/ json",
          "",
        ),
        fc.string({ maxLength: 40 }),
        fc
          .tuple(fc.constantFrom(...accepted), fc.string({ minLength: 1, maxLength: 3 }))
          .map(([t, s]) => `${t}${s}`),
      )
      .filter((t) => !accepted.includes((t.split(";")[0] ?? "").trim().toLowerCase()));
    const body = JSON.stringify([
      { ts: 1_749_000_000_000, path: "/415", status: 200, duration_ms: 1 },
    ]);
    await fc.assert(
      fc.asyncProperty(type, async (t) => {
        const res = await post(body, t);
        expect(res.status, `${JSON.stringify(t)} -> ${res.text}`).toBe(415);
        expect(clientError(res, t)).toBe("unsupported_media_type");
      }),
      runs(150),
    );
    const none = await post(new TextEncoder().encode(body));
    expect(none.status).toBe(415);
    clientError(none, "no content type");
    expect(tableCount(sql)).toBe(before);
  });

  it("answers 413 JSON for bodies over INGEST_MAX_BYTES, sized or streamed", async () => {
    const before = tableCount(sql);
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: MAX_BYTES + 1, max: MAX_BYTES + 40_000 }),
        fc.constantFrom("application/json", "application/x-ndjson", "text/plain"),
        fc.constantFrom("valid", "garbage", "spaces"),
        fc.boolean(),
        async (size, type, fill, streamed) => {
          const one = JSON.stringify({
            ts: 1_749_000_000_000,
            path: "/big",
            status: 200,
            duration_ms: 1,
          });
          let body: string;
          if (fill === "valid") {
            const n = Math.ceil(size / (one.length + 1));
            body =
              type === "application/json"
                ? `[${Array(n).fill(one).join(",")}]`
                : Array(n).fill(one).join("\n");
          } else if (fill === "garbage") {
            body = "x".repeat(size);
          } else {
            body = `[${" ".repeat(size)}]`;
          }
          const bytes = new TextEncoder().encode(body);
          expect(bytes.length).toBeGreaterThan(MAX_BYTES);
          const init: RequestInit & { duplex?: "half" } = {
            method: "POST",
            headers: { "content-type": type },
          };
          if (streamed) {
            // No Content-Length: the limit must hold on the bytes as they arrive.
            init.body = new ReadableStream<Uint8Array>({
              start(controller) {
                for (let i = 0; i < bytes.length; i += 8192)
                  controller.enqueue(bytes.subarray(i, i + 8192));
                controller.close();
              },
            });
            init.duplex = "half";
          } else {
            init.body = bytes;
          }
          const res = await send("/api/events", init);
          const what = `${size} bytes of ${fill} as ${type}${streamed ? ", streamed" : ""}`;
          expect(res.status, `${what} -> ${res.text}`).toBe(413);
          expect(clientError(res, what)).toBe("too_large");
          expect((res.body as { limit: number }).limit).toBe(MAX_BYTES);
        },
      ),
      runs(60),
    );
    expect(tableCount(sql)).toBe(before);
  });

  it("answers 413 JSON { limit } for batches over INGEST_MAX_EVENTS", async () => {
    const before = tableCount(sql);
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: MAX_EVENTS + 1, max: MAX_EVENTS + 400 }),
        fc.boolean(),
        fc.constantFrom<unknown>({}, 1, {
          ts: 1_749_000_000_000,
          path: "/",
          status: 200,
          duration_ms: 1,
        }),
        async (n, ndjson, item) => {
          const items = Array(n).fill(item);
          const res = ndjson
            ? await post(ndjsonBody(items), "application/x-ndjson")
            : await post(JSON.stringify(items), "application/json");
          const what = `${n} x ${JSON.stringify(item)}`;
          expect(res.status, `${what} -> ${res.text}`).toBe(413);
          expect(clientError(res, what)).toBe("too_many_events");
          expect(res.body).toMatchObject({ limit: MAX_EVENTS });
          expect((res.body as { message: string }).message).toMatch(
            new RegExp(`more than ${MAX_EVENTS} events`),
          );
        },
      ),
      runs(40),
    );
    expect(tableCount(sql)).toBe(before);
  });
});

// ---------------------------------------------------------------------------------------------

describe("routes that do not exist", () => {
  it("answers 404 (or 401 under /admin without a token) with JSON", async () => {
    const known = new Set([
      "GET /healthz",
      "GET /metrics",
      "POST /api/events",
      "GET /api/stats/top-paths",
      "GET /api/stats/path-daily",
      // The console's page and files (sluice serve finds them in dist/console).
      "GET /",
      "GET /console/console.js",
      "GET /console/console.css",
    ]);
    const prefix = fc.constantFrom(
      "/",
      "/api/",
      "/api/stats/",
      "/api/events/",
      "/healthz/",
      "/x/",
      "/admin/",
    );
    const segment = fc.oneof(
      fc.webSegment(),
      fc.constantFrom(
        "..",
        ".",
        "%2e%2e",
        "%00",
        "events",
        "stats",
        "top-paths",
        "healthz",
        "metrics",
      ),
      fc.string({ maxLength: 20 }).map(encodeURIComponent),
    );
    await fc.assert(
      fc.asyncProperty(
        prefix,
        fc.array(segment, { maxLength: 3 }),
        fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"),
        async (p, segments, method) => {
          const path = `${p}${segments.join("/")}`;
          const normalized = new URL(`${srv.url}${path}`).pathname;
          let decoded = normalized;
          try {
            decoded = decodeURIComponent(normalized);
          } catch {}
          fc.pre(!known.has(`${method} ${normalized}`) && !known.has(`${method} ${decoded}`));
          const res = await send(path, {
            method,
            headers: { "content-type": "application/json" },
            body: method === "GET" ? undefined : "[]",
          });
          const what = `${method} ${path}`;
          const error = clientError(res, what);
          if (decoded.startsWith("/admin")) expect([401, 404], what).toContain(res.status);
          else {
            expect(res.status, what).toBe(404);
            expect(error).toBe("not_found");
          }
        },
      ),
      runs(250),
    );
  });
});

describe("requests Node's HTTP parser refuses before the app sees them", () => {
  /** Write raw bytes to the server and read its whole answer (it closes the connection). */
  function raw(request: string): Promise<{ status: number; head: string; body: string }> {
    const { hostname, port } = new URL(srv.url);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), hostname, () => socket.end(request));
      const chunks: Buffer[] = [];
      socket.on("data", (c: Buffer) => chunks.push(c));
      socket.on("error", reject);
      socket.on("close", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        const [head = "", body = ""] = text.split("\r\n\r\n", 2);
        resolve({ status: Number(head.split(" ")[1]), head, body });
      });
    });
  }

  it("a URL over the 16 KB header limit is a 4xx, never a crash", async () => {
    for (const path of [
      `/api/stats/top-paths${qs([["from", "x".repeat(20_000)]])}`,
      `/api/stats/path-daily${qs([["path", `/${"é".repeat(5_000)}`]])}`,
      `/admin/trigger-archive${qs([["date", "2".repeat(17_000)]])}`,
    ]) {
      const res = await send(path, { headers: bearer() });
      expect(res.status, path.slice(0, 60)).toBe(431);
    }
    expect((await call(`${srv.url}/healthz`)).status).toBe(200);
  });

  // Node answers what its parser refuses itself, with no body, unless the server handles
  // 'clientError' (src/node/serve.ts): every error a client gets is the API's JSON shape.
  it("answers them with the API's JSON error body too", async () => {
    const cases = [
      `GET /api/stats/top-paths?from=${"x".repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
      "GET /healthz HTTP/1.1\r\nHost: x\r\nNot a header\r\n\r\n",
      "POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n[]",
      "BREW /coffee HTCPCP/1.0\r\n\r\n",
    ];
    for (const request of cases) {
      const res = await raw(request);
      const what = `${JSON.stringify(request.slice(0, 60))} -> ${res.head.split("\r\n")[0]}`;
      expect(res.status, what).toBeGreaterThanOrEqual(400);
      expect(res.status, what).toBeLessThan(500);
      expect.soft(res.head, what).toMatch(/content-type: application\/json/i);
      let body: unknown;
      try {
        body = JSON.parse(res.body);
      } catch {}
      expect.soft(typeof (body as { error?: unknown } | undefined)?.error, what).toBe("string");
    }
  });
});

describe("after all that", () => {
  it("the server still answers, and nothing was written or archived", async () => {
    const res = await call(`${srv.url}/healthz`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ ok: true });
    expect(tableCount(sql)).toBe(900);
    expect(filesUnder(srv.store)).toEqual([]);
    const counts = Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0]));
    console.info(`fuzz: ${requests} requests; by status ${JSON.stringify(counts)}`);
    expect(requests).toBeGreaterThanOrEqual(3000);
    expect([...statuses.keys()].filter((s) => s >= 500)).toEqual([]);
  });
});
