import cluster from "node:cluster";
import { InterruptedError } from "../../core/errors.js";
import { runCluster } from "../../node/cluster.js";
import { checkCron } from "../../node/scheduler.js";
import { startService } from "../../node/serve.js";
import { type Io, print } from "../io.js";
import { type ServeOptions, configFrom, configsFrom, serviceTable } from "../options.js";

/** serve: the HTTP API, in WEB_CONCURRENCY worker processes. */
export async function serve(opts: ServeOptions, io: Io): Promise<void> {
  // With a config file of tables: the service's own (ingest, stats) is --table, SLUICE_TABLE,
  // or the file's `api` table; the others are archived on the same schedule.
  const all = configsFrom({ ...opts, table: undefined });
  const config = configFrom({ ...opts, table: serviceTable(opts) });
  const others = all.filter((o) => o.SLUICE_TABLE !== config.SLUICE_TABLE);
  if (config.ARCHIVE_CRON !== "off") checkCron(config.ARCHIVE_CRON);
  if (config.VERIFY_CRON !== "off") checkCron(config.VERIFY_CRON, "VERIFY_CRON");
  if (config.WEB_CONCURRENCY > 1 && cluster.isPrimary) {
    print(opts, `sluice serve: starting ${config.WEB_CONCURRENCY} workers`, {
      ok: true,
      workers: config.WEB_CONCURRENCY,
    });
    await runCluster(config.WEB_CONCURRENCY, io.signal, (line) =>
      process.stderr.write(`sluice serve: ${line}\n`),
    );
    return;
  }
  // A worker stops on its primary's message as on a signal; two signals still mean "now".
  const stop = new AbortController();
  // Jobs stopped by the shutdown are left resumable and marked interrupted, not failed.
  io.signal.addEventListener("abort", () => stop.abort(new InterruptedError()), { once: true });
  process.on("message", (m: { cmd?: string }) => {
    if (m?.cmd === "shutdown") stop.abort(new InterruptedError());
  });
  // One worker keeps the schedule; the lease would keep the others off each date anyway.
  const index = Number(process.env.SLUICE_WORKER_INDEX ?? 0);
  let service: Awaited<ReturnType<typeof startService>>;
  try {
    service = await startService(config, stop.signal, {
      scheduler: index === 0,
      announce: index === 0,
      others,
    });
  } catch (err) {
    // The channel to the primary would keep a worker that failed to start alive; let go of
    // it so that the process ends with the exit code of the error.
    if (cluster.isWorker) process.channel?.unref();
    throw err;
  }
  // The workers share one address: the first says where it is.
  if (index === 0) {
    print(opts, `sluice serve: listening on ${service.url}`, { ok: true, url: service.url });
  }
  await service.closed;
  if (cluster.isWorker) process.disconnect();
}
