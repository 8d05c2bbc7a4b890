import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";

/**
 * The package as another project uses it: imported by its name ("sluice") from a folder of
 * its own, through package.json's exports (built dist/ and its type declarations).
 */
const root = join(import.meta.dirname, "..");
const dir = mkdtempSync(join(tmpdir(), "sluice-package-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
mkdirSync(join(dir, "node_modules"));
symlinkSync(root, join(dir, "node_modules", "sluice"), "dir");

it("import { archiveDate, ... } from 'sluice' archives and verifies a table, and streams rows as JSON", () => {
  writeFileSync(
    join(dir, "use.mjs"),
    `import { archiveDate, cleanupDate, loadConfig, openContext, openSource, partitionStatus,
  readSqlStreaming, traceJsonStream, CleanupIncompleteError } from "sluice";
const db = "sqlite:${join(dir, "app.db")}";
const s = await openSource(db, { create: true });
await s.execute("CREATE TABLE pv (id INTEGER PRIMARY KEY, event_date TEXT NOT NULL, path TEXT)");
for (let i = 1; i <= 50; i++) await s.execute("INSERT INTO pv VALUES (?, '2025-10-13', ?)", [i, "/p" + (i % 7)]);
const rows = [];
for await (const batch of readSqlStreaming(s, "SELECT id FROM pv ORDER BY id", [], { batchSize: 16 })) rows.push(batch.length);
const text = await new Response(traceJsonStream({ pv: readSqlStreaming(s, "SELECT id, path FROM pv WHERE id <= 2 ORDER BY id") })).text();
await s.close();
const c = await openContext(loadConfig({ SLUICE_DB: db, SLUICE_STORE: "file:${join(dir, "archive")}", SLUICE_TABLE: "pv" }));
const archived = await archiveDate(c.ctx, c.owner, "2025-10-13");
const cleaned = await cleanupDate(c.ctx, c.owner, "2025-10-13");
const status = await partitionStatus(c.ctx, "2025-10-13");
await c.close();
console.log(JSON.stringify({ rows, text: JSON.parse(text), written: archived.written.eventCount,
  deleted: cleaned.deleted, state: status.record.state, errorClass: typeof CleanupIncompleteError }));
`,
  );
  const out = JSON.parse(
    execFileSync(process.execPath, ["use.mjs"], { cwd: dir, encoding: "utf8" }),
  );
  expect(out).toEqual({
    rows: [16, 16, 16, 2],
    text: {
      results: {
        pv: {
          data: [
            { id: 1, path: "/p1" },
            { id: 2, path: "/p2" },
          ],
          count: 2,
        },
      },
    },
    written: 50,
    deleted: 50,
    state: "cleaned",
    errorClass: "function",
  });
});

it("its type declarations resolve by the package's name (a TypeScript project type-checks against them)", () => {
  writeFileSync(
    join(dir, "use.ts"),
    `import { type ArchiveOutcome, type Config, archiveDate, loadConfig } from "sluice";
const config: Config = loadConfig({});
const outcome: Promise<ArchiveOutcome> | null = config.SLUICE_TABLE === "" ? null : null;
export { archiveDate, outcome };
`,
  );
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        module: "NodeNext",
        moduleResolution: "NodeNext",
        target: "ES2022",
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        types: [],
      },
      files: ["use.ts"],
    }),
  );
  writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
  const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
  execFileSync(process.execPath, [tsc, "-p", dir], { cwd: dir, encoding: "utf8" });
});
