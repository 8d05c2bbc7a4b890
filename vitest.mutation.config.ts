import { defineConfig } from "vitest/config";

/**
 * The tests Stryker runs against each mutant: those that exercise the safety-critical code in
 * this process. Tests of the CLI, workerd and SIGKILL run the built code in other processes,
 * where a mutant of the sources does not exist.
 */
export default defineConfig({
  test: {
    include: [
      "test/archive-cleanup.test.ts",
      "test/row-safety.test.ts",
      "test/non-unique-key.test.ts",
      "test/column-types.test.ts",
      "test/ledger.test.ts",
      "test/ledger-fences.test.ts",
      "test/verify.test.ts",
      "test/verify-checks.test.ts",
      "test/d1-cleanup.test.ts",
      "test/chunks.test.ts",
      "test/verified-ranges.test.ts",
      "test/line-reader.test.ts",
      "test/days.test.ts",
      "test/timestamp-partitions.test.ts",
      "test/model.test.ts",
      "test/server-sources.test.ts",
      "test/container-ids.test.ts",
      "test/trace-http.test.ts",
      "test/qualified-tables.test.ts",
      "test/cleanup-resume.test.ts",
      "test/rollup-counter.test.ts",
      "test/row-lines.test.ts",
      "test/stats-tiers.test.ts",
      "test/restore.test.ts",
      "test/restore-checks.test.ts",
      "test/deleted-counts.test.ts",
      "test/both-tiers.test.ts",
      "test/parquet-parts.test.ts",
      "test/convert.test.ts",
      "test/write-part.test.ts",
      "test/pages.test.ts",
      "test/copy-text.test.ts",
      "test/trace.test.ts",
    ],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // A few random histories per mutant; the regression histories always run.
    env: { SLUICE_MODEL_RUNS: "3" },
  },
});
