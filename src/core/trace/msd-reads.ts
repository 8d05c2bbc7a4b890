import { rowsOf } from "../json/json-rows.js";
import type { SqlSource } from "../sql/source.js";
import { type EventOptions, domainEvents } from "./events.js";
import { lineageEdges } from "./lineage.js";
import { MSD_DOMAIN_ORDER, MsdPareto, type MsdResult } from "./msd.js";

/** Feed `pareto` the lineage edges among `cids` (each container's parents, where traced). */
export async function feedMsdLineage(
  source: SqlSource,
  pareto: MsdPareto,
  cids: Iterable<string>,
  options: { signal?: AbortSignal } = {},
): Promise<void> {
  for await (const edges of lineageEdges(source, cids, "backward", options)) {
    pareto.addLineage(edges);
  }
}

/**
 * The MSD pareto of `cids` alone: their lineage, defect_records, then upstream_history, read
 * as the events route reads them (same batches, same memory) and counted, never kept.
 */
export async function computeMsdPareto(
  source: SqlSource,
  cids: Iterable<string>,
  options: EventOptions = {},
): Promise<{ rows: { defect_records: number; upstream_history: number }; msd: MsdResult }> {
  const pareto = new MsdPareto(cids);
  await feedMsdLineage(source, pareto, cids, options);
  const rows = { defect_records: 0, upstream_history: 0 };
  for (const domain of MSD_DOMAIN_ORDER) {
    for await (const batch of domainEvents(source, domain, cids, options)) {
      pareto.add(domain, rowsOf(batch));
      rows[domain] += batch.length;
    }
  }
  return { rows, msd: pareto.result() };
}
