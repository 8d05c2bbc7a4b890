import { z } from "zod";
import type { CleanupOptions } from "../core/cleanup.js";
import { BadInputError } from "../core/errors.js";

const int = (def: number, min: number, max: number) =>
  z.coerce.number().int().min(min).max(max).default(def);

/** Every setting, from env vars (documented with defaults in deploy/.env.example). */
const schema = z.object({
  SLUICE_DB: z.string().min(1).default("sqlite:./data/sluice.db"),
  SLUICE_STORE: z.string().min(1).default("file:./data/archive"),
  SLUICE_TABLE: z.string().default("traffic_events"),
  SLUICE_PARTITION_COLUMN: z.string().default("event_date"),
  SLUICE_KEY_COLUMN: z.string().default("id"),
  DB_SLOW_FETCHMANY_SIZE: int(5000, 1, 1_000_000),
  SLUICE_DELETE_BATCH: int(1000, 1, 100_000),
  SLUICE_CLEANUP_BUDGET_MS: int(0, 0, 86_400_000),
  HOT_RETENTION_DAYS: int(3, 0, 36_500),
  SLUICE_LEASE_MS: int(120_000, 1_000, 86_400_000),
  SLUICE_STATEMENT_TIMEOUT_MS: int(60_000, 0, 86_400_000),
  SLUICE_DROP_PARTITIONS: z
    .enum(["true", "false", "1", "0"], { message: "expected true or false" })
    .default("true")
    .transform((v) => v === "true" || v === "1"),
  PORT: int(8080, 0, 65_535),
  HOST: z.string().min(1).default("127.0.0.1"),
  ADMIN_TOKEN: z
    .string()
    .min(16, "must be at least 16 characters (e.g. openssl rand -hex 24)")
    .optional(),
  INGEST_MAX_BYTES: int(5 << 20, 1024, 1 << 30),
  INGEST_MAX_EVENTS: int(10_000, 1, 1_000_000),
  ARCHIVE_CRON: z.string().min(1).default("30 3 * * *"),
  WEB_CONCURRENCY: int(2, 1, 64),
  TRACE_DB: z.string().min(1).optional(),
  TRACE_EVENTS_CID_LIMIT: int(50_000, 1, 10_000_000),
  DB_SLOW_MAX_CONCURRENT: int(2, 1, 64),
  TRACE_WORKERS_PER_DOMAIN: int(2, 1, 16),
  TRACE_MAX_BODY_BYTES: int(32 << 20, 1024, 1 << 30),
  TRACE_MEMORY_LIMIT_MB: int(4096, 0, 1 << 20),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});

export type Config = z.infer<typeof schema>;

/** Validate the environment (plus command-line overrides); a bad value stops with a message. */
export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  overrides: Partial<Record<keyof Config, string | number | undefined>> = {},
): Config {
  const input: Record<string, unknown> = {};
  for (const key of Object.keys(schema.shape)) {
    const v = overrides[key as keyof Config] ?? env[key];
    if (v !== undefined && v !== "") input[key] = v;
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => {
      const key = String(i.path[0]);
      // A secret that failed its check is still a secret: never print it.
      const shown = /TOKEN|SECRET|PASSWORD/.test(key) ? "***" : JSON.stringify(input[key]);
      return `${i.path.join(".")}=${shown}: ${i.message}`;
    });
    throw new BadInputError(`bad configuration: ${problems.join("; ")}`);
  }
  return parsed.data;
}

/** The cleanup settings, as every job runner (CLI, service, schedule) passes them on. */
export function cleanupOptions(config: Config): CleanupOptions {
  return {
    batchSize: config.SLUICE_DELETE_BATCH,
    budgetMs: config.SLUICE_CLEANUP_BUDGET_MS,
    dropPartitions: config.SLUICE_DROP_PARTITIONS,
  };
}
