import type { Hono } from "hono";
import { type D1DatabaseLike, D1Source } from "../adapters/d1/source.js";
import { type R2BucketLike, R2Store } from "../adapters/r2/store.js";
import type { JobContext } from "../core/archive/context.js";
import { Ledger } from "../core/archive/ledger/ledger.js";
import { checkSpec } from "../core/archive/partition.js";
import { JobRunner } from "../core/archive/runner.js";
import { type ScheduledOutcome, runScheduled } from "../core/archive/schedule.js";
import { BadInputError, describeError } from "../core/errors.js";
import { cleanupOptions, specOfSettings } from "../core/settings.js";
import { createApp } from "../http/app.js";
import type { AppEnv } from "../http/env.js";
import { ensureTrafficTable } from "../workloads/traffic/prepare.js";
import { type WorkerConfig, loadWorkerConfig } from "./config.js";
import { workerConsole } from "./console-bundle.js";
import { workerMetrics } from "./metrics.js";
import { workerSha256 } from "./sha256.js";

/** The bindings wrangler.toml declares: D1 as `DB`, R2 as `ARCHIVE`, plus string vars. */
export interface Env {
  DB: D1DatabaseLike;
  ARCHIVE: R2BucketLike;
  [name: string]: unknown;
}
interface ExecutionContextLike {
  waitUntil(work: Promise<unknown>): void;
}
interface ScheduledControllerLike {
  scheduledTime: number;
  cron: string;
}

interface WorkerState {
  config: WorkerConfig;
  ctx: JobContext;
  runner: JobRunner;
  app: Hono<AppEnv>;
}

const log = (fields: Record<string, unknown>, message: string) =>
  console.log(JSON.stringify({ msg: message, ...fields }));

// One per isolate: requests and cron runs in it share the app, the ledger and the runner. Jobs
// are kept in the ledger too, so that every isolate's archive-status shows the same job.
let state: Promise<WorkerState> | null = null;

async function setUp(env: Env): Promise<WorkerState> {
  const config = loadWorkerConfig(env);
  if (!env.DB || !env.ARCHIVE) {
    throw new BadInputError(
      "the Worker needs a D1 binding named DB and an R2 binding named ARCHIVE",
    );
  }
  const source = new D1Source(env.DB);
  const store = new R2Store(env.ARCHIVE, {
    name: "ARCHIVE",
    prefix: config.R2_PREFIX,
    partSize: config.R2_PART_SIZE_MIB << 20,
  });
  const ledger = new Ledger(source, { leaseMs: config.SLUICE_LEASE_MS });
  await ledger.migrate();
  // An empty database becomes a working Worker: the table ingest writes to.
  if (config.SLUICE_TABLE === "traffic_events") await ensureTrafficTable(source);
  const spec = await checkSpec(source, specOfSettings(config));
  const ctx: JobContext = {
    source,
    store,
    ledger,
    spec,
    fetchSize: config.DB_SLOW_FETCHMANY_SIZE,
    sha256: workerSha256,
    onWarning: (m) => log({ table: spec.table }, m),
  };
  const owner = `worker:${crypto.randomUUID()}`;
  const runner = new JobRunner(ctx, owner, cleanupOptions(config), (job) =>
    log(
      { job: job.id, kind: job.kind, state: job.state, result: job.result, error: job.error },
      "job finished",
    ),
  );
  const app = createApp({
    ctx,
    runner,
    corsOrigins: config.CORS_ORIGINS,
    adminToken: config.ADMIN_TOKEN,
    ingestToken: config.INGEST_TOKEN,
    statsToken: config.STATS_TOKEN,
    maxBodyBytes: config.INGEST_MAX_BYTES,
    maxEvents: config.INGEST_MAX_EVENTS,
    pathColumn: config.SLUICE_PATH_COLUMN,
    metrics: () => workerMetrics(ctx),
    log: { info: log, error: log },
    waitUntil: (c, work) => c.executionCtx.waitUntil(work),
    console: workerConsole,
  });
  return { config, ctx, runner, app };
}

function stateFor(env: Env): Promise<WorkerState> {
  if (!state) {
    state = setUp(env);
    // A failed set-up (bad config, D1 unreachable) is retried by the next event.
    state.catch(() => {
      state = null;
    });
  }
  return state;
}

/** The scheduled run: archive, verify and clean every date older than the hot retention. */
export async function scheduledRun(env: Env, now: Date): Promise<ScheduledOutcome[]> {
  const s = await stateFor(env);
  return runScheduled({
    ctx: s.ctx,
    runner: s.runner,
    retentionDays: s.config.HOT_RETENTION_DAYS,
    now,
    budgetMs: s.config.SCHEDULE_BUDGET_MS,
    log,
  });
}

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContextLike): Promise<Response> {
    let s: WorkerState;
    try {
      s = await stateFor(env);
    } catch (err) {
      log({ error: describeError(err) }, "worker set-up failed");
      // A bad setting is named, for whoever deploys; anything else (D1 unreachable, ...) only logged.
      const message =
        err instanceof BadInputError
          ? describeError(err)
          : "the Worker could not start; its log says why";
      return Response.json({ error: "unavailable", message }, { status: 503 });
    }
    return s.app.fetch(request, env, ctx as never);
  },

  async scheduled(controller: ScheduledControllerLike, env: Env, ctx: ExecutionContextLike) {
    const work = scheduledRun(env, new Date(controller.scheduledTime)).then(
      (outcomes) => log({ cron: controller.cron, outcomes }, "scheduled run done"),
      (err: unknown) => {
        log({ cron: controller.cron, error: describeError(err) }, "scheduled run failed");
        throw err;
      },
    );
    ctx.waitUntil(work);
    await work;
  },
};
