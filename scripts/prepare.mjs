// npm's prepare: build where the compiler is installed (a clone, `npm install`), and do
// nothing in a production install (`npm ci --omit=dev`), which has no TypeScript and runs
// the dist/ that was built before it (README, "Install for production").
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";

try {
  createRequire(import.meta.url).resolve("typescript");
} catch {
  process.exit(0);
}
const run = spawnSync("npm", ["run", "build"], { stdio: "inherit" });
process.exit(run.status ?? 1);
