import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { Readable } from "node:stream";
import { BadInputError } from "../../core/errors.js";
import type { ObjectInfo, ObjectStore } from "../../core/store.js";

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._=-]*$/;

/** A local folder as an object store: temp file + fsync + rename, so objects appear whole. */
export class FsStore implements ObjectStore {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  private path(key: string): string {
    const segments = key.split("/");
    if (!segments.every((s) => SEGMENT.test(s))) {
      throw new BadInputError(`object key '${key}' is not a plain relative path`);
    }
    return join(this.root, ...segments);
  }

  async put(key: string, body: ReadableStream<Uint8Array>): Promise<ObjectInfo> {
    const target = this.path(key);
    const dir = dirname(target);
    const name = basename(target);
    await mkdir(dir, { recursive: true });
    // A killed writer leaves its temp file; the lease means no live writer owns one now.
    for (const entry of await readdir(dir)) {
      if (entry.startsWith(`.${name}.`) && entry.endsWith(".tmp")) {
        await rm(join(dir, entry), { force: true });
      }
    }
    const temp = join(dir, `.${name}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`);
    const fh = await open(temp, "w");
    let bytes = 0;
    try {
      const reader = body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        await fh.write(value);
        bytes += value.byteLength;
      }
      await fh.sync();
      await fh.close();
    } catch (err) {
      await fh.close().catch(() => undefined);
      await rm(temp, { force: true });
      throw err;
    }
    await rename(temp, target);
    // The rename itself must survive a crash before any row is deleted on its strength.
    const dh = await open(dir, "r");
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
    return { key, bytes };
  }

  async get(key: string): Promise<ReadableStream<Uint8Array> | null> {
    const p = this.path(key);
    if (!(await this.head(key))) return null;
    return Readable.toWeb(
      createReadStream(p, { highWaterMark: 1 << 16 }),
    ) as ReadableStream<Uint8Array>;
  }

  async getRange(key: string, start: number, end: number): Promise<Uint8Array | null> {
    let file: Awaited<ReturnType<typeof open>>;
    try {
      file = await open(this.path(key), "r");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
    try {
      const out = new Uint8Array(Math.max(0, end - start));
      let got = 0;
      while (got < out.byteLength) {
        const { bytesRead } = await file.read(out, got, out.byteLength - got, start + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return out.subarray(0, got);
    } finally {
      await file.close();
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    try {
      const s = await stat(this.path(key));
      return s.isFile() ? { key, bytes: s.size } : null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  /** Remove the object, and the temp files of uploads of it that a killed writer left. */
  async delete(key: string): Promise<void> {
    const target = this.path(key);
    await rm(target, { force: true });
    const dir = dirname(target);
    const name = basename(target);
    let entries: string[];
    try {
      entries = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    for (const entry of entries) {
      if (entry.startsWith(`.${name}.`) && entry.endsWith(".tmp")) {
        await rm(join(dir, entry), { force: true });
      }
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    // The folder holding every key with this prefix: what comes before its last '/'.
    const folder = prefix.includes("/") ? prefix.slice(0, prefix.lastIndexOf("/")) : "";
    let entries: Awaited<ReturnType<typeof readdirEntries>>;
    try {
      entries = await readdirEntries(folder ? this.path(folder) : this.root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    for (const e of entries) {
      // Temp files of writes under way start with '.', and are no objects yet.
      if (!e.isFile() || e.name.startsWith(".")) continue;
      const key = relative(this.root, join(e.parentPath, e.name)).split(sep).join("/");
      if (!key.startsWith(prefix)) continue;
      const info = await this.head(key);
      if (info) yield info;
    }
  }

  describe(): string {
    return `file:${this.root}`;
  }
}

function readdirEntries(dir: string) {
  return readdir(dir, { recursive: true, withFileTypes: true });
}
