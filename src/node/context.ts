import type { JobContext } from "../core/archive/context.js";
import { Ledger } from "../core/archive/ledger/ledger.js";
import { checkSpec } from "../core/archive/partition.js";
import { BadInputError } from "../core/errors.js";
import type { ProgressListener } from "../core/progress.js";
import { specOfSettings } from "../core/settings.js";
import { zlibCodec } from "./codec.js";
import type { Config } from "./config.js";
import { gcPacer } from "./gc-pacer.js";
import { openSource, openStore } from "./open.js";
import { isHolderGone, nodeSha256, ownerId } from "./owner.js";

export interface NodeContext {
  ctx: JobContext;
  /** False when opened read-only on a database whose ledger is missing or older: nothing in it. */
  ledgerReady: boolean;
  owner: string;
  close(): Promise<void>;
}

/**
 * Open the configured hot store and object store, migrate the ledger, check the table.
 * `readOnly` (status): the ledger is read as it is, never created or upgraded.
 */
export async function openContext(
  config: Config,
  options: {
    onProgress?: ProgressListener;
    onWarning?: (message: string) => void;
    signal?: AbortSignal;
    readOnly?: boolean;
  } = {},
): Promise<NodeContext> {
  const source = await openSource(config.SLUICE_DB, {
    statementTimeoutMs: config.SLUICE_STATEMENT_TIMEOUT_MS || undefined,
  });
  try {
    const store = await openStore(config.SLUICE_STORE);
    const schema = config.SLUICE_LEDGER_SCHEMA;
    if (schema && source.dialect.name === "sqlite") {
      throw new BadInputError(
        "SLUICE_LEDGER_SCHEMA is for PostgreSQL and MySQL: SQLite keeps the ledger in its own file",
      );
    }
    const ledger = new Ledger(source, { leaseMs: config.SLUICE_LEASE_MS, isHolderGone, schema });
    const spec = await checkSpec(source, specOfSettings(config));
    let ledgerReady = true;
    if (options.readOnly) ledgerReady = await ledger.isCurrent();
    else await ledger.migrate();
    return {
      ledgerReady,
      ctx: {
        source,
        store,
        ledger,
        spec,
        fetchSize: config.DB_SLOW_FETCHMANY_SIZE,
        sha256: nodeSha256,
        codec: zlibCodec,
        onProgress: options.onProgress,
        onWarning: options.onWarning,
        signal: options.signal,
        pacer: gcPacer(config.SLUICE_GC_EVERY_ROWS),
      },
      owner: ownerId(),
      close: () => source.close(),
    };
  } catch (err) {
    await source.close();
    throw err;
  }
}
