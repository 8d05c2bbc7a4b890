import { SluiceError } from "../core/errors.js";
import type { Config } from "../node/config.js";
import { type NodeContext, openContext } from "../node/context.js";
import type { GlobalOptions } from "./options.js";
import type { progressLine } from "./progress.js";

/** What a command writes to: the progress line, and the signal of Ctrl-C. */
export interface Io {
  bar: ReturnType<typeof progressLine>;
  signal: AbortSignal;
}

/** A result: the text for a person, or with --json the object for a script. */
export function print(opts: GlobalOptions, human: string, json: unknown): void {
  process.stdout.write(opts.json ? `${JSON.stringify(json)}\n` : `${human}\n`);
}

/** A failure whose result was already printed (with --json, the one object): exit 1, no more. */
export class PrintedFailure extends SluiceError {
  constructor(message: string) {
    super("failed", message);
  }
}

/** Run `fn` with the configured context open, closing it after. */
export async function withContext<T>(
  config: Config,
  io: Io,
  fn: (c: NodeContext) => Promise<T>,
  options: { readOnly?: boolean } = {},
): Promise<T> {
  const c = await openContext(config, {
    onProgress: io.bar.update,
    onWarning: (m) => process.stderr.write(`warning: ${m}\n`),
    signal: io.signal,
    readOnly: options.readOnly,
  });
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}
