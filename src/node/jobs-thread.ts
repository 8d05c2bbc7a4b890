import { readlinkSync } from "node:fs";
import { setPriority } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import type { VerifyResult } from "../core/archive/jobs.js";
import type { JobKind, JobView } from "../core/archive/runner.js";
import { InterruptedError } from "../core/errors.js";
import type { Config } from "./config.js";
import { type NodeContext, openContext } from "./context.js";
import {
  type JobLog,
  type ServiceSchedules,
  type TableJobs,
  serviceSchedules,
  tableJobs,
} from "./table-schedules.js";
import { type WireError, toWire } from "./thread-errors.js";

// The service's jobs on a thread of their own (thread-jobs.ts starts it): archive, verify and
// cleanup read, encode, hash and compare on this thread's event loop, with connections of
// their own, so that ingest and the routes keep theirs. Everything a job leaves for the
// other processes (its lease, its progress, its outcome) is in the ledger as before.

/** What the service sends. */
export type ToJobs =
  | { type: "start"; id: number; table: string; kind: JobKind; date: string }
  | { type: "schedule" }
  | { type: "stop" };

/** What this thread answers. */
export type FromJobs =
  | { type: "ready"; tables: string[] }
  | { type: "scheduled"; archiveNext: string | null; verifyNext: string | null }
  | { type: "failed"; error: WireError }
  | { type: "reply"; id: number; view: JobView }
  | { type: "reply"; id: number; error: WireError }
  | { type: "job"; table: string; view: JobView }
  | { type: "verified"; results: VerifyResult[] }
  | {
      type: "log";
      level: "info" | "warn" | "error";
      fields: Record<string, unknown>;
      message: string;
    }
  | { type: "stopped" };

export interface JobsThreadData {
  /** The service's table first, then the config file's others. */
  configs: Config[];
}

// How often a running job's progress goes to the service (archive-status reads it there).
const PROGRESS_MS = 250;

const port = parentPort;
if (!port) throw new Error("jobs-thread.ts runs as a worker thread (thread-jobs.ts starts it)");
const post = (m: FromJobs) => port.postMessage(m);
const log: JobLog = {
  info: (fields, message) => post({ type: "log", level: "info", fields, message }),
  warn: (fields, message) => post({ type: "log", level: "warn", fields, message }),
  error: (fields, message) => post({ type: "log", level: "error", fields, message }),
};

const { configs } = workerData as JobsThreadData;
lowerPriority((configs[0] as Config).SLUICE_JOBS_NICE);
const stop = new AbortController();
const opened: NodeContext[] = [];
const tables = new Map<string, TableJobs>();
let schedules: ServiceSchedules | null = null;

async function open(): Promise<FromJobs> {
  for (const config of configs) {
    const c = await openContext(config, {
      signal: stop.signal,
      onWarning: (m) => log.warn({}, m),
    });
    opened.push(c);
    let sentAt = 0;
    const table = c.ctx.spec.table;
    // A running job's progress, at most every PROGRESS_MS (the runner has just updated it).
    const onProgress = () => {
      if (Date.now() - sentAt < PROGRESS_MS) return;
      sentAt = Date.now();
      for (const view of jobs.runner.running()) post({ type: "job", table, view });
    };
    const jobs: TableJobs = tableJobs(
      { ...c, ctx: { ...c.ctx, onProgress } },
      config,
      log,
      (view) => post({ type: "job", table, view }),
    );
    tables.set(table, jobs);
  }
  return { type: "ready", tables: [...tables.keys()] };
}

/** The archive schedule of every table, and the verify schedule of the first. */
function schedule(): FromJobs {
  schedules ??= serviceSchedules({
    tables: [...tables.values()],
    config: configs[0] as Config,
    owner: (opened[0] as NodeContext).owner,
    verified: (results) => post({ type: "verified", results }),
    log,
  });
  const next = schedules.start();
  return {
    type: "scheduled",
    archiveNext: next.archiveNext?.toISOString() ?? null,
    verifyNext: next.verifyNext?.toISOString() ?? null,
  };
}

async function start(m: Extract<ToJobs, { type: "start" }>): Promise<void> {
  try {
    const jobs = tables.get(m.table);
    if (!jobs) throw new Error(`the jobs thread has no table '${m.table}'`);
    post({ type: "reply", id: m.id, view: await jobs.runner.start(m.kind, m.date) });
  } catch (err) {
    post({ type: "reply", id: m.id, error: toWire(err) });
  }
}

/** Jobs stop at their next batch (resumable, marked interrupted); then everything closes. */
async function close(): Promise<void> {
  stop.abort(new InterruptedError());
  schedules?.stop();
  await Promise.allSettled([...tables.values()].map((t) => t.stop()));
  await Promise.allSettled(opened.map((c) => c.close()));
  post({ type: "stopped" });
  port?.close();
}

port.on("message", (m: ToJobs) => {
  if (m.type === "start") void start(m);
  else if (m.type === "schedule") post(schedule());
  else if (m.type === "stop") void close();
});
open().then(post, async (err: unknown) => {
  await Promise.allSettled(opened.map((c) => c.close()));
  post({ type: "failed", error: toWire(err) });
  port.close();
});

/**
 * Linux: this thread's nice value (Linux schedules threads, and a thread's id is a pid to
 * setpriority), so that when the CPU is short ingest's thread comes first. Elsewhere: nothing.
 */
function lowerPriority(nice: number): void {
  if (nice <= 0) return;
  try {
    const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
    setPriority(tid, nice);
  } catch {
    // Not Linux, or not allowed: the thread runs at the process's priority.
  }
}
