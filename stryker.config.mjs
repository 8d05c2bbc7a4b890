// Mutation testing of the code that keeps rows safe (npm run test:mutation; README, Testing).
// The tests run in-process (the CLI, workerd and kill tests run built code, which mutants do
// not reach): see vitest.mutation.config.ts.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: "vitest",
  vitest: { configFile: "vitest.mutation.config.ts", related: false },
  checkers: ["typescript"],
  tsconfigFile: "tsconfig.json",
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  coverageAnalysis: "perTest",
  mutate: [
    "src/core/archive/verify.ts",
    "src/core/archive/part-lines.ts",
    "src/core/archive/write-part.ts",
    "src/core/archive/pages.ts",
    "src/core/archive/line-reader.ts",
    "src/core/archive/cleanup.ts",
    "src/core/archive/cleanup-batch.ts",
    "src/core/archive/ledger/base.ts",
    "src/core/archive/ledger/ledger.ts",
    "src/core/archive/ledger/part-writes.ts",
    "src/core/archive/ledger/deleted-counts.ts",
    "src/core/archive/ledger/path-key.ts",
    "src/core/archive/ledger/skipped-keys.ts",
    "src/core/archive/restore.ts",
    "src/core/archive/ledger/states.ts",
    "src/core/archive/drop-partition.ts",
    "src/core/archive/chunks.ts",
    "src/core/archive/verified-ranges.ts",
    // A conversion deletes the only copy of a cleaned day's rows once the new one is proven.
    "src/core/archive/convert.ts",
    "src/core/archive/rollup.ts",
    "src/core/archive/rows.ts",
    "src/core/archive/days.ts",
    "src/core/trace/container-ids.ts",
    "src/core/keyed-hash.ts",
    // The trace admission: interactive profiles refused over TRACE_EVENTS_CID_LIMIT.
    "src/http/trace/events.ts:29-38",
  ],
  ignoreStatic: true,
  concurrency: 2,
  timeoutMS: 60_000,
  reporters: ["clear-text", "progress", "html", "json"],
  htmlReporter: { fileName: "reports/mutation/index.html" },
  jsonReporter: { fileName: "reports/mutation/mutation.json" },
  clearTextReporter: { allowColor: false, logTests: false, maxTestsToLog: 0 },
  tempDirName: ".stryker-tmp",
  // Bench output and demo data change under a running bench; the tests need neither.
  ignorePatterns: ["bench/out", "data", "reports"],
  cleanTempDir: "always",
  // Keeps results in reports/stryker-incremental.json: a rerun tests only mutants whose code
  // or covering tests changed.
  incremental: true,
  incrementalFile: "reports/stryker-incremental.json",
};
