import type { JobContext } from "../core/archive/context.js";
import { LEDGER_GAUGES, ledgerGauges } from "../core/archive/ledger-gauges.js";

/**
 * GET /metrics on the Worker: the ledger's gauges in Prometheus text (the Node service's
 * names). Counters of jobs and rows live in one isolate and would reset at random, so the
 * Worker shows what the ledger knows, which every isolate and the cron share.
 */
export async function workerMetrics(
  ctx: JobContext,
): Promise<{ contentType: string; body: string }> {
  const table = ctx.spec.table;
  const g = await ledgerGauges(ctx.ledger, table);
  const label = `{table="${table.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"}`;
  const lines: string[] = [];
  for (const { name, help, value } of LEDGER_GAUGES) {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    const v = value(g);
    if (v !== null) lines.push(`${name}${label} ${v}`);
  }
  return { contentType: "text/plain; version=0.0.4; charset=utf-8", body: `${lines.join("\n")}\n` };
}
