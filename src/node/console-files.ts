import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { type ConsoleAsset, type ConsoleAssets, isConsoleFile } from "../http/routes/console.js";

/**
 * The folder `npm run build` writes the console to: beside this file's compiled folder in the
 * package (dist/node -> dist/console), or dist/console of the checkout when run from src/
 * (tests, tsx). Null when neither was built.
 */
export function consoleFolder(here = import.meta.dirname): string | null {
  const candidates = [resolve(here, "..", "console"), resolve(here, "..", "..", "dist", "console")];
  return candidates.find((d) => existsSync(join(d, "index.html"))) ?? null;
}

/** The built console in this package, or undefined (then `/` answers 404). */
export function builtConsole(): ConsoleAssets | undefined {
  const folder = consoleFolder();
  return folder ? consoleFiles(folder) : undefined;
}

/** The console read from disk once per file and kept (three files, ~40 KB together). */
export function consoleFiles(folder: string): ConsoleAssets {
  const cache = new Map<string, Promise<ConsoleAsset | null>>();
  return {
    get(name) {
      if (!isConsoleFile(name)) return null;
      let hit = cache.get(name);
      if (!hit) {
        hit = readFile(join(folder, name)).then(
          (body): ConsoleAsset => new Uint8Array(body),
          () => null,
        );
        cache.set(name, hit);
      }
      return hit;
    },
  };
}
