import { z } from "zod/v3";
import type { CleanupOptions } from "./archive/cleanup.js";
import { DEFAULT_ROW_GROUP_ROWS } from "./archive/parquet/schema.js";
import type { PartitionSpec } from "./archive/partition.js";
import { BadInputError } from "./errors.js";
import { IDENT } from "./sql/ident.js";
import { knownTimeZone } from "./time-zones.js";

/** A whole number from an env string, within bounds, with a default. */
export const intSetting = (def: number, min: number, max: number) =>
  z.coerce.number().int().min(min).max(max).default(def);

/** A bearer token: optional, and long enough not to be guessed. */
export const tokenSetting = () =>
  z.string().min(16, "must be at least 16 characters (e.g. openssl rand -hex 24)").optional();

/**
 * The settings every runtime (Node service, CLI, Worker) shares: what to archive, how, and
 * the HTTP API's limits. Documented with their defaults in deploy/.env.example.
 */
export const commonSettings = {
  SLUICE_TABLE: z.string().default("traffic_events"),
  SLUICE_PARTITION_COLUMN: z.string().default("event_date"),
  SLUICE_KEY_COLUMN: z.string().default("id"),
  SLUICE_PATH_COLUMN: z
    .string()
    .regex(IDENT, "is not a plain identifier (letters, digits, _)")
    .default("path"),
  /** Keep each verified part's rows counted by SLUICE_PATH_COLUMN, so stats outlive cleanup. */
  SLUICE_ROLLUPS: z.enum(["on", "off"]).default("on"),
  SLUICE_PARTITION_TIME_ZONE: z
    .string()
    .default("UTC")
    .refine(knownTimeZone, "is not an IANA time zone (e.g. UTC, Europe/Berlin)"),
  DB_SLOW_FETCHMANY_SIZE: intSetting(5000, 1, 1_000_000),
  /** How new parts are written: gzip JSONL, or Parquet (a part Parquet cannot hold exactly goes as JSONL). */
  SLUICE_FORMAT: z.enum(["jsonl", "parquet"]).default("jsonl"),
  /** Rows per Parquet row group: what the encoder holds at most. */
  SLUICE_ROW_GROUP_ROWS: intSetting(DEFAULT_ROW_GROUP_ROWS, 100, 1_000_000),
  SLUICE_DELETE_BATCH: intSetting(1000, 1, 100_000),
  SLUICE_CLEANUP_BUDGET_MS: intSetting(0, 0, 86_400_000),
  HOT_RETENTION_DAYS: intSetting(3, 0, 36_500),
  SLUICE_LEASE_MS: intSetting(120_000, 1_000, 86_400_000),
  ADMIN_TOKEN: tokenSetting(),
  INGEST_TOKEN: tokenSetting(),
  STATS_TOKEN: tokenSetting(),
  INGEST_MAX_BYTES: intSetting(5 << 20, 1024, 1 << 30),
  INGEST_MAX_EVENTS: intSetting(10_000, 1, 1_000_000),
  CORS_ORIGINS: z
    .string()
    .default("")
    .transform((v) =>
      v
        .split(",")
        .map((o) => o.trim())
        .filter(Boolean),
    )
    .pipe(
      z.array(
        z
          .string()
          .regex(
            /^(\*|https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?)$/,
            "each must be an origin, scheme://host[:port] with no path, or *",
          ),
      ),
    ),
};

/** Validate settings from the environment; a bad value throws one message naming each. */
export function parseSettings<S extends z.ZodRawShape>(
  shape: S,
  env: Record<string, unknown>,
  overrides: Record<string, string | number | undefined> = {},
): z.infer<z.ZodObject<S>> {
  const schema = z.object(shape);
  const input: Record<string, unknown> = {};
  for (const key of Object.keys(shape)) {
    const v = overrides[key] ?? env[key];
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

/** The cleanup settings, as every job runner (CLI, service, schedule, Worker) passes them on. */
export function cleanupOptions(s: {
  SLUICE_DELETE_BATCH: number;
  SLUICE_CLEANUP_BUDGET_MS: number;
  SLUICE_CLEANUP_MAX_BATCHES?: number;
  SLUICE_DROP_PARTITIONS?: boolean;
}): CleanupOptions {
  return {
    batchSize: s.SLUICE_DELETE_BATCH,
    budgetMs: s.SLUICE_CLEANUP_BUDGET_MS,
    maxBatches: s.SLUICE_CLEANUP_MAX_BATCHES ?? 0,
    dropPartitions: s.SLUICE_DROP_PARTITIONS ?? true,
  };
}

/** The table to archive and how, as every runtime reads it from its settings (checkSpec checks it). */
export function specOfSettings(s: {
  SLUICE_TABLE: string;
  SLUICE_PARTITION_COLUMN: string;
  SLUICE_KEY_COLUMN: string;
  SLUICE_PARTITION_TIME_ZONE: string;
  SLUICE_ROLLUPS: "on" | "off";
  SLUICE_PATH_COLUMN: string;
  SLUICE_FORMAT: "jsonl" | "parquet";
  SLUICE_ROW_GROUP_ROWS: number;
}): PartitionSpec {
  return {
    table: s.SLUICE_TABLE,
    partitionColumn: s.SLUICE_PARTITION_COLUMN,
    keyColumn: s.SLUICE_KEY_COLUMN,
    timeZone: s.SLUICE_PARTITION_TIME_ZONE,
    ...(s.SLUICE_ROLLUPS === "on" ? { rollupColumn: s.SLUICE_PATH_COLUMN } : {}),
    format: s.SLUICE_FORMAT,
    rowGroupRows: s.SLUICE_ROW_GROUP_ROWS,
  };
}
