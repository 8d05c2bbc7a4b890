import { z } from "zod/v3";
import type { CleanupOptions } from "../core/archive/cleanup.js";
import {
  commonSettings,
  intSetting as int,
  parseSettings,
  cleanupOptions as settingsCleanupOptions,
  tokenSetting,
} from "../core/settings.js";
import { IDENT } from "../core/sql/ident.js";

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration (`500ms`, `90s`, `30m`, `24h`, `7d`; a bare number is seconds), in ms. */
const duration = (def: string, minMs: number, maxMs: number) =>
  z
    .string()
    .regex(/^\d{1,12}(ms|s|m|h|d)?$/, "expected a duration such as 3600, 90m, 24h or 7d")
    .default(def)
    .transform((v) => {
      const [, n, unit] = /^(\d+)([a-z]*)$/.exec(v) as RegExpExecArray;
      return Number(n) * (UNIT_MS[unit || "s"] as number);
    })
    .pipe(
      z
        .number()
        .min(minMs, `must be at least ${minMs / 1000} s`)
        .max(maxMs, `must be at most ${maxMs / 86_400_000} days`),
    );

/** Every setting, from env vars (documented with defaults in deploy/.env.example). */
const schema = {
  SLUICE_DB: z.string().min(1).default("sqlite:./data/sluice.db"),
  SLUICE_STORE: z.string().min(1).default("file:./data/archive"),
  ...commonSettings,
  SLUICE_STATEMENT_TIMEOUT_MS: int(60_000, 0, 86_400_000),
  SLUICE_DROP_PARTITIONS: z
    .enum(["true", "false", "1", "0"], { message: "expected true or false" })
    .default("true")
    .transform((v) => v === "true" || v === "1"),
  PORT: int(8080, 0, 65_535),
  HOST: z.string().min(1).default("127.0.0.1"),
  SLUICE_LEDGER_SCHEMA: z
    .string()
    .regex(IDENT, "is not a plain identifier (letters, digits, _)")
    .optional(),
  ARCHIVE_CRON: z.string().min(1).default("30 3 * * *"),
  VERIFY_CRON: z.string().min(1).default("off"),
  WEB_CONCURRENCY: int(2, 1, 64),
  SLUICE_JOBS_THREAD: z
    .enum(["true", "false", "1", "0"], { message: "expected true or false" })
    .default("true")
    .transform((v) => v === "true" || v === "1"),
  SLUICE_JOBS_NICE: int(5, 0, 19),
  STATS_MAX_CONCURRENT: int(2, 1, 64),
  STATS_MAX_QUEUED: int(16, 0, 10_000),
  TRACE_DB: z.string().min(1).optional(),
  TRACE_TOKEN: tokenSetting(),
  TRACE_EVENTS_CID_LIMIT: int(50_000, 1, 10_000_000),
  DB_SLOW_MAX_CONCURRENT: int(2, 1, 64),
  TRACE_MAX_QUEUED: int(16, 0, 10_000),
  TRACE_WORKERS_PER_DOMAIN: int(2, 1, 16),
  // Unset: DB_SLOW_FETCHMANY_SIZE when that is set, else TRACE_DEFAULT_FETCH.
  TRACE_FETCHMANY_SIZE: z.coerce.number().int().min(1).max(1_000_000).optional(),
  TRACE_MAX_BODY_BYTES: int(32 << 20, 1024, 1 << 30),
  // Unset: derived from the cgroup's memory limit and WEB_CONCURRENCY (memory-limit.ts).
  TRACE_MEMORY_LIMIT_MB: z.coerce
    .number()
    .int()
    .min(0)
    .max(1 << 20)
    .optional(),
  TRACE_GC_EVERY_ROWS: int(100_000, 0, 1 << 30),
  SLUICE_GC_EVERY_ROWS: int(100_000, 0, 1 << 30),
  TRACE_IDLE_TIMEOUT_MS: int(30_000, 100, 3_600_000),
  TRACE_JOBS_MAX: int(8, 1, 1000),
  TRACE_JOB_TTL: duration("24h", 1000, 365 * 86_400_000),
  SLUICE_CACHE: z.string().min(1).default("./data/cache"),
  SLUICE_CACHE_MB: int(2048, 1, 1 << 24),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  LOG_FORMAT: z.enum(["auto", "json", "pretty"]).default("auto"),
};

export type Config = z.infer<z.ZodObject<typeof schema>> & { TRACE_FETCHMANY_SIZE: number };

/**
 * Rows per fetch of a trace statement when neither TRACE_FETCHMANY_SIZE nor
 * DB_SLOW_FETCHMANY_SIZE is set: smaller than the archive's 5000, since a fetch's rows then die
 * in V8's young generation instead of being promoted while the fetches ahead of them are
 * written, which lowers the peak in the same wall time (figures: README, bench/trace).
 */
export const TRACE_DEFAULT_FETCH = 1000;

/** Validate the environment (plus command-line overrides); a bad value stops with a message. */
export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  overrides: Partial<Record<keyof Config, string | number | undefined>> = {},
): Config {
  const config = parseSettings(schema, env, overrides);
  const slowFetchSet =
    (overrides.DB_SLOW_FETCHMANY_SIZE ?? env.DB_SLOW_FETCHMANY_SIZE ?? "") !== "";
  return {
    ...config,
    TRACE_FETCHMANY_SIZE:
      config.TRACE_FETCHMANY_SIZE ??
      (slowFetchSet ? config.DB_SLOW_FETCHMANY_SIZE : TRACE_DEFAULT_FETCH),
  };
}

/** The cleanup settings, as every job runner (CLI, service, schedule) passes them on. */
export function cleanupOptions(config: Config): CleanupOptions {
  return settingsCleanupOptions(config);
}
