import { z } from "zod/v3";
import { commonSettings, intSetting, parseSettings } from "../core/settings.js";

/**
 * The Worker's settings, from `[vars]` and secrets in wrangler.toml. Same names as the Node
 * service where they mean the same; a Worker must stop cleanup at a budget, so it has one.
 */
const workerSettings = {
  ...commonSettings,
  // Cron invocations may run 15 minutes of wall time; stop well inside it and resume next run.
  SLUICE_CLEANUP_BUDGET_MS: intSetting(60_000, 1, 840_000),
  // Archived keys per range DELETE. D1 counts queries per invocation (1000 on Workers Paid),
  // so a million rows should take hundreds of statements, not thousands.
  SLUICE_DELETE_BATCH: intSetting(5000, 1, 100_000),
  // D1 counts queries per invocation (1000 on Workers Paid, 50 on Free): a cleanup stops after
  // this many delete batches, progress saved, leaving room for the ledger's own statements.
  SLUICE_CLEANUP_MAX_BATCHES: intSetting(800, 1, 100_000),
  // A scheduled run starts no new date after this many ms (the rest wait for the next run).
  SCHEDULE_BUDGET_MS: intSetting(600_000, 1_000, 840_000),
  R2_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9._\-/]*$/, "letters, digits, '.', '_', '-' and '/' only")
    .transform((p) => p.replace(/^\/+|\/+$/g, ""))
    .default(""),
  // R2 parts: at least 5 MiB, all but the last the same size. Memory is about two parts.
  R2_PART_SIZE_MIB: intSetting(5, 5, 100),
};

export type WorkerConfig = z.infer<z.ZodObject<typeof workerSettings>>;

/** Validate the Worker's env bindings (only the string vars are read). */
export function loadWorkerConfig(env: Record<string, unknown>): WorkerConfig {
  return parseSettings(workerSettings, env);
}
