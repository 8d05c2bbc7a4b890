import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { FsStore } from "../adapters/fs/store.js";
import { BadInputError } from "../core/errors.js";
import type { SqlSource } from "../core/sql/source.js";
import type { ObjectStore } from "../core/store.js";

/** `sqlite:./data/sluice.db`, `sqlite:///abs/path.db` or a bare path ending in .db/.sqlite. */
function sqlitePath(url: string): string | null {
  if (url.startsWith("sqlite://")) return url.slice("sqlite://".length) || null;
  if (url.startsWith("sqlite:")) return url.slice("sqlite:".length) || null;
  if (/\.(db|sqlite3?)$/.test(url) && !url.includes("://")) return url;
  return null;
}

/**
 * Open the hot store named by a URL. `create` makes a missing SQLite file (prepare-data). Each
 * adapter is loaded only for its own URLs: a process on SQLite never loads the others.
 */
export async function openSource(
  url: string,
  options: { create?: boolean; statementTimeoutMs?: number; poolSize?: number } = {},
): Promise<SqlSource> {
  if (/^postgres(ql)?:\/\//.test(url)) {
    const { PostgresSource } = await import("../adapters/postgres/source.js");
    return new PostgresSource(url, {
      statementTimeoutMs: options.statementTimeoutMs,
      max: options.poolSize,
    });
  }
  if (/^(mysql|mariadb):\/\//.test(url)) {
    const { MysqlSource } = await import("../adapters/mysql/source.js");
    return new MysqlSource(url.replace(/^mariadb:/, "mysql:"), {
      statementTimeoutMs: options.statementTimeoutMs,
    });
  }
  const path = sqlitePath(url);
  if (path) {
    if (options.create && path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    const { SqliteSource } = await import("../adapters/sqlite/source.js");
    try {
      return new SqliteSource(path, options);
    } catch (err) {
      const e = err as Error & { code?: string };
      if (e.code === "SQLITE_CANTOPEN" || /does not exist/.test(e.message)) {
        throw new BadInputError(
          `no database at ${url} (run 'sluice prepare-data' to create one, or set SLUICE_DB)`,
        );
      }
      throw err;
    }
  }
  const scheme = url.split(":")[0];
  throw new BadInputError(
    `SLUICE_DB '${url.replace(/\/\/[^@/]*@/, "//***@")}': unsupported database scheme '${scheme}:' (supported: sqlite:PATH, postgres://USER@HOST/DB, mysql://USER@HOST/DB)`,
  );
}

/** Open the object store named by a URL: `file:./data/archive`, `file:///abs/dir` or `s3://...`. */
export async function openStore(url: string): Promise<ObjectStore> {
  if (url.startsWith("file:")) {
    const path = url.startsWith("file://")
      ? url.slice("file://".length)
      : url.slice("file:".length);
    if (!path) throw new BadInputError(`SLUICE_STORE '${url}' has no folder`);
    return new FsStore(path);
  }
  // Loaded only for S3: the AWS SDK costs ~22 MB of memory in every process that imports it.
  if (url.startsWith("s3://")) return (await import("../adapters/s3/store.js")).s3StoreFromUrl(url);
  if (!url.includes(":")) return new FsStore(url);
  const scheme = url.split(":")[0];
  throw new BadInputError(
    `SLUICE_STORE '${url}': unsupported store scheme '${scheme}:' (supported: file:PATH, s3://BUCKET/PREFIX?endpoint=...)`,
  );
}
