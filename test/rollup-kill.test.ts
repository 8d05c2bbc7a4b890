import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openSource } from "../src/node/open.js";
import { prepareTrafficData } from "../src/workloads/traffic/prepare.js";
import { type TestDb, postgresDb, sqliteDb } from "./servers.js";

/**
 * A rollup is written with the verification that proves its part, in one transaction: a
 * sluice killed (SIGKILL) at any instant of `archive` (write, verify, rollup) leaves either no
 * rollup or the whole one, and the rerun's rollups equal the table's GROUP BY kept aside. The
 * deleted rows' counts are written in each delete's transaction: killed at any instant of
 * `cleanup`, the hot rows plus those counts are still that GROUP BY.
 */
const CLI = join(import.meta.dirname, "..", "dist", "cli", "main.js");
const DAY = "2025-10-13";
const ROWS = 30_000;
/** Distinct paths: enough that writing the rollup is a step of its own that a kill can land in. */
const PATHS = 12_000;
const TRIALS = 8;

const dir = mkdtempSync(join(tmpdir(), "sluice-rollup-kill-"));
const dbs = [sqliteDb(dir), await postgresDb()];
afterAll(async () => {
  for (const db of dbs) await db?.close();
  rmSync(dir, { recursive: true, force: true });
});

for (const server of dbs) {
  describe.runIf(server !== null)(
    `rollups under SIGKILL on ${server?.name ?? "a missing server"}`,
    () => {
      const db = server as TestDb;
      const env = (table: string): NodeJS.ProcessEnv => ({
        ...process.env,
        SLUICE_DB: db.url,
        SLUICE_STORE: `file:${join(dir, `${db.name}-${table}`)}`,
        SLUICE_TABLE: table,
      });
      const state = async (table: string) => {
        try {
          return await db.ledgerState(table, DAY);
        } catch {
          return "none";
        }
      };
      /**
       * Runs sluice `args` on `table` and SIGKILLs it at a random instant of `runMs`, or (aimed)
       * once the ledger says `aim.at` and up to `aim.lateMs` later. Returns the state it was in.
       */
      const killed = async (
        table: string,
        args: string[],
        runMs: number,
        aim: { at: string; lateMs: number } | null,
      ): Promise<string> => {
        const child: ChildProcess = spawn(process.execPath, [CLI, ...args], {
          env: env(table),
          stdio: "ignore",
        });
        const exited = new Promise<void>((r) => child.once("exit", () => r()));
        const started = Date.now();
        const at = Math.random() * runMs;
        let seen = "none";
        for (;;) {
          if (child.exitCode !== null) break;
          seen = await state(table);
          if (aim ? seen === aim.at : Date.now() - started >= at) break;
          await new Promise((r) => setTimeout(r, 5));
        }
        if (aim) await new Promise((r) => setTimeout(r, Math.random() * aim.lateMs));
        child.kill("SIGKILL");
        await exited;
        return `${seen}${child.signalCode === "SIGKILL" ? "" : " (finished first)"}`;
      };

      it(`${TRIALS} kills during archive, verify and the rollup's write: each rerun's rollups equal the GROUP BY`, async () => {
        expect(existsSync(CLI), `${CLI} is missing: run 'npm run build'`).toBe(true);
        const source = await openSource(db.url, { create: true });
        const kept = new Map<string, number>();
        const hit: string[] = [];
        const prepare = async (table: string) => {
          await prepareTrafficData(source, { count: ROWS, date: DAY, table });
          const cat = db.name === "SQLite" ? "'/p/' || (id % ?)" : "'/p/' || (id % ?)::text";
          await source.execute(`UPDATE ${table} SET path = ${cat}`, [PATHS]);
        };
        try {
          // One run to its end: how long the random kills have to land in.
          await prepare("te_rk_whole");
          for (const r of await db.query(
            "SELECT path, COUNT(*) AS n FROM te_rk_whole GROUP BY path",
          )) {
            kept.set(String(r.path), Number(r.n));
          }
          const timed = Date.now();
          const whole = spawnSync(process.execPath, [CLI, "archive", `--date=${DAY}`], {
            env: env("te_rk_whole"),
            encoding: "utf8",
          });
          expect(whole.status, whole.stderr).toBe(0);
          const runMs = Date.now() - timed;
          for (let t = 0; t < TRIALS; t++) {
            const table = `te_rk_${t}`;
            await prepare(table);
            // Half the kills at a random instant of the whole run, half aimed at the verify
            // (the part recorded, state 'archived'), which ends with the rollup's write.
            const aim = t % 2 === 1 ? { at: "archived", lateMs: 150 } : null;
            hit.push(await killed(table, ["archive", `--date=${DAY}`], runMs, aim));

            const rerun = spawnSync(process.execPath, [CLI, "archive", `--date=${DAY}`], {
              env: env(table),
              encoding: "utf8",
            });
            expect(rerun.status, rerun.stderr).toBe(0);
            const parts = await db.query(
              `SELECT part, event_count, rollup_rows, verified_at FROM archive_parts WHERE source_table = '${table}' ORDER BY part`,
            );
            expect(parts.reduce((n, p) => n + Number(p.event_count), 0)).toBe(ROWS);
            for (const p of parts) {
              expect(p.verified_at).not.toBeNull();
              expect(Number(p.rollup_rows)).toBe(Number(p.event_count));
            }
            const rolled = await db.query(
              `SELECT path, SUM(views) AS n FROM archive_rollups WHERE source_table = '${table}' GROUP BY path`,
            );
            expect(new Map(rolled.map((r) => [String(r.path), Number(r.n)])), `trial ${t}`).toEqual(
              kept,
            );
          }
        } finally {
          await source.close();
        }
        // Where the kills landed, for the log; the aimed ones must have reached the verify.
        console.log(`${db.name}: killed in ${hit.join(", ")}`);
        expect(hit.filter((h, i) => i % 2 === 1 && h === "archived")).toHaveLength(TRIALS / 2);
      });

      it(`${TRIALS} kills during cleanup: the hot rows plus the deleted rows' counts equal the GROUP BY, after each kill and each rerun`, async () => {
        const kept = new Map<string, number>();
        for (const r of await db.query(
          "SELECT path, COUNT(*) AS n FROM te_rk_whole GROUP BY path",
        )) {
          kept.set(String(r.path), Number(r.n));
        }
        /** What the stats read, by the database's own client: hot GROUP BY + deleted counts. */
        const answer = async (table: string) =>
          new Map(
            (
              await db.query(
                `SELECT path, SUM(n) AS n FROM (
                   SELECT path, COUNT(*) AS n FROM ${table} GROUP BY path
                   UNION ALL SELECT path, SUM(views) AS n FROM archive_deleted_rollups
                   WHERE source_table = '${table}' GROUP BY path) t GROUP BY path`,
              )
            ).map((r) => [String(r.path), Number(r.n)]),
          );
        const cleanup = ["cleanup", `--date=${DAY}`, "--batch=1000"];
        const timed = Date.now();
        const whole = spawnSync(process.execPath, [CLI, ...cleanup], {
          env: env("te_rk_whole"),
          encoding: "utf8",
        });
        expect(whole.status, whole.stderr).toBe(0);
        const runMs = Date.now() - timed;
        expect(await answer("te_rk_whole")).toEqual(kept);
        const hit: string[] = [];
        for (let t = 0; t < TRIALS; t++) {
          // The tables the test above archived and verified, with the same rows.
          const table = `te_rk_${t}`;
          // Half at a random instant of the run, half once deletes have begun (the ledger
          // says 'cleaning') and a little after.
          const aim = t % 2 === 1 ? { at: "cleaning", lateMs: 100 } : null;
          hit.push(await killed(table, cleanup, runMs, aim));
          expect(await answer(table), `trial ${t}, killed`).toEqual(kept);

          const rerun = spawnSync(process.execPath, [CLI, ...cleanup], {
            env: env(table),
            encoding: "utf8",
          });
          expect(rerun.status, rerun.stderr).toBe(0);
          expect(await db.count(table, DAY)).toBe(0);
          expect(await answer(table), `trial ${t}, rerun`).toEqual(kept);
          const [sums] = await db.query(
            `SELECT SUM(cleaned_count) AS c, SUM(deleted_rollup_rows) AS d FROM archive_parts WHERE source_table = '${table}'`,
          );
          expect([Number(sums?.c), Number(sums?.d)]).toEqual([ROWS, ROWS]);
        }
        console.log(`${db.name}: cleanup killed in ${hit.join(", ")}`);
        expect(hit.filter((h, i) => i % 2 === 1 && h === "cleaning")).toHaveLength(TRIALS / 2);
      });
    },
  );
}
