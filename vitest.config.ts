import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Tests spawn CLI processes and write real SQLite files; two cores, so keep it modest.
    pool: "forks",
    poolOptions: { forks: { maxForks: 2 } },
  },
});
