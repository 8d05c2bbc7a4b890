import { existsSync, readFileSync } from "node:fs";
import { z } from "zod/v3";
import { BadInputError } from "../core/errors.js";
import { IDENT, TABLE_NAME } from "../core/sql/ident.js";
import { knownTimeZone } from "../core/time-zones.js";
import type { Config } from "./config.js";

const identifier = z.string().regex(IDENT, "is not a plain identifier (letters, digits, _)");

/** One table's settings in the file; what is left out comes from the environment. */
const tableSchema = z
  .object({
    partitionColumn: identifier.optional(),
    keyColumn: identifier.optional(),
    /** Whose midnights bound a day of a timestamp partition column. */
    timeZone: z
      .string()
      .refine(knownTimeZone, "is not an IANA time zone (e.g. UTC, Europe/Berlin)")
      .optional(),
    retentionDays: z.number().int().min(0).max(36_500).optional(),
    deleteBatch: z.number().int().min(1).max(100_000).optional(),
    cleanupBudgetMs: z.number().int().min(0).max(86_400_000).optional(),
    /** How new parts of this table are written (SLUICE_FORMAT). */
    format: z.enum(["jsonl", "parquet"]).optional(),
    rowGroupRows: z.number().int().min(100).max(1_000_000).optional(),
    /** This table is the one ingest writes and the stats routes read (at most one; else the first). */
    api: z.boolean().optional(),
    /** The column the stats routes count views by (default `path`). */
    pathColumn: identifier.optional(),
    /** Whether verified parts keep their rows counted by pathColumn (default true). */
    rollups: z.boolean().optional(),
  })
  .strict();

const fileSchema = z
  .object({
    tables: z
      .record(
        z.string().regex(TABLE_NAME, "is not a table name (an identifier, or schema.identifier)"),
        tableSchema,
      )
      .refine((t) => Object.keys(t).length > 0, "names no table")
      .superRefine((tables, check) => {
        const api = Object.keys(tables).filter((name) => tables[name]?.api);
        for (const name of api.slice(1)) {
          check.addIssue({
            code: "custom",
            path: [name, "api"],
            message: `a second table for ingest and stats (${api[0]} has "api": true)`,
          });
        }
      }),
  })
  .strict();

export type TableSettings = z.infer<typeof tableSchema>;

/** The tables of a config file, in the file's order, each with its settings. */
export interface TablesFile {
  path: string;
  tables: Map<string, TableSettings>;
}

/** Where the config file is: `explicit` (--config, SLUICE_CONFIG), else ./sluice.config.json. */
export function tablesFilePath(explicit: string | undefined): string | null {
  if (explicit) return explicit;
  return existsSync("sluice.config.json") ? "sluice.config.json" : null;
}

/**
 * Read and check a config file; a problem stops with its line and field (`tables."pv".
 * retentionDays: expected number`) as a BadInputError.
 */
export function loadTablesFile(path: string): TablesFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new BadInputError(`config file ${path}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    const at = /position (\d+)/.exec(message);
    const where = at ? ` line ${lineAt(text, Number(at[1]))}` : "";
    throw new BadInputError(`config file ${path}${where}: not JSON (${message})`);
  }
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0] as z.ZodIssue;
    const keys =
      issue.code === "unrecognized_keys" ? [...issue.path, ...issue.keys] : [...issue.path];
    const field = keys.map((k) => (typeof k === "string" && !IDENT.test(k) ? `"${k}"` : k));
    const what =
      issue.code === "unrecognized_keys" ? "is not a setting sluice knows" : issue.message;
    throw new BadInputError(
      `config file ${path} line ${lineOf(text, keys)}: ${field.join(".") || "(top)"}: ${what}`,
    );
  }
  return { path, tables: new Map(Object.entries(parsed.data.tables)) };
}

/** The table ingest and the stats routes use: the one marked `api`, else the file's first. */
export function apiTable(file: TablesFile): string {
  for (const [name, s] of file.tables) if (s.api) return name;
  return file.tables.keys().next().value as string;
}

/** The env-style settings of `table` in the file, for loadConfig's overrides. */
export function tableOverrides(
  table: string,
  s: TableSettings,
): Partial<Record<keyof Config, string | number | undefined>> {
  return {
    SLUICE_TABLE: table,
    SLUICE_PARTITION_COLUMN: s.partitionColumn,
    SLUICE_KEY_COLUMN: s.keyColumn,
    SLUICE_PARTITION_TIME_ZONE: s.timeZone,
    HOT_RETENTION_DAYS: s.retentionDays,
    SLUICE_DELETE_BATCH: s.deleteBatch,
    SLUICE_CLEANUP_BUDGET_MS: s.cleanupBudgetMs,
    SLUICE_FORMAT: s.format,
    SLUICE_ROW_GROUP_ROWS: s.rowGroupRows,
    SLUICE_PATH_COLUMN: s.pathColumn,
    SLUICE_ROLLUPS: s.rollups === undefined ? undefined : s.rollups ? "on" : "off",
  };
}

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** The line of a key path: each key's quoted name, looked for after the one before. */
function lineOf(text: string, keys: readonly PropertyKey[]): number {
  let at = 0;
  for (const k of keys) {
    if (typeof k !== "string") continue;
    const found = text.indexOf(JSON.stringify(k), at);
    if (found < 0) break;
    at = found;
  }
  return lineAt(text, at);
}
