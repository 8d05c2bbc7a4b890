import type { SqlSource } from "../sql/source.js";
import { ContainerIds } from "./container-ids.js";
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
 * The edges one generation away from `ids`, a batch per IN-list of at most `idsPerStatement`:
 * those whose parent (forward) or child (backward) is one of them.
 */
export async function* lineageEdges(
  source: SqlSource,
  ids: Iterable<string>,
  direction: Direction,
  options: { idsPerStatement?: number; signal?: AbortSignal } = {},
): AsyncGenerator<LineageEdge[]> {
  const q = source.dialect.quote;
  const from = direction === "forward" ? "PARENT_CONTAINERID" : "CHILD_CONTAINERID";
  for (const batch of idBatches(ids, options.idsPerStatement ?? 1000)) {
    options.signal?.throwIfAborted();
    const rows = await source.query<Record<string, unknown>>(
      `SELECT ${q("PARENT_CONTAINERID")} AS p, ${q("CHILD_CONTAINERID")} AS c, ${q("RELATION")} AS r
       FROM ${q("container_lineage")} WHERE ${q(from)} IN (${placeholders(batch.length)})`,
      batch,
    );
    yield rows.map((row) => ({
      parent: String(row.p),
      child: String(row.c),
      relation: String(row.r),
    }));
  }
}

/** What a walk ends with: the containers reached (seeds first, each once) and the generations. */
export interface LineageEnd {
  containers: ContainerIds;
  depth: number;
}

/**
 * Walk `container_lineage` from the seed containers, one generation at a time, each
 * generation's ids in IN-lists of at most `idsPerStatement`, yielding each statement's edges
 * as they are found. Holds the containers reached (packed), never the edges: a generation is
 * the ids numbered since the one before. Seeds given as ContainerIds are extended in place.
 */
export async function* walkLineage(
  source: SqlSource,
  seeds: Iterable<string>,
  direction: Direction,
  options: { idsPerStatement?: number; signal?: AbortSignal } = {},
): AsyncGenerator<LineageEdge[], LineageEnd> {
  const seen = seeds instanceof ContainerIds ? seeds : ContainerIds.from(seeds);
  let depth = 0;
  for (let from = 0, to = seen.size; from < to; from = to, to = seen.size) {
    for await (const batch of lineageEdges(source, range(seen, from, to), direction, options)) {
      for (const edge of batch) seen.add(direction === "forward" ? edge.child : edge.parent);
      if (batch.length > 0) yield batch;
    }
    if (seen.size > to) depth++;
  }
  return { containers: seen, depth };
}

function* range(ids: ContainerIds, from: number, to: number): Generator<string> {
  for (let i = from; i < to; i++) yield ids.at(i);
}

/** The whole lineage at once (walkLineage, collected): for callers that need it all anyway. */
export async function traceLineage(
  source: SqlSource,
  seeds: Iterable<string>,
  direction: Direction,
  options: { idsPerStatement?: number; signal?: AbortSignal } = {},
): Promise<Lineage> {
  const edges: LineageEdge[] = [];
  const walk = walkLineage(source, seeds, direction, options);
  for (;;) {
    const step = await walk.next();
    if (step.done)
      return { containers: [...step.value.containers], edges, depth: step.value.depth };
    for (const e of step.value) edges.push(e);
  }
}
