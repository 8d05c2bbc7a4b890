import cluster from "node:cluster";
import { SluiceError } from "../core/errors.js";
import { serveClusterMetrics } from "./metrics.js";

/**
 * glibc's malloc raises its mmap threshold to the size of each large block freed (a 2 MB
 * request body, say), after which blocks under it come from the heap and leave holes there, and
 * a worker's peak climbs the longer it runs (figures: README, bench/trace-ab). A fixed threshold (glibc's own default) stops the climbing. Workers get it
 * unless the operator set one; deploy/sluice.service sets it for the primary too.
 */
export const MALLOC_ENV = { MALLOC_MMAP_THRESHOLD_: "131072" };

/**
 * The primary of `sluice serve` with WEB_CONCURRENCY > 1: forks that many workers, which share
 * the port, and forks again a worker that dies while the service is up. On `signal` it stops
 * forking, tells each worker to stop gracefully, and waits for them.
 */
export async function runCluster(
  workers: number,
  signal: AbortSignal,
  log: (message: string) => void,
): Promise<void> {
  let failed: SluiceError | null = null;
  const stop = new AbortController();
  signal.addEventListener("abort", () => stop.abort(), { once: true });
  const fork = (index: number) => {
    const w = cluster.fork({
      ...(process.env.MALLOC_MMAP_THRESHOLD_ === undefined ? MALLOC_ENV : {}),
      SLUICE_WORKER_INDEX: String(index),
    });
    let listened = false;
    w.once("listening", () => {
      listened = true;
    });
    w.once("exit", (code, sig) => {
      if (stop.signal.aborted) return;
      if (!listened) {
        // It never served (a port in use, a bad setting): forking it again would fail again,
        // and a primary that stays up without a port looks healthy. The service stops.
        failed = new SluiceError(
          code === 2 ? "bad_input" : "failed",
          `worker ${index} exited (${sig ?? code}) before it listened; stopping the service`,
        );
        stop.abort();
        return;
      }
      log(`worker ${index} (pid ${w.process.pid}) exited (${sig ?? code}); starting another`);
      fork(index);
    });
  };
  serveClusterMetrics();
  for (let i = 0; i < workers; i++) fork(i);
  await new Promise<void>((resolve) => stop.signal.addEventListener("abort", () => resolve()));
  // A message, not a signal: a worker that also got the terminal's or systemd's signal would
  // take a second one as "exit now".
  for (const w of Object.values(cluster.workers ?? {})) {
    // A worker whose channel already closed is on its way out (one that failed to start).
    if (w?.isConnected()) w.send({ cmd: "shutdown" }, undefined, () => undefined);
  }
  await new Promise<void>((resolve) => {
    const check = () => {
      if (Object.keys(cluster.workers ?? {}).length === 0) resolve();
    };
    cluster.on("exit", () => setImmediate(check));
    setImmediate(check);
  });
  if (failed) throw failed;
}
