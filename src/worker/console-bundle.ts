import type { ConsoleAssets } from "../http/routes/console.js";
// Written by scripts/build-console.mjs (npm run build, which npm ci runs through prepare): the
// Worker has no disk, so the console's files are bundled in as strings.
import { CONSOLE_ASSETS } from "./console-assets.generated.js";

/** The console's files as the Worker serves them. */
export const workerConsole: ConsoleAssets = {
  get(name) {
    return (Object.hasOwn(CONSOLE_ASSETS, name) ? CONSOLE_ASSETS[name] : undefined) ?? null;
  },
};
