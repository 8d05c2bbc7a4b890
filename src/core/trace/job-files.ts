import { type ObjectStore, getText, putBytes } from "../store.js";

export type TraceJobState = "queued" | "running" | "succeeded" | "failed" | "lost";

/** What GET /api/trace/jobs/:id answers; kept as an object in the store beside the result. */
export interface TraceJobStatus {
  id: string;
  profile: string;
  containers: number;
  domains: string[];
  state: TraceJobState;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** When the process running it last wrote this; stale while queued or running = it died. */
  heartbeatAt: string;
  /** Rows written so far, per domain. */
  rows: Record<string, number>;
  /** Compressed bytes of the stored result, once it is complete. */
  bytes: number | null;
  error: string | null;
  /** Fields the work adds once it is done (mid_section_defect: `msd`, the pareto). */
  [summary: string]: unknown;
}

/** The work of one job, as the trace routes define it. */
export interface TraceJobWork {
  /** Wait for a database slot (the job is queued until then); resolves with its release. */
  acquire(signal: AbortSignal): Promise<() => void>;
  /** The result body (the /events response); `wrote` is told of rows as they go out. */
  body(
    signal: AbortSignal,
    wrote: (domain: string, rows: number) => void,
  ): Promise<ReadableStream<Uint8Array>>;
  /** Added to the status once the body is stored (e.g. the pareto). */
  summary?(): Record<string, unknown>;
}

export const JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Where a trace job's files are in the object store, under `prefix/`: its status
 * (`<id>.status.json`), its result (`<id>.json.gz`, the /events response gzipped) and, once
 * deleted, its marker (`<id>.deleted.json`). Any process of the service reads and writes them.
 */
export class JobFiles {
  constructor(
    readonly store: ObjectStore,
    readonly prefix: string,
  ) {}

  statusKey(id: string): string {
    return `${this.prefix}/${id}.status.json`;
  }

  resultKey(id: string): string {
    return `${this.prefix}/${id}.json.gz`;
  }

  /**
   * A deleted job's marker. Any process may receive the DELETE, and the one running the job
   * finds the marker at its next status write (a heartbeat), stops the job, and writes
   * nothing more of it; no write of its can bring the job back.
   */
  deletedKey(id: string): string {
    return `${this.prefix}/${id}.deleted.json`;
  }

  async putStatus(status: TraceJobStatus): Promise<void> {
    await putBytes(
      this.store,
      this.statusKey(status.id),
      new TextEncoder().encode(JSON.stringify(status)),
    );
  }

  /** The status as stored, or null. */
  async getStatus(id: string): Promise<TraceJobStatus | null> {
    const text = await getText(this.store, this.statusKey(id));
    return text === null ? null : (JSON.parse(text) as TraceJobStatus);
  }

  async isDeleted(id: string): Promise<boolean> {
    return (await this.store.head(this.deletedKey(id))) !== null;
  }

  async markDeleted(id: string): Promise<void> {
    const marker = JSON.stringify({ id, deletedAt: new Date().toISOString() });
    await putBytes(this.store, this.deletedKey(id), new TextEncoder().encode(marker));
  }

  /** When the job was deleted (ms since the epoch); 0 for a marker that cannot be read. */
  async deletedAt(id: string): Promise<number> {
    try {
      const text = await getText(this.store, this.deletedKey(id));
      const at = Date.parse((JSON.parse(text ?? "{}") as { deletedAt?: string }).deletedAt ?? "");
      return Number.isNaN(at) ? 0 : at;
    } catch {
      return 0;
    }
  }

  /** The ids with a status, a result and a marker; null where the store cannot list. */
  async list(): Promise<{ statuses: Set<string>; results: string[]; markers: string[] } | null> {
    if (!this.store.list) return null;
    const statuses = new Set<string>();
    const results: string[] = [];
    const markers: string[] = [];
    for await (const o of this.store.list(`${this.prefix}/`)) {
      const name = o.key.slice(this.prefix.length + 1);
      const id = name.slice(0, 36);
      if (!JOB_ID.test(id)) continue;
      if (name === `${id}.status.json`) statuses.add(id);
      else if (name === `${id}.json.gz`) results.push(id);
      else if (name === `${id}.deleted.json`) markers.push(id);
    }
    return { statuses, results, markers };
  }
}
