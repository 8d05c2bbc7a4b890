import type { ConsoleAssets } from "../http/routes/console.js";
// Written by scripts/build-console.mjs (npm run build, which npm ci runs through prepare): the
// Worker has no disk, so the console's files are bundled in as strings.
import { CONSOLE_ASSETS } from "./console-assets.generated.js";

const TYPES: Record<string, string> = {
  "index.html": "text/html; charset=utf-8",
  "console.js": "text/javascript; charset=utf-8",
  "console.css": "text/css; charset=utf-8",
};

/** The console's files as the Worker serves them. */
export const workerConsole: ConsoleAssets = {
  get(name) {
    const body = Object.hasOwn(CONSOLE_ASSETS, name) ? CONSOLE_ASSETS[name] : undefined;
    const type = TYPES[name];
    return body === undefined || type === undefined ? null : { body, type };
  },
};
