import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { Row } from "../core/sql/source.js";

/** What the main thread sends a read thread, and what comes back. */
interface Ask {
  id: number;
  sql: string;
  params: readonly unknown[];
}
type Answer = { id: number; rows: Row[] } | { id: number; error: string; code?: string };

/**
 * The body of a read thread, run from its source text (`eval`), so that it works the same
 * from the compiled `dist` and from the TypeScript sources the tests load. It must use
 * nothing from this module's scope: only `require` and its workerData.
 */
function readThreadMain(): void {
  const { parentPort, workerData } = require("node:worker_threads");
  const Database = require(workerData.driver);
  const db = new Database(workerData.path, { readonly: true, fileMustExist: true });
  db.pragma("busy_timeout = 10000");
  const statements = new Map();
  parentPort.on("message", (ask: { id: number; sql: string; params: unknown[] }) => {
    try {
      let stmt = statements.get(ask.sql);
      if (!stmt) {
        if (statements.size >= 50) statements.delete(statements.keys().next().value);
        stmt = db.prepare(ask.sql);
        statements.set(ask.sql, stmt);
      }
      parentPort.postMessage({ id: ask.id, rows: stmt.all(...ask.params) });
    } catch (err) {
      const e = err as { message?: string; code?: string };
      parentPort.postMessage({ id: ask.id, error: String(e?.message ?? err), code: e?.code });
    }
  });
}

const SOURCE = `(${readThreadMain.toString()})()`;
const DRIVER = createRequire(import.meta.url).resolve("better-sqlite3");

interface Job extends Ask {
  resolve(rows: Row[]): void;
  reject(err: Error): void;
  timer?: ReturnType<typeof setTimeout>;
}

interface Slot {
  worker: Worker;
  job: Job | null;
  /** The thread runs: a query's time limit counts from here, not from the thread's start-up. */
  online: boolean;
}

/**
 * Worker threads, each with its own read-only better-sqlite3 connection to `path`, that run
 * queries off the event loop: a synchronous driver would otherwise hold every request (the
 * health check too) for as long as a large GROUP BY takes. One query per thread at a time;
 * callers bound how many they send at once (admitQueries). A query past `timeoutMs` stops its
 * thread (SQLite cannot cancel one otherwise) and fails; a thread that dies is replaced at the
 * next query. `close` stops them all.
 */
export class SqliteReadThreads {
  private readonly slots: Slot[] = [];
  private readonly waiting: Job[] = [];
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly path: string,
    private readonly threads: number,
    private readonly timeoutMs = 0,
  ) {}

  /** Run one query on a thread; rows as better-sqlite3 gives them. */
  readonly query = (sql: string, params: readonly unknown[]): Promise<Row[]> =>
    new Promise<Row[]>((resolve, reject) => {
      if (this.closed) {
        reject(new Error("the read threads are closed (the service is stopping)"));
        return;
      }
      this.waiting.push({ id: this.nextId++, sql, params: [...params], resolve, reject });
      this.pump();
    });

  private pump(): void {
    while (this.waiting.length > 0) {
      let slot = this.slots.find((s) => s.job === null);
      if (!slot && this.slots.length < this.threads) slot = this.spawn();
      if (!slot) return;
      const job = this.waiting.shift() as Job;
      slot.job = job;
      if (slot.online) this.startClock(slot);
      slot.worker.postMessage({ id: job.id, sql: job.sql, params: job.params } satisfies Ask);
    }
  }

  private spawn(): Slot {
    const worker = new Worker(SOURCE, {
      eval: true,
      workerData: { driver: DRIVER, path: this.path },
    });
    const slot: Slot = { worker, job: null, online: false };
    worker.once("online", () => {
      slot.online = true;
      this.startClock(slot);
    });
    worker.on("message", (a: Answer) => {
      const job = slot.job;
      if (!job || job.id !== a.id) return;
      this.finish(slot);
      if ("rows" in a) job.resolve(a.rows);
      else job.reject(Object.assign(new Error(a.error), { code: a.code }));
      this.pump();
    });
    worker.on("error", (err) => this.lost(slot, err));
    worker.on("exit", (code) => this.lost(slot, new Error(`read thread exited (${code})`)));
    this.slots.push(slot);
    return slot;
  }

  private startClock(slot: Slot): void {
    const job = slot.job;
    if (this.timeoutMs > 0 && job && !job.timer) {
      job.timer = setTimeout(() => this.timedOut(slot, job), this.timeoutMs);
    }
  }

  private finish(slot: Slot): void {
    if (slot.job?.timer) clearTimeout(slot.job.timer);
    slot.job = null;
  }

  /** A thread that failed or exited: its query fails, and it is dropped for a new one. */
  private lost(slot: Slot, err: Error): void {
    const i = this.slots.indexOf(slot);
    if (i === -1) return;
    this.slots.splice(i, 1);
    const job = slot.job;
    this.finish(slot);
    job?.reject(err);
    if (!this.closed) this.pump();
  }

  private timedOut(slot: Slot, job: Job): void {
    if (slot.job !== job) return;
    this.lost(
      slot,
      new Error(
        `stats query ran over SLUICE_STATEMENT_TIMEOUT_MS=${this.timeoutMs} ms; its thread was stopped`,
      ),
    );
    void slot.worker.terminate();
  }

  /** Stop every thread; queries still waiting or running fail. */
  async close(): Promise<void> {
    this.closed = true;
    const stopping = new Error("the service is stopping");
    for (const job of this.waiting.splice(0)) job.reject(stopping);
    const slots = this.slots.splice(0);
    for (const slot of slots) {
      const job = slot.job;
      this.finish(slot);
      job?.reject(stopping);
    }
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
