import { type Config, loadConfig } from "../node/config.js";

/** Options every command takes (main.ts declares them). */
export interface GlobalOptions {
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
  restore: RestoreCliOptions;
  status: StatusOptions;
  cleanup: CleanupCliOptions;
  backlog: BacklogOptions;
  serve: ServeOptions;
  demo: DemoOptions;
}

export type CommandName = keyof CommandOptions;

/** Every option some command turns into a setting. */
type SettingOptions = GlobalOptions &
  Partial<Pick<BacklogOptions, "batch" | "budgetMs" | "retentionDays">> &
  Partial<Pick<ServeOptions, "port" | "host">>;

/**
 * The configuration: env vars, with the command line's options over them; `defaults` fill in
 * what neither gives (the demo's own database and store).
 */
export function configFrom(
  opts: SettingOptions,
  defaults: Partial<Record<"SLUICE_DB" | "SLUICE_STORE", string>> = {},
): Config {
  return loadConfig(process.env, {
    SLUICE_DB: opts.db ?? (process.env.SLUICE_DB ? undefined : defaults.SLUICE_DB),
    SLUICE_STORE: opts.store ?? (process.env.SLUICE_STORE ? undefined : defaults.SLUICE_STORE),
    SLUICE_TABLE: opts.table,
    SLUICE_DELETE_BATCH: opts.batch,
    SLUICE_CLEANUP_BUDGET_MS: opts.budgetMs,
    HOT_RETENTION_DAYS: opts.retentionDays,
    PORT: opts.port,
    HOST: opts.host,
  });
}
