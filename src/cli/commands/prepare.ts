import { parsePartitionDate } from "../../core/dates.js";
import { BadInputError } from "../../core/errors.js";
import { checkIdentifier } from "../../core/sql/ident.js";
import { MES_TABLES } from "../../core/trace/tables.js";
import type { Config } from "../../node/config.js";
import { openSource } from "../../node/open.js";
import { checkMesScale, prepareMesData } from "../../workloads/mes/prepare.js";
import { prepareTrafficData } from "../../workloads/traffic/prepare.js";
import { fmt } from "../format.js";
import { type Io, print } from "../io.js";
import { type PrepareOptions, configFrom } from "../options.js";

/** prepare-data: generated page views (--date), or the MES factory (--workload=mes). */
export async function prepareData(opts: PrepareOptions, io: Io): Promise<void> {
  const config = configFrom(opts, {}, true);
  if (opts.workload === "mes") return prepareMes(config, opts, io);
  for (const flag of ["scale", "replace"] as const) {
    if (opts[flag] !== undefined) {
      throw new BadInputError(
        `--${flag} is for --workload=mes (traffic takes --count, --date, --days)`,
      );
    }
  }
  if (opts.date === undefined) {
    throw new BadInputError(
      "required option '--date <YYYY-MM-DD>' not specified (the day to generate for --workload=traffic)",
    );
  }
  const date = parsePartitionDate(opts.date);
  // Before the database file is created: a bad name leaves nothing behind.
  checkIdentifier("table", config.SLUICE_TABLE);
  const source = await openSource(config.SLUICE_DB, { create: true });
  const started = Date.now();
  try {
    const n = await prepareTrafficData(source, {
      count: opts.count,
      date,
      days: opts.days,
      table: config.SLUICE_TABLE,
      onProgress: (done, total) =>
        io.bar.update({ phase: "prepare", table: config.SLUICE_TABLE, date, done, total }),
    });
    io.bar.done();
    const secs = (Date.now() - started) / 1000;
    print(
      opts,
      `inserted ${fmt(n)} rows into ${config.SLUICE_TABLE} (${source.describe()}) in ${secs.toFixed(1)} s`,
      { ok: true, inserted: n, seconds: secs },
    );
  } finally {
    await source.close();
  }
}

/** prepare-data --workload=mes: the MES trace tables, generated at --scale. */
async function prepareMes(config: Config, opts: PrepareOptions, io: Io): Promise<void> {
  const scale = checkMesScale(opts.scale ?? 1);
  const source = await openSource(config.SLUICE_DB, { create: true });
  const started = Date.now();
  try {
    const s = await prepareMesData(source, {
      scale,
      replace: opts.replace === true,
      onProgress: (done, total) =>
        io.bar.update({ phase: "prepare", table: "mes", date: `scale=${scale}`, done, total }),
    });
    io.bar.done();
    const secs = (Date.now() - started) / 1000;
    const tables = MES_TABLES.map((t) => `${t} ${fmt(s[t])}`).join(", ");
    print(
      opts,
      `inserted ${fmt(s.rows)} MES rows at scale ${scale} (${fmt(s.lots)} lots, ${fmt(s.containers)} containers): ${tables} into ${source.describe()} in ${secs.toFixed(1)} s`,
      { ok: true, workload: "mes", ...s, seconds: secs },
    );
  } finally {
    await source.close();
  }
}
