import { type ErrorKind, InterruptedError, SluiceError, describeError } from "../core/errors.js";
import { backlog, demo } from "./commands/backlog.js";
import { archive, cleanup, restore, rollup, status, verify } from "./commands/partition.js";
import { prepareData } from "./commands/prepare.js";
import { query } from "./commands/query.js";
import { serve } from "./commands/serve.js";
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

const COMMANDS: { [K in CommandName]: (opts: CommandOptions[K], io: Io) => Promise<void> } = {
  "prepare-data": prepareData,
  archive,
  verify,
  rollup,
  query,
  restore,
  status,
  cleanup,
  backlog,
  serve,
  demo,
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
    await COMMANDS[command](opts, { bar, signal: abort.signal });
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
