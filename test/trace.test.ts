import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JsonRows, type RowBatch, rowsOf } from "../src/core/json/json-rows.js";
import type { Row, SqlSource } from "../src/core/sql/source.js";
import { domainEvents } from "../src/core/trace/events.js";
import { traceLineage } from "../src/core/trace/lineage.js";
import { MsdPareto } from "../src/core/trace/msd.js";
import { readSqlMaterialised } from "../src/core/trace/readers.js";
import { resolveSeeds } from "../src/core/trace/seed-resolve.js";
import { openSource } from "../src/node/open.js";
import { prepareMesData } from "../src/workloads/mes/prepare.js";
import { type TestDb, postgresDb, sqliteDb } from "./servers.js";

/**
 * The trace stages on a small generated factory, each checked against the answer computed
 * independently in SQL: seeds by SELECT DISTINCT, lineage by a recursive CTE, events by a
 * plain SELECT, the MSD pareto by GROUP BY.
 */
const dir = mkdtempSync(join(tmpdir(), "sluice-trace-"));
const decoder = new TextDecoder();
/** A batch's rows as values: a JsonRows batch's read back from its JSON. */
const valuesOf = (batch: RowBatch): Row[] =>
  batch instanceof JsonRows
    ? Array.from({ length: batch.length }, (_, i) => JSON.parse(decoder.decode(batch.row(i))))
    : batch;

const dbs = [sqliteDb(dir), await postgresDb()];
afterAll(async () => {
  for (const db of dbs) await db?.close();
  rmSync(dir, { recursive: true, force: true });
});

for (const maybe of dbs) {
  describe.runIf(maybe !== null)(`trace stages on ${maybe?.name ?? "a missing server"}`, () => {
    const db = maybe as TestDb;
    let source: SqlSource;
    let range: { from: string; to: string };
    beforeAll(async () => {
      source = await openSource(db.url, { create: true });
      await prepareMesData(source, { scale: 0.01 });
      const [r] = await source.query(
        `SELECT MIN(${q("TRACKOUT_TS")}) AS lo, MAX(${q("TRACKOUT_TS")}) AS hi FROM ${q("lot_moves")} WHERE ${q("WORKCENTER")} = 'TMTT'`,
      );
      // The middle third of TMTT's days: a range that holds some lots and not others.
      const lo = Date.parse(String(r?.lo).slice(0, 10));
      const hi = Date.parse(String(r?.hi).slice(0, 10));
      const day = (t: number) => new Date(t).toISOString().slice(0, 10);
      range = { from: day(lo + (hi - lo) / 3), to: day(lo + ((hi - lo) * 2) / 3) };
    }, 120_000);
    afterAll(async () => source?.close());
    const q = (s: string) => source.dialect.quote(s);
    const ids = (rows: Row[], k: string) => rows.map((r) => String(r[k])).sort();

    async function seeds() {
      return resolveSeeds(source, { workcenter: "TMTT", ...range }, { fetchSize: 500 });
    }

    it("seed-resolve: the lots and containers that left TMTT in the range, as SELECT DISTINCT says", async () => {
      const s = await seeds();
      const end = new Date(Date.parse(range.to) + 86_400_000).toISOString().slice(0, 10);
      const where = `${q("WORKCENTER")} = 'TMTT' AND ${q("TRACKOUT_TS")} >= '${range.from}' AND ${q("TRACKOUT_TS")} < '${end}'`;
      const lots = await source.query(
        `SELECT DISTINCT ${q("LOTID")} AS x FROM ${q("lot_moves")} WHERE ${where}`,
      );
      const cids = await source.query(
        `SELECT DISTINCT ${q("CONTAINERID")} AS x FROM ${q("lot_moves")} WHERE ${where}`,
      );
      expect(s.lots.length).toBeGreaterThan(0);
      expect([...s.lots].sort()).toEqual(ids(lots, "x"));
      expect([...s.containers].sort()).toEqual(ids(cids, "x"));
    });

    for (const direction of ["forward", "backward"] as const) {
      it(`lineage ${direction}: the containers a recursive CTE reaches from the seeds`, async () => {
        const s = await seeds();
        const lineage = await traceLineage(source, s.containers, direction, {
          idsPerStatement: 50,
        });
        const [from, to] =
          direction === "forward"
            ? ["PARENT_CONTAINERID", "CHILD_CONTAINERID"]
            : ["CHILD_CONTAINERID", "PARENT_CONTAINERID"];
        await source.execute("DROP TABLE IF EXISTS t_seeds");
        await source.execute("CREATE TABLE t_seeds (cid VARCHAR(64) PRIMARY KEY)");
        for (const c of s.containers) await source.execute("INSERT INTO t_seeds VALUES (?)", [c]);
        const reached = await readSqlMaterialised(
          source,
          `WITH RECURSIVE walk(cid) AS (
             SELECT CAST(cid AS VARCHAR(64)) FROM t_seeds
             UNION
             SELECT CAST(l.${q(to)} AS VARCHAR(64)) FROM ${q("container_lineage")} l JOIN walk w ON l.${q(from)} = w.cid
           ) SELECT cid FROM walk`,
        );
        expect([...lineage.containers].sort()).toEqual(ids(reached, "cid"));
        expect(new Set(lineage.containers).size).toBe(lineage.containers.length);
        if (direction === "backward")
          expect(lineage.containers.length).toBeGreaterThan(s.containers.length);
      });
    }

    it("events: every row of each domain for the containers, a container's rows together", async () => {
      const s = await seeds();
      const { containers } = await traceLineage(source, s.containers, "backward");
      for (const domain of ["upstream_history", "defect_records"] as const) {
        const got: Row[] = [];
        for await (const batch of domainEvents(source, domain, containers, {
          idsPerStatement: 100,
          workers: 2,
          fetchSize: 250,
        })) {
          expect(batch.length).toBeLessThanOrEqual(250);
          // PostgreSQL's rows come through COPY, already JSON: the fields grouping and the
          // pareto read are kept beside it, equal to the row's own.
          expect(batch instanceof JsonRows).toBe(db.name === "PostgreSQL");
          const rows = valuesOf(batch);
          expect(rows).toHaveLength(batch.length);
          for (const [i, r] of rows.entries()) {
            const kept = rowsOf(batch)[i] as Row;
            for (const k of Object.keys(kept)) expect(kept[k]).toBe(r[k]);
            expect(kept.CONTAINERID).toBe(r.CONTAINERID);
            got.push(r);
          }
        }
        // Grouped: once a container's rows end, it never comes back.
        const closed = new Set<string>();
        let current = "";
        for (const r of got) {
          const cid = String(r.CONTAINERID);
          if (cid !== current) {
            expect(closed.has(cid)).toBe(false);
            if (current) closed.add(current);
            current = cid;
          }
        }
        await source.execute("DROP TABLE IF EXISTS t_cids");
        await source.execute("CREATE TABLE t_cids (cid VARCHAR(64) PRIMARY KEY)");
        for (const c of containers) await source.execute("INSERT INTO t_cids VALUES (?)", [c]);
        const expected = await readSqlMaterialised(
          source,
          `SELECT d.* FROM ${q(domain)} d JOIN t_cids t ON t.cid = d.${q("CONTAINERID")}`,
          [],
          { maxRows: 1_000_000 },
        );
        const key = (r: Row) =>
          JSON.stringify(
            Object.keys(r)
              .filter((k) => k !== "ID")
              .sort()
              .map((k) => [k, r[k]]),
          );
        expect(got.map(key).sort()).toEqual(expected.map(key).sort());
      }
    });

    it("MSD pareto: defect qty by upstream station and equipment, as GROUP BY says", async () => {
      const s = await seeds();
      const { containers } = await traceLineage(source, s.containers, "backward");
      const pareto = new MsdPareto(containers);
      pareto.addLineage((await traceLineage(source, containers, "backward")).edges);
      for await (const b of domainEvents(source, "defect_records", containers))
        pareto.addDefects(rowsOf(b));
      for await (const b of domainEvents(source, "upstream_history", containers))
        pareto.addUpstream(rowsOf(b));
      const result = pareto.result();

      await source.execute("DROP TABLE IF EXISTS t_cids");
      await source.execute("CREATE TABLE t_cids (cid VARCHAR(64) PRIMARY KEY)");
      for (const c of containers) await source.execute("INSERT INTO t_cids VALUES (?)", [c]);
      const C = q("CONTAINERID");
      const L = q("container_lineage");
      const v = (x: string) => `CAST(${x} AS VARCHAR(64))`;
      // A defective container's history: its own rows and every ancestor's (among the
      // traced containers); each of its stations/equipment credited once.
      const expected = await source.query(
        `WITH RECURSIVE d AS (SELECT r.${C} AS cid, SUM(r.${q("DEFECT_QTY")}) AS qty FROM ${q("defect_records")} r
                    JOIN t_cids t ON t.cid = r.${C} GROUP BY r.${C}),
              anc(d, x) AS (
                SELECT ${v("cid")}, ${v("cid")} FROM d
                UNION
                SELECT anc.d, ${v(`l.${q("PARENT_CONTAINERID")}`)} FROM anc
                JOIN ${L} l ON l.${q("CHILD_CONTAINERID")} = anc.x
                JOIN t_cids t ON t.cid = l.${q("PARENT_CONTAINERID")}),
              u AS (SELECT DISTINCT anc.d AS cid, h.${q("WORKCENTER")} AS wc, h.${q("EQUIPMENT")} AS eq
                    FROM anc JOIN ${q("upstream_history")} h ON h.${C} = anc.x)
         SELECT u.wc, u.eq, SUM(d.qty) AS qty, COUNT(*) AS n FROM u JOIN d ON d.cid = u.cid
         GROUP BY u.wc, u.eq`,
      );
      expect(result.pareto.length).toBeGreaterThan(0);
      expect(
        result.pareto.map((p) => [p.workcenter, p.equipment, p.defectQty, p.containers]),
      ).toEqual(
        expected
          .map((r) => [String(r.wc), String(r.eq), Number(r.qty), Number(r.n)] as const)
          .sort(
            (a, b) =>
              b[2] - a[2] ||
              (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0) ||
              (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0),
          ),
      );
      expect(result.pareto.at(-1)?.cumulativePercent).toBeCloseTo(100, 1);
      // The head bar's share of all the containers' defect quantity.
      const [total] = await source.query(
        `SELECT SUM(r.${q("DEFECT_QTY")}) AS qty, COUNT(DISTINCT r.${C}) AS n FROM ${q("defect_records")} r JOIN t_cids t ON t.cid = r.${C}`,
      );
      expect(result.totalDefectQty).toBe(Number(total?.qty));
      expect(result.defectiveContainers).toBe(Number(total?.n));
      const head = result.pareto[0] as { defectQty: number; defectShare: number };
      expect(head.defectShare).toBeCloseTo((head.defectQty / result.totalDefectQty) * 100, 1);
      expect(head.defectShare).toBeLessThanOrEqual(100);
    });
  });
}
