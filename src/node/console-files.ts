import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { ConsoleAsset, ConsoleAssets } from "../http/routes/console.js";
import { CONSOLE_FILES } from "../http/routes/console.js";

const TYPES: Record<string, string> = {
  "index.html": "text/html; charset=utf-8",
  "console.js": "text/javascript; charset=utf-8",
  "console.css": "text/css; charset=utf-8",
};

/**
 * The folder `npm run build` writes the console to: beside this file's compiled folder in the
 * package (dist/node -> dist/console), or dist/console of the checkout when run from src/
 * (tests, tsx). Null when neither was built.
 */
export function consoleFolder(here = import.meta.dirname): string | null {
  const candidates = [resolve(here, "..", "console"), resolve(here, "..", "..", "dist", "console")];
  return candidates.find((d) => existsSync(join(d, "index.html"))) ?? null;
}

/** The console read from disk once per file and kept (three files, ~40 KB together). */
export function consoleFiles(folder: string): ConsoleAssets {
  const cache = new Map<string, Promise<ConsoleAsset | null>>();
  return {
    get(name) {
      if (!(CONSOLE_FILES as readonly string[]).includes(name)) return null;
      let hit = cache.get(name);
      if (!hit) {
        hit = readFile(join(folder, name)).then(
          (body): ConsoleAsset => ({ body: new Uint8Array(body), type: TYPES[name] as string }),
          () => null,
        );
        cache.set(name, hit);
      }
      return hit;
    },
  };
}
