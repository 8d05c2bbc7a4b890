import type { SqlSource } from "../source.js";
import { idBatches, placeholders } from "./readers.js";

/** forward: descendants (query_tool); backward: ancestors (query_tool_reverse, MSD). */
export type Direction = "forward" | "backward";

export interface LineageEdge {
  parent: string;
  child: string;
  relation: string;
}

export interface Lineage {
  /** The seeds and every container reached from them, seeds first, each once. */
  containers: string[];
  edges: LineageEdge[];
  /** Generations walked from the seeds. */
  depth: number;
}

/**
 * Walk `container_lineage` from the seed containers, one generation at a time, each
 * generation's ids in IN-lists of at most `idsPerStatement`. Holds the ids and edges found
 * (the answer), never a table.
 */
export async function traceLineage(
  source: SqlSource,
  seeds: readonly string[],
  direction: Direction,
  options: { idsPerStatement?: number; signal?: AbortSignal } = {},
): Promise<Lineage> {
  const q = source.dialect.quote;
  const from = direction === "forward" ? "PARENT_CONTAINERID" : "CHILD_CONTAINERID";
  const seen = new Set<string>(seeds);
  const containers = [...seen];
  const edges: LineageEdge[] = [];
  let frontier = containers;
  let depth = 0;
  while (frontier.length > 0) {
    const next: string[] = [];
    for (const ids of idBatches(frontier, options.idsPerStatement ?? 1000)) {
      options.signal?.throwIfAborted();
      const rows = await source.query<Record<string, unknown>>(
        `SELECT ${q("PARENT_CONTAINERID")} AS p, ${q("CHILD_CONTAINERID")} AS c, ${q("RELATION")} AS r
         FROM ${q("container_lineage")} WHERE ${q(from)} IN (${placeholders(ids.length)})`,
        ids,
      );
      for (const row of rows) {
        const edge = { parent: String(row.p), child: String(row.c), relation: String(row.r) };
        edges.push(edge);
        const reached = direction === "forward" ? edge.child : edge.parent;
        if (!seen.has(reached)) {
          seen.add(reached);
          containers.push(reached);
          next.push(reached);
        }
      }
    }
    if (next.length > 0) depth++;
    frontier = next;
  }
  return { containers, edges, depth };
}
