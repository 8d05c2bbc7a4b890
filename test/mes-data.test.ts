import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadInputError } from "../src/core/errors.js";
import type { Row, SqlSource } from "../src/core/sql/source.js";
import { MES_COLUMNS, MES_KEY, MES_TABLES, type MesTable } from "../src/core/trace/tables.js";
import { openSource } from "../src/node/open.js";
import { MES_HOTSPOTS, MES_ROUTE, mesLots } from "../src/workloads/mes/factory.js";
import { generateMesFactory } from "../src/workloads/mes/generate.js";
import { type MesSummary, prepareMesData } from "../src/workloads/mes/prepare.js";
import { MES_INDEXES } from "../src/workloads/mes/schema.js";
import { type TestDb, mariaDb, postgresDb } from "./servers.js";

/**
 * The generated MES factory, at a small scale, checked for what the trace stages rely on:
 * the tables and their upper-case columns, counts in the seed's proportions, a lineage that
 * is deep and goes both ways, events keyed by known containers, moves in route order, a
 * defect pareto with a clear head, the same rows on every run and on every database.
 */
const SCALE = 0.01;
/** The seed's case, per lot (scale 1: 70K lots). */
const SEED = { moves: 525_000, containers: 114_000, events: 1_000_000, lots: 70_000 };
const TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

const dir = mkdtempSync(join(tmpdir(), "sluice-mes-"));
const servers = [await postgresDb(), await mariaDb()];
afterAll(async () => {
  for (const db of servers) await db?.close();
  rmSync(dir, { recursive: true, force: true });
});

type Tables = Record<MesTable, Row[]>;

async function readAll(source: SqlSource): Promise<Tables> {
  const q = source.dialect.quote;
  const out = {} as Tables;
  for (const t of MES_TABLES) {
    const rows = await source.query(`SELECT * FROM ${q(t)} ORDER BY ${q(MES_KEY)}`);
    // Drivers differ on number types (BIGINT as string, ...): compare values, not types.
    out[t] = rows.map((r) => {
      const row: Row = { [MES_KEY]: Number(r[MES_KEY]) };
      for (const c of MES_COLUMNS[t]) row[c] = /QTY$/.test(c) ? Number(r[c]) : r[c];
      return row;
    });
  }
  return out;
}

function digest(tables: Tables): Record<MesTable, string> {
  const out = {} as Record<MesTable, string>;
  for (const t of MES_TABLES) {
    const h = createHash("sha256");
    for (const r of tables[t]) h.update(`${JSON.stringify(r)}\n`);
    out[t] = h.digest("hex");
  }
  return out;
}

const s = (v: unknown) => String(v);

describe(`MES factory at scale ${SCALE} (SQLite)`, () => {
  let source: SqlSource;
  let summary: MesSummary;
  let data: Tables;
  const progress: [number, number][] = [];
  beforeAll(async () => {
    source = await openSource(`sqlite:${join(dir, "mes.db")}`, { create: true });
    summary = await prepareMesData(source, {
      scale: SCALE,
      onProgress: (done, total) => progress.push([done, total]),
    });
    data = await readAll(source);
  });
  afterAll(async () => source?.close());

  it("creates the four tables with the upper-case columns, an ID key and the indexes", async () => {
    for (const t of MES_TABLES) {
      expect(await source.tableColumns(t)).toEqual([MES_KEY, ...MES_COLUMNS[t]]);
    }
    const indexes = await source.query(
      "SELECT name, tbl_name AS t FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'",
    );
    expect(indexes.map((r) => `${r.t}.${r.name}`).sort()).toEqual(
      MES_INDEXES.map((ix) => `${ix.table}.${ix.name}`).sort(),
    );
  });

  it("has rows in the seed's proportions, as the summary says, with progress on the way", () => {
    const lots = new Set(data.lot_moves.map((r) => s(r.LOTID)));
    const containers = new Set(data.lot_moves.map((r) => s(r.CONTAINERID)));
    expect(summary).toMatchObject({
      scale: SCALE,
      lots: lots.size,
      containers: containers.size,
      lot_moves: data.lot_moves.length,
      container_lineage: data.container_lineage.length,
      upstream_history: data.upstream_history.length,
      defect_records: data.defect_records.length,
    });
    expect(lots.size).toBe(SEED.lots * SCALE);
    const near = (n: number, want: number) => {
      expect(n).toBeGreaterThan(want * 0.85);
      expect(n).toBeLessThan(want * 1.15);
    };
    near(summary.lot_moves, SEED.moves * SCALE);
    near(summary.containers, SEED.containers * SCALE);
    near(summary.upstream_history, SEED.events * SCALE);
    near(summary.defect_records, SEED.events * SCALE);
    expect(progress.length).toBeGreaterThan(3);
    expect(progress.at(-1)).toEqual([summary.rows, summary.rows]);
  });

  it("scales: a tenth and a hundredth of it keep the proportions (generator only)", () => {
    for (const scale of [0.001, 0.1]) {
      const n = { lots: 0, containers: 0, moves: 0, history: 0, defects: 0 };
      for (const b of generateMesFactory(scale)) {
        n.lots += b.lots;
        n.containers += b.containers;
        n.moves += b.lot_moves.length;
        n.history += b.upstream_history.length;
        n.defects += b.defect_records.length;
      }
      expect(n.lots).toBe(mesLots(scale));
      const slack = scale < 0.01 ? 0.3 : 0.1;
      for (const [got, want] of [
        [n.moves, SEED.moves],
        [n.containers, SEED.containers],
        [n.history, SEED.events],
        [n.defects, SEED.events],
      ] as const) {
        expect(got / (want * scale)).toBeGreaterThan(1 - slack);
        expect(got / (want * scale)).toBeLessThan(1 + slack);
      }
    }
  });

  it("has a lineage of known containers, SPLIT and MERGE, several levels deep and acyclic", () => {
    const known = new Set(data.lot_moves.map((r) => s(r.CONTAINERID)));
    const parents = new Map<string, string[]>();
    const children = new Map<string, string[]>();
    for (const e of data.container_lineage) {
      const [p, c] = [s(e.PARENT_CONTAINERID), s(e.CHILD_CONTAINERID)];
      expect(known.has(p) && known.has(c), `${p} -> ${c}`).toBe(true);
      expect(["SPLIT", "MERGE"]).toContain(e.RELATION);
      expect(s(e.TS)).toMatch(TS);
      parents.set(c, [...(parents.get(c) ?? []), p]);
      children.set(p, [...(children.get(p) ?? []), c]);
    }
    const relations = data.container_lineage.map((e) => e.RELATION);
    expect(relations.filter((r) => r === "SPLIT").length).toBeGreaterThan(100);
    expect(relations.filter((r) => r === "MERGE").length).toBeGreaterThan(10);
    // Both directions fan out: containers with several children, and with several parents.
    expect([...children.values()].some((cs) => cs.length >= 2)).toBe(true);
    expect([...parents.values()].some((ps) => ps.length >= 2)).toBe(true);
    // Depth (longest ancestor chain), with a cycle check on the way.
    const depth = new Map<string, number>();
    const visiting = new Set<string>();
    const depthOf = (c: string): number => {
      const known = depth.get(c);
      if (known !== undefined) return known;
      expect(visiting.has(c), `cycle through ${c}`).toBe(false);
      visiting.add(c);
      const d = Math.max(0, ...(parents.get(c) ?? []).map((p) => depthOf(p) + 1));
      visiting.delete(c);
      depth.set(c, d);
      return d;
    };
    const depths = [...parents.keys()].map(depthOf);
    expect(Math.max(...depths)).toBeGreaterThanOrEqual(2);
    expect(depths.filter((d) => d >= 2).length).toBeGreaterThan(10);
    // A split child is new: its moves start after the split; a merged one moves no more.
    const moves = movesByContainer(data);
    for (const e of data.container_lineage) {
      if (e.RELATION === "SPLIT") {
        expect(s(moves.get(s(e.CHILD_CONTAINERID))?.[0]?.TRACKIN_TS) > s(e.TS)).toBe(true);
      } else {
        expect(s(moves.get(s(e.PARENT_CONTAINERID))?.at(-1)?.TRACKOUT_TS) < s(e.TS)).toBe(true);
      }
    }
  });

  it("keys every event row by a known container, with history at each station it moved through", () => {
    const known = new Set(data.lot_moves.map((r) => s(r.CONTAINERID)));
    for (const r of [...data.upstream_history, ...data.defect_records]) {
      expect(known.has(s(r.CONTAINERID)), s(r.CONTAINERID)).toBe(true);
    }
    const visits = (rows: Row[]) =>
      [...new Set(rows.map((r) => `${r.CONTAINERID}/${r.WORKCENTER}/${r.EQUIPMENT}`))].sort();
    expect(visits(data.upstream_history)).toEqual(visits(data.lot_moves));
    for (const r of data.defect_records) {
      expect(s(r.TS)).toMatch(TS);
      expect(Number(r.DEFECT_QTY)).toBeGreaterThan(0);
    }
  });

  it("moves containers through the route in order, each move tracked in before it is tracked out", () => {
    for (const r of [...data.lot_moves, ...data.upstream_history]) {
      expect(s(r.TRACKIN_TS)).toMatch(TS);
      expect(s(r.TRACKOUT_TS)).toMatch(TS);
      expect(s(r.TRACKIN_TS) < s(r.TRACKOUT_TS), `${r.CONTAINERID} ${r.WORKCENTER}`).toBe(true);
      expect(Number(r.QTY)).toBeGreaterThan(0);
    }
    const station = (r: Row) => MES_ROUTE.indexOf(s(r.WORKCENTER) as (typeof MES_ROUTE)[number]);
    const cycleDays: number[] = [];
    for (const [cid, moves] of movesByContainer(data)) {
      for (let i = 1; i < moves.length; i++) {
        const [a, b] = [moves[i - 1] as Row, moves[i] as Row];
        expect(station(b), `${cid}: ${a.WORKCENTER} then ${b.WORKCENTER}`).toBeGreaterThan(
          station(a),
        );
        expect(s(b.TRACKIN_TS) >= s(a.TRACKOUT_TS), cid).toBe(true);
      }
      const first = moves[0] as Row;
      if (first.WORKCENTER === "DIE_ATTACH" && moves.at(-1)?.WORKCENTER === "PACK") {
        cycleDays.push(
          (Date.parse(s(moves.at(-1)?.TRACKOUT_TS)) - Date.parse(s(first.TRACKIN_TS))) / 86_400_000,
        );
      }
    }
    // Lots take days through the factory.
    cycleDays.sort((a, b) => a - b);
    const median = cycleDays[Math.floor(cycleDays.length / 2)] as number;
    expect(median).toBeGreaterThan(1);
    expect(median).toBeLessThan(10);
    expect(station(data.lot_moves.find((r) => r.LOTID === "L0000001") as Row)).toBe(0);
  });

  it("concentrates defects: three upstream units head the pareto and hold over half the defect qty", () => {
    // The trace-back MSD does: defects found at TMTT, credited to each upstream unit that the
    // container or one of its ancestors went through.
    const parents = new Map<string, string[]>();
    for (const e of data.container_lineage) {
      const c = s(e.CHILD_CONTAINERID);
      parents.set(c, [...(parents.get(c) ?? []), s(e.PARENT_CONTAINERID)]);
    }
    const units = new Map<string, Set<string>>();
    for (const r of data.upstream_history) {
      if (r.WORKCENTER === "TMTT" || r.WORKCENTER === "PACK") continue;
      const cid = s(r.CONTAINERID);
      units.set(cid, (units.get(cid) ?? new Set()).add(s(r.EQUIPMENT)));
    }
    const defective = new Map<string, number>();
    let total = 0;
    for (const r of data.defect_records) {
      total += Number(r.DEFECT_QTY);
      if (r.WORKCENTER !== "TMTT") continue;
      const cid = s(r.CONTAINERID);
      defective.set(cid, (defective.get(cid) ?? 0) + Number(r.DEFECT_QTY));
    }
    const upstream = (cid: string): Set<string> => {
      const out = new Set<string>();
      const todo = [cid];
      const seen = new Set<string>();
      for (let c = todo.pop(); c !== undefined; c = todo.pop()) {
        if (seen.has(c)) continue;
        seen.add(c);
        for (const u of units.get(c) ?? []) out.add(u);
        todo.push(...(parents.get(c) ?? []));
      }
      return out;
    };
    const bars = new Map<string, number>();
    const through = new Map<string, Set<string>>();
    for (const [cid, qty] of defective) {
      const us = upstream(cid);
      through.set(cid, us);
      for (const u of us) bars.set(u, (bars.get(u) ?? 0) + qty);
    }
    const pareto = [...bars].sort((a, b) => b[1] - a[1]);
    const head = pareto.slice(0, 3).map(([u]) => u);
    expect(head.sort()).toEqual(MES_HOTSPOTS.map((h) => h.equipment).sort());
    // A clear head: each of the three well above the best of the rest.
    expect((pareto[2] as [string, number])[1]).toBeGreaterThan(
      (pareto[3] as [string, number])[1] * 1.3,
    );
    let covered = 0;
    for (const [cid, qty] of defective) {
      if (head.some((u) => through.get(cid)?.has(u))) covered += qty;
    }
    expect(covered / total).toBeGreaterThan(0.5);
  });

  it("generates the same rows again (replace), and refuses tables that already hold rows", async () => {
    await expect(prepareMesData(source, { scale: SCALE })).rejects.toThrow(BadInputError);
    await expect(prepareMesData(source, { scale: SCALE })).rejects.toThrow(
      /lot_moves already holds rows.*--replace/,
    );
    const before = digest(data);
    const again = await prepareMesData(source, { scale: SCALE, replace: true });
    expect(again).toEqual(summary);
    expect(digest(await readAll(source))).toEqual(before);
    // The generator alone gives those rows; another scale is another factory.
    const first = (scale: number) => generateMesFactory(scale).next().value?.lot_moves[0];
    expect(first(SCALE)).toEqual(stripKey(data.lot_moves[0] as Row));
    expect(first(SCALE * 2)).not.toEqual(first(SCALE));
  });

  it("rejects a scale out of (0, 10]", async () => {
    for (const scale of [0, -1, 11, Number.NaN]) {
      await expect(prepareMesData(source, { scale })).rejects.toThrow(/greater than 0/);
    }
  });

  for (const maybe of servers) {
    it.runIf(maybe !== null)(
      `writes the same tables and rows on ${maybe?.name ?? "a missing server"}`,
      async () => {
        const db = maybe as TestDb;
        const other = await openSource(db.url);
        try {
          const got = await prepareMesData(other, { scale: SCALE });
          expect(got).toEqual(summary);
          for (const t of MES_TABLES) {
            expect(await other.tableColumns(t)).toEqual([MES_KEY, ...MES_COLUMNS[t]]);
          }
          expect(digest(await readAll(other))).toEqual(digest(data));
        } finally {
          await other.close();
        }
      },
    );
  }
});

describe("sluice prepare-data --workload=mes", () => {
  const CLI = join(import.meta.dirname, "..", "dist", "cli", "main.js");
  const db = `sqlite:${join(dir, "cli.db")}`;
  const sluice = (args: string[]) => {
    const r = spawnSync(process.execPath, [CLI, ...args], {
      encoding: "utf8",
      env: { ...process.env, SLUICE_DB: db },
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  beforeAll(() => {
    if (!existsSync(CLI))
      throw new Error(`${CLI} is missing: run 'npm run build' (npm test does it)`);
  });

  it("generates a small factory and prints one line with the row counts", () => {
    const r = sluice(["prepare-data", "--workload=mes", "--scale=0.001"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split("\n")).toHaveLength(1);
    expect(r.stdout).toMatch(
      /^inserted [\d,]+ MES rows at scale 0\.001 \(70 lots, [\d,]+ containers\): lot_moves [\d,]+, container_lineage [\d,]+, upstream_history [\d,]+, defect_records [\d,]+ into sqlite:/,
    );
    const again = sluice(["--json", "prepare-data", "--workload=mes", "--scale=.001", "--replace"]);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ ok: true, workload: "mes", lots: 70 });
  });

  const bad: [string, string[], RegExp][] = [
    ["scale 0", ["--workload=mes", "--scale=0"], /--scale must be a number greater than 0/],
    ["scale over 10", ["--workload=mes", "--scale=11"], /at most 10/],
    ["negative scale", ["--workload=mes", "--scale=-1"], /--scale/],
    ["scale not a number", ["--workload=mes", "--scale=big"], /--scale must be a number/],
    ["scale with an exponent", ["--workload=mes", "--scale=1e-3"], /--scale must be a number/],
    ["tables that hold rows", ["--workload=mes", "--scale=0.001"], /already holds rows/],
    ["traffic without a date", ["--workload=traffic"], /'--date <YYYY-MM-DD>' not specified/],
    ["a scale for traffic", ["--scale=1", "--date=2025-10-13"], /--scale is for --workload=mes/],
    ["an unknown workload", ["--workload=orders"], /Allowed choices are traffic, mes/],
  ];
  for (const [name, args, message] of bad) {
    it(`exits 2 with one clear line: ${name}`, () => {
      const r = sluice(["prepare-data", ...args]);
      expect(r.code, r.stderr).toBe(2);
      const lines = r.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(message);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    });
  }
});

function movesByContainer(data: Tables): Map<string, Row[]> {
  const out = new Map<string, Row[]>();
  for (const r of data.lot_moves) {
    const cid = s(r.CONTAINERID);
    out.set(cid, [...(out.get(cid) ?? []), r]);
  }
  for (const moves of out.values())
    moves.sort((a, b) => (s(a.TRACKIN_TS) < s(b.TRACKIN_TS) ? -1 : 1));
  return out;
}

function stripKey(r: Row): Row {
  const { [MES_KEY]: _, ...rest } = r;
  return rest;
}
