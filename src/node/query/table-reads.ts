import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Writable } from "node:stream";
import { FsStore } from "../../adapters/fs/store.js";
import { hotDays } from "../../core/archive/hot-days.js";
import type { PartRecord } from "../../core/archive/ledger/records.js";
import { pagesByKey, tableLines } from "../../core/archive/pages.js";
import { SluiceError } from "../../core/errors.js";
import type { NodeContext } from "../context.js";
import type { PartCache } from "./part-cache.js";

/** What one table's view reads: its files, each with the highest key it counts, and the lines it skips. */
export interface TableReads {
  /**
   * Local files: parts (in place or fetched) and, with `hot`, the hot rows by day; `whole`
   * when every line of the file counts (no key above `passed`, none skipped).
   */
  files: { path: string; passed: number | null; whole: boolean }[];
  /** A JSONL file of `{file, k}`: lines of those files that are no row (see SkippedKeys). */
  skipped: string;
  /** Parts whose skipped lines nobody recorded (cleaned before the ledger kept them). */
  unknown: PartRecord[];
}

export interface ReadOptions {
  hot?: boolean;
  from?: string;
  to?: string;
}

const TRIES = 3;

/**
 * The files of `c`'s table for a query (its scratch files in `dir`), as of one state of its
 * ledger. Without `hot`: every line of the verified parts but the skipped ones. With `hot`:
 * every hot row, and the lines at or under their part's passed key that are not skipped, i.e.
 * the rows cleanup deleted; the ledger is read before and after the hot rows, and a cleanup or
 * restore that committed between the two makes the table read again.
 */
export async function tableReads(
  c: NodeContext,
  o: ReadOptions,
  cache: PartCache,
  readable: Set<string>,
  dir: string,
): Promise<TableReads> {
  const { ledger, spec } = c.ctx;
  for (let attempt = 1; ; attempt++) {
    const before = await ledgerState(c, o);
    const skipped = join(dir, "skipped.jsonl");
    await mkdir(dir, { recursive: true });
    const local = new Map<PartRecord, string>();
    for (const p of before.parts) local.set(p, partPath(c, p, cache, readable));
    const out = createWriteStream(skipped);
    const skips = new Set<PartRecord>();
    // Most tables have no skipped key: then no part is asked for its own.
    for (const [p, path] of before.skipped > 0 ? local : []) {
      for await (const page of ledger.skippedKeys(spec.table, p.date, p.part)) {
        skips.add(p);
        await write(out, page.map((s) => `${JSON.stringify({ file: path, k: s.key })}\n`).join(""));
      }
    }
    out.end();
    await once(out, "finish");
    const hot = o.hot ? await hotFiles(c, o, dir) : [];
    if (o.hot && (await ledgerState(c, o)).text !== before.text) {
      await rm(dir, { recursive: true, force: true });
      if (attempt < TRIES) continue;
      throw new SluiceError(
        "failed",
        `cleanup of ${spec.table} committed during each of ${TRIES} reads of its hot rows: run the query again once it is done`,
      );
    }
    const files: TableReads["files"] = [];
    for (const [p, path] of local) {
      const passed = o.hot ? p.passedKey : null;
      files.push({
        path: await fetched(c, p, cache, path),
        passed,
        whole: !skips.has(p) && (passed === null || passed >= p.maxId),
      });
    }
    for (const path of hot) files.push({ path, passed: null, whole: true });
    return { files, skipped, unknown: before.parts.filter((p) => !p.skipsKnown) };
  }
}

/** The parts a query reads, the table's skipped keys, and that state as text to compare. */
async function ledgerState(c: NodeContext, o: ReadOptions) {
  const { ledger, spec } = c.ctx;
  const parts = (await ledger.partsOf(spec.table)).filter(
    (p) =>
      p.verifiedAt !== null &&
      (!o.hot || p.passedKey !== null) &&
      !(o.from && p.date < o.from) &&
      !(o.to && p.date > o.to),
  );
  const fields = parts.map((p) => [p.date, p.part, p.passedKey, p.cleanedCount, p.cleanedAt]);
  const skipped = await ledger.skippedCount(spec.table);
  return { parts, skipped, text: JSON.stringify([fields, skipped]) };
}

/** Where DuckDB reads part `p`: in the store's folder, or in the cache. */
function partPath(c: NodeContext, p: PartRecord, cache: PartCache, readable: Set<string>) {
  const { store } = c.ctx;
  if (store instanceof FsStore) {
    readable.add(store.root);
    return join(store.root, ...p.objectKey.split("/"));
  }
  return cache.path(p);
}

async function fetched(c: NodeContext, p: PartRecord, cache: PartCache, path: string) {
  return c.ctx.store instanceof FsStore ? path : cache.local(c.ctx.store, p);
}

/** Every hot row of the days in range, one JSONL file per day under `date=` folders. */
async function hotFiles(c: NodeContext, o: ReadOptions, dir: string): Promise<string[]> {
  const { ctx } = c;
  const { spec, source } = ctx;
  const query = (sql: string, params: readonly unknown[]) => source.query(sql, [...params]);
  const lines = await tableLines(ctx);
  const files: string[] = [];
  for (const date of await hotDays(query, source.dialect, spec, "9999-12-31")) {
    if ((o.from && date < o.from) || (o.to && date > o.to)) continue;
    const path = join(dir, `date=${date}`, "hot.jsonl");
    await mkdir(dirname(path), { recursive: true });
    const file = createWriteStream(path);
    let any = false;
    for await (const page of pagesByKey(ctx, lines, date, null)) {
      any = true;
      await write(file, `${page.lines.join("\n")}\n`);
    }
    file.end();
    await once(file, "finish");
    if (any) files.push(path);
  }
  return files;
}

/** `text` to `out`, waiting for it to drain when its buffer is full. */
export async function write(out: Writable, text: string): Promise<void> {
  if (!text) return;
  if (!out.write(text)) await once(out, "drain");
}
