import { type ErrorKind, InterruptedError, SluiceError, describeError } from "../core/errors.js";
import { type Io, PrintedFailure } from "./io.js";
import type { CommandName, CommandOptions } from "./options.js";
import { progressLine } from "./progress.js";

/**
 * Exit codes: 0 done, 1 the job failed, 2 bad input (fix the command), 75 busy or the database
 * unreachable (retry later), 130 interrupted by Ctrl-C or SIGTERM (progress saved; run again).
 */
const EXIT: Record<ErrorKind, number> = {
  bad_input: 2,
  not_found: 2,
  failed: 1,
  conflict: 75,
  unavailable: 75,
  interrupted: 130,
};

type Command<K extends CommandName> = (opts: CommandOptions[K], io: Io) => Promise<void>;

/**
 * Each command's module, loaded when it runs: `sluice archive` never loads the service (the
 * HTTP app, metrics) nor DuckDB, which would only add to its memory.
 */
const COMMANDS: { [K in CommandName]: () => Promise<Command<K>> } = {
  "prepare-data": async () => (await import("./commands/prepare.js")).prepareData,
  archive: async () => (await import("./commands/partition.js")).archive,
  verify: async () => (await import("./commands/partition.js")).verify,
  rollup: async () => (await import("./commands/partition.js")).rollup,
  query: async () => (await import("./commands/query.js")).query,
  restore: async () => (await import("./commands/partition.js")).restore,
  convert: async () => (await import("./commands/partition.js")).convert,
  status: async () => (await import("./commands/partition.js")).status,
  cleanup: async () => (await import("./commands/partition.js")).cleanup,
  backlog: async () => (await import("./commands/backlog.js")).backlog,
  serve: async () => (await import("./commands/serve.js")).serve,
  demo: async () => (await import("./commands/backlog.js")).demo,
};

/** Run one command; prints one clear line and sets the exit code on failure. */
export async function runCli<K extends CommandName>(
  command: K,
  opts: CommandOptions[K],
): Promise<void> {
  const bar = progressLine(Boolean(process.stderr.isTTY) && !opts.json);
  const abort = new AbortController();
  let interrupted = 0;
  const onSignal = () => {
    // First Ctrl-C: stop at the next batch boundary (progress is saved). Second: now.
    if (++interrupted > 1) process.exit(130);
    abort.abort(new InterruptedError());
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const run = (await COMMANDS[command]()) as Command<K>;
    await run(opts, { bar, signal: abort.signal });
  } catch (err) {
    bar.done();
    const why = abort.signal.aborted ? abort.signal.reason : err;
    const kind: ErrorKind = why instanceof SluiceError ? why.kind : "failed";
    const message = describeError(why);
    if (opts.json && !(err instanceof PrintedFailure))
      process.stdout.write(`${JSON.stringify({ ok: false, error: kind, message })}\n`);
    process.stderr.write(`sluice ${command}: ${message}\n`);
    if (!(err instanceof SluiceError) && process.env.SLUICE_DEBUG) console.error(err);
    process.exitCode = EXIT[kind];
  } finally {
    bar.done();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
