#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { parseEnv } from "node:util";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { runCli } from "./run.js";

const { version } = JSON.parse(
  readFileSync(new URL("../../package.json", import.meta.url), "utf8"),
) as { version: string };

// The AWS SDK warns on every run under Node < 22 that its releases after January 2027 will
// need Node 22. It speaks to whoever upgrades our lockfile, not to someone archiving a day;
// the README says it. Set the variable to "false" to see it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

function positiveInt(name: string, max = 1_000_000_000) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) {
      throw new InvalidArgumentError(`${name} must be a whole number from 1 to ${max}`);
    }
    return Number(value);
  };
}

const program = new Command("sluice")
  .description(
    "Move large query results out of SQL databases with bounded memory, and never lose a row.",
  )
  .option(
    "--config <path>",
    "tables and their settings (env SLUICE_CONFIG, default ./sluice.config.json if present)",
  )
  .option("--db <url>", "hot store (env SLUICE_DB, default sqlite:./data/sluice.db)")
  .option("--store <url>", "object store (env SLUICE_STORE, default file:./data/archive)")
  .option("--table <name>", "table to archive (env SLUICE_TABLE, default traffic_events)")
  .option("--json", "print one JSON object instead of text")
  .option(
    "--env-file <path>",
    "read settings from this file of NAME=value lines (as deploy/.env.example); the environment and flags win",
  )
  .version(version, "-V, --version", "print sluice's version")
  .configureHelp({ showGlobalOptions: true })
  .exitOverride()
  .configureOutput({ outputError: () => undefined });

/** Help text after a command's options: one or more example lines. */
const example = (...lines: string[]) =>
  `\nExample${lines.length > 1 ? "s" : ""}:\n${lines.map((l) => `  ${l}`).join("\n")}`;

/** A number in (0, max], as written by a person: 1, 0.01, .5 (no exponents, no signs). */
function positiveScale(name: string, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^(\d+(\.\d*)?|\.\d+)$/.test(value) || !(n > 0) || n > max) {
      throw new InvalidArgumentError(`${name} must be a number greater than 0 and at most ${max}`);
    }
    return n;
  };
}

program
  .command("prepare-data")
  .description(
    "create demo tables and fill them with generated data: traffic page views (--date), or an MES factory (--workload=mes)",
  )
  .option("--count <n>", "traffic: rows per day", positiveInt("--count"), 100_000)
  .option("--date <YYYY-MM-DD>", "traffic: the (last) day to generate (required for traffic)")
  .option(
    "--days <n>",
    "traffic: consecutive days ending at --date",
    positiveInt("--days", 3650),
    1,
  )
  .addOption(
    new Option("--workload <name>", "which demo data")
      .choices(["traffic", "mes"])
      .default("traffic"),
  )
  .option(
    "--scale <x>",
    "mes: factory size, 1 = 70K lots, ~2.6M rows (default 1)",
    positiveScale("--scale", 10),
  )
  .option("--replace", "mes: drop the four MES tables first and generate them again")
  .addHelpText(
    "after",
    example(
      "sluice prepare-data --date 2025-10-13 --days 6 --count 100000",
      "sluice prepare-data --workload mes --scale 0.1",
    ),
  )
  .action((_o, cmd) => runCli("prepare-data", cmd.optsWithGlobals()));

program
  .command("archive")
  .description(
    "archive a date's rows as gzip JSONL (or Parquet) in the object store, then verify it",
  )
  .requiredOption("--date <YYYY-MM-DD>", "the partition (required)")
  .option("--dry-run", "say what would be read and written; change nothing")
  .addOption(
    new Option(
      "--format <format>",
      "how the new part is written (env SLUICE_FORMAT, default jsonl)",
    ).choices(["jsonl", "parquet"]),
  )
  .addHelpText(
    "after",
    example(
      "sluice archive --date 2025-10-13",
      "sluice --db postgres://localhost/app --store s3://bucket/archive --table analytics.pv archive --date 2025-10-13 --dry-run",
    ),
  )
  .action((_o, cmd) => runCli("archive", cmd.optsWithGlobals()));

program
  .command("verify")
  .description(
    "read a date's archive back (every archived date's with --all) and prove it matches its manifest and the ledger",
  )
  .option("--date <YYYY-MM-DD>", "the partition")
  .option("--all", "every partition with stored parts; a failure is recorded and the rest go on")
  .addHelpText("after", example("sluice verify --date 2025-10-13", "sluice verify --all"))
  .action((_o, cmd) => runCli("verify", cmd.optsWithGlobals()));

program
  .command("rollup")
  .description(
    "rebuild a date's stats rollups (rows per path) from its stored archive, read back and verified again",
  )
  .option("--date <YYYY-MM-DD>", "the partition")
  .option("--all", "every partition with a part that has no rollup (archived before rollups)")
  .addHelpText("after", example("sluice rollup --date 2025-10-13", "sluice rollup --all"))
  .action((_o, cmd) => runCli("rollup", cmd.optsWithGlobals()));

program
  .command("query")
  .description(
    "run one SELECT with DuckDB over the verified archive (each table a view, date as a Hive partition); --hot adds the hot rows, each row counted once",
  )
  .argument("<sql>", "one SELECT, over the tables by their names (e.g. traffic_events)")
  .option("--hot", "the hot rows too: one query over both tiers, each row once")
  .option("--from <YYYY-MM-DD>", "only parts of this day and after (fetches only those from S3/R2)")
  .option("--to <YYYY-MM-DD>", "only parts of this day and before")
  .option("--csv", "print CSV (--json prints NDJSON; a table by default)")
  .option("--out <file.parquet>", "write the result to a Parquet file instead")
  .addHelpText(
    "after",
    example(
      `sluice query "SELECT date, COUNT(*) FROM traffic_events GROUP BY date ORDER BY date"`,
      `sluice --json query --hot "SELECT path, COUNT(*) AS views FROM traffic_events WHERE date >= '2025-10-01' GROUP BY path ORDER BY views DESC LIMIT 10"`,
    ),
  )
  .action((sql, _o, cmd) => runCli("query", { ...cmd.optsWithGlobals(), sql }));

program
  .command("restore")
  .description(
    "put a date's verified archive back into the table (or --into a table of the same columns); rows whose key is there are skipped",
  )
  .requiredOption("--date <YYYY-MM-DD>", "the partition (required)")
  .option("--into <table>", "restore into this table instead (create it first, same columns)")
  .addHelpText(
    "after",
    example(
      "sluice restore --date 2025-10-13",
      "sluice restore --date 2025-10-13 --into pv_staging",
    ),
  )
  .action((_o, cmd) => runCli("restore", cmd.optsWithGlobals()));

program
  .command("convert")
  .description(
    "rewrite a date's archived parts in another format: each new object verified (every line the same text) before the ledger points at it, the old one deleted only then",
  )
  .requiredOption("--date <YYYY-MM-DD>", "the partition (required)")
  .addOption(
    new Option("--to <format>", "the format to write (required)")
      .choices(["jsonl", "parquet"])
      .makeOptionMandatory(),
  )
  .addHelpText("after", example("sluice convert --date 2025-10-13 --to parquet"))
  .action((_o, cmd) => runCli("convert", cmd.optsWithGlobals()));

program
  .command("status")
  .description("a date's ledger state, archive and hot-store rows (all partitions without --date)")
  .option("--date <YYYY-MM-DD>", "the partition")
  .addHelpText("after", example("sluice status", "sluice --json status --date 2025-10-13"))
  .action((_o, cmd) => runCli("status", cmd.optsWithGlobals()));

program
  .command("cleanup")
  .description(
    "delete a date's archived rows from the hot store; marks the date cleaned once none is left",
  )
  .requiredOption("--date <YYYY-MM-DD>", "the partition (required)")
  .option(
    "--batch <n>",
    "rows per DELETE (env SLUICE_DELETE_BATCH, default 1000)",
    positiveInt("--batch", 100_000),
  )
  .option(
    "--budget-ms <n>",
    "stop after this long with progress saved (env SLUICE_CLEANUP_BUDGET_MS)",
    positiveInt("--budget-ms"),
  )
  .option("--dry-run", "say which parts and rows would be compared and deleted; change nothing")
  .addHelpText(
    "after",
    example(
      "sluice cleanup --date 2025-10-13",
      "sluice cleanup --date 2025-10-13 --batch 5000 --budget-ms 600000",
    ),
  )
  .action((_o, cmd) => runCli("cleanup", cmd.optsWithGlobals()));

program
  .command("backlog")
  .description("archive, verify and clean every date older than the hot retention")
  .option(
    "--retention-days <n>",
    "keep this many days hot (env HOT_RETENTION_DAYS, default 3)",
    (v) => {
      if (!/^\d+$/.test(v))
        throw new InvalidArgumentError("--retention-days must be a whole number");
      return Number(v);
    },
  )
  .option("--today <YYYY-MM-DD>", "count retention back from this day (default: today, UTC)")
  .option("--batch <n>", "rows per DELETE", positiveInt("--batch", 100_000))
  .option("--budget-ms <n>", "per-date cleanup time budget", positiveInt("--budget-ms"))
  .option("--dry-run", "list the dates and what archive would write for each; change nothing")
  .addHelpText(
    "after",
    example("sluice backlog", "sluice --config sluice.config.json backlog --dry-run"),
  )
  .action((_o, cmd) => runCli("backlog", cmd.optsWithGlobals()));

program
  .command("serve")
  .description("the HTTP API: ingest, stats, admin (env PORT, HOST, ADMIN_TOKEN)")
  .option("--port <n>", "port (env PORT, default 8080; 0: any free port)", (v) => {
    if (!/^\d+$/.test(v) || Number(v) > 65_535)
      throw new InvalidArgumentError("--port must be a whole number from 0 to 65535");
    return Number(v);
  })
  .option("--host <address>", "address to listen on (env HOST, default 127.0.0.1)")
  .addHelpText("after", example("ADMIN_TOKEN=$(openssl rand -hex 24) sluice serve --port 8080"))
  .action((_o, cmd) => runCli("serve", cmd.optsWithGlobals()));

program
  .command("demo")
  .description("the whole flow on generated data in ./data/demo: prepare, archive, verify, clean")
  .option("--count <n>", "rows per day", positiveInt("--count"), 100_000)
  .option("--days <n>", "days of data, ending today", positiveInt("--days", 60), 6)
  .addHelpText("after", example("sluice demo --days 6 --count 100000"))
  .action((_o, cmd) => runCli("demo", cmd.optsWithGlobals()));

// The env file before any command reads the environment; what the environment has stays.
program.hook("preSubcommand", (cmd) => {
  const file = cmd.opts<{ envFile?: string }>().envFile;
  if (file === undefined) return;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new CommanderError(2, "sluice.envFile", `--env-file ${file}: ${(err as Error).message}`);
  }
  for (const [name, value] of Object.entries(parseEnv(text))) process.env[name] ??= value;
});

if (process.argv.length <= 2) {
  program.outputHelp();
  process.exit(0);
}
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    if (
      err.code === "commander.helpDisplayed" ||
      err.code === "commander.version" ||
      err.exitCode === 0
    ) {
      process.exit(0);
    }
    const message = err.message.replace(/^error: /, "").replace(/\s*\n\s*/g, " ");
    // A refused command with --json still answers in the one shape every command has.
    if (process.argv.includes("--json")) {
      process.stdout.write(`${JSON.stringify({ ok: false, error: "bad_input", message })}\n`);
    }
    process.stderr.write(`sluice: ${message}\n`);
    process.exit(2);
  }
  throw err;
}
