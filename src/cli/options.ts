import { BadInputError } from "../core/errors.js";
import { type Config, loadConfig } from "../node/config.js";
import {
  type TablesFile,
  apiTable,
  loadTablesFile,
  tableOverrides,
  tablesFilePath,
} from "../node/tables-file.js";

/** Options every command takes (main.ts declares them). */
export interface GlobalOptions {
  /** The config file of tables (else SLUICE_CONFIG, else ./sluice.config.json if present). */
  config?: string;
  db?: string;
  store?: string;
  table?: string;
  json?: boolean;
}

export interface PrepareOptions extends GlobalOptions {
  count: number;
  date?: string;
  days: number;
  workload: "traffic" | "mes";
  scale?: number;
  replace?: boolean;
}

/** archive, verify: one partition. */
export interface DateOptions extends GlobalOptions {
  date: string;
  /** archive: say what would be written, change nothing. */
  dryRun?: boolean;
  /** archive, backlog: how new parts are written (SLUICE_FORMAT). */
  format?: "jsonl" | "parquet";
}

export interface ConvertCliOptions extends DateOptions {
  to: "jsonl" | "parquet";
}

export interface StatusOptions extends GlobalOptions {
  date?: string;
}

export interface VerifyOptions extends GlobalOptions {
  date?: string;
  all?: boolean;
}

export interface CleanupCliOptions extends DateOptions {
  batch?: number;
  budgetMs?: number;
}

export interface RestoreCliOptions extends DateOptions {
  into?: string;
}

export interface QueryCliOptions extends GlobalOptions {
  sql: string;
  hot?: boolean;
  from?: string;
  to?: string;
  csv?: boolean;
  out?: string;
}

export interface BacklogOptions extends GlobalOptions {
  dryRun?: boolean;
  retentionDays?: number;
  today?: string;
  batch?: number;
  budgetMs?: number;
}

export interface ServeOptions extends GlobalOptions {
  port?: number;
  host?: string;
}

export interface DemoOptions extends GlobalOptions {
  count: number;
  days: number;
}

/** Each command's options, as commander hands them over. */
export interface CommandOptions {
  "prepare-data": PrepareOptions;
  archive: DateOptions;
  verify: VerifyOptions;
  rollup: VerifyOptions;
  query: QueryCliOptions;
  restore: RestoreCliOptions;
  convert: ConvertCliOptions;
  status: StatusOptions;
  cleanup: CleanupCliOptions;
  backlog: BacklogOptions;
  serve: ServeOptions;
  demo: DemoOptions;
}

export type CommandName = keyof CommandOptions;

/** Every option some command turns into a setting. */
type SettingOptions = GlobalOptions &
  Partial<Pick<DateOptions, "format">> &
  Partial<Pick<BacklogOptions, "batch" | "budgetMs" | "retentionDays">> &
  Partial<Pick<ServeOptions, "port" | "host">>;

/** The command line's settings, only those given. */
function cliOverrides(opts: SettingOptions): Overrides {
  const all: Overrides = {
    SLUICE_TABLE: opts.table,
    SLUICE_FORMAT: opts.format,
    SLUICE_DELETE_BATCH: opts.batch,
    SLUICE_CLEANUP_BUDGET_MS: opts.budgetMs,
    HOT_RETENTION_DAYS: opts.retentionDays,
    PORT: opts.port,
    HOST: opts.host,
  };
  return Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined));
}

type Overrides = Partial<Record<keyof Config, string | number | undefined>>;

/** The config file of tables, if there is one. */
function tablesFile(opts: GlobalOptions): TablesFile | null {
  const path = tablesFilePath(opts.config ?? process.env.SLUICE_CONFIG);
  return path === null ? null : loadTablesFile(path);
}

/**
 * The configuration: env vars, the config file's settings for the table over them, and the
 * command line's options over both; `defaults` fill in what none gives (the demo's own
 * database and store). With a file of several tables, the table must be named (--table or
 * SLUICE_TABLE), unless `anyTable` (a command that works on no table of the file).
 */
export function configFrom(
  opts: SettingOptions,
  defaults: Partial<Record<"SLUICE_DB" | "SLUICE_STORE", string>> = {},
  anyTable = false,
): Config {
  const file = anyTable && !opts.table ? null : tablesFile(opts);
  let fromFile: Overrides = {};
  if (file) {
    const names = [...file.tables.keys()];
    const name = opts.table ?? process.env.SLUICE_TABLE ?? (names.length === 1 ? names[0] : null);
    if (!name) {
      throw new BadInputError(
        `${file.path} names ${names.length} tables: choose one with --table (${names.join(", ")})`,
      );
    }
    const settings = file.tables.get(name);
    if (settings) fromFile = tableOverrides(name, settings);
  }
  return loadConfig(process.env, {
    SLUICE_DB: opts.db ?? (process.env.SLUICE_DB ? undefined : defaults.SLUICE_DB),
    SLUICE_STORE: opts.store ?? (process.env.SLUICE_STORE ? undefined : defaults.SLUICE_STORE),
    ...fromFile,
    ...cliOverrides(opts),
  });
}

/**
 * The table the service's ingest and stats routes use: --table or SLUICE_TABLE, else the
 * config file's `api` table (or its first); undefined without either.
 */
export function serviceTable(opts: SettingOptions): string | undefined {
  const named = opts.table ?? process.env.SLUICE_TABLE;
  if (named) return named;
  const file = tablesFile(opts);
  return file ? apiTable(file) : undefined;
}

/**
 * One configuration per table to work on: each table of the config file (only --table's when
 * given), or the one table of the environment when there is no file.
 */
export function configsFrom(opts: SettingOptions): Config[] {
  const file = tablesFile(opts);
  if (!file || opts.table) return [configFrom(opts)];
  return [...file.tables.keys()].map((table) => configFrom({ ...opts, table }));
}
