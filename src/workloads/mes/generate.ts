import type { Row } from "../../core/sql/source.js";
import { mulberry32 } from "../random.js";
import {
  MAX_DAYS,
  MERGE_AFTER,
  MERGE_WINDOW_S,
  MES_EQUIPMENT,
  MES_HOTSPOTS,
  MES_ROUTE,
  OCCURS_INLINE,
  OCCURS_TMTT,
  PLATING,
  PRODUCTS,
  type Product,
  SPLIT_AFTER,
  START,
  STATIONS,
  type StationDef,
  TMTT,
  mesLots,
} from "./factory.js";

/**
 * A generated semiconductor back-end factory for the MES trace tables, deterministic for a
 * given scale. Scale 1 is the largest factory the trace is built for: ~70K lots, ~525K lot_moves rows, ~114K containers,
 * ~1M rows in each of upstream_history and defect_records. Everything is proportional to it.
 *
 * The story it tells:
 * - Lots start over up to five months; each is one container that goes through the route
 *   below, station by station, over a few days (queue, then track-in, then track-out).
 *   Pre-plated products (DFN2020, SOD123F) skip PLATING.
 * - Containers split: a child container is split off its parent (same lot), mostly after
 *   WIRE_BOND..TRIM_FORM (engineering holds, partial lots) and after TMTT (packing), and
 *   children split again, so lineage is several levels deep. Containers of different lots
 *   of the same product (or siblings) that meet at TRIM_FORM or PLATING are sometimes merged:
 *   the smaller one ends there (edge merged -> kept, 'MERGE'), the kept one carries both. A
 *   container is never merged into one of its ancestors, so the lineage graph has no cycles.
 * - upstream_history holds one row per step (SPEC) of each station a container passed, on the
 *   equipment of its move; a child's history starts after its split, the rest of its past is
 *   its ancestors' history (so a trace-back must walk the lineage).
 * - defect_records: a few scrap codes at the in-line stations, and most defects found at TMTT.
 *   Three units upstream ({@link MES_HOTSPOTS}) cause most of TMTT's defects, in the units of
 *   every container that went through them, themselves or through an ancestor, so that a
 *   pareto by upstream WORKCENTER/EQUIPMENT has a clear head.
 */

/** One batch of generated rows, in the columns of each table (see schema.ts). */
export interface MesBatch {
  lots: number;
  containers: number;
  lot_moves: Row[];
  container_lineage: Row[];
  upstream_history: Row[];
  defect_records: Row[];
}

/** FNV-1a of a string: the PRNG seed of a scale. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Epoch seconds to `YYYY-MM-DDTHH:MM:SSZ`. */
export function isoSeconds(s: number): string {
  return `${new Date(s * 1000).toISOString().slice(0, 19)}Z`;
}

interface Container {
  id: string;
  lot: string;
  product: Product;
  qty: number;
  /** When it can be tracked in next (epoch seconds). */
  ready: number;
  /** Per hotspot: the fraction of its units that went through that unit. */
  hot: number[];
  alive: boolean;
}

/**
 * The factory at `scale`, as batches of `lotsPerBatch` consecutive lots (a few thousand rows
 * each at the default): every container of a batch, its moves, lineage, history and defects.
 * Holds one batch at a time, so any scale runs in the same memory.
 */
export function* generateMesFactory(scale: number, lotsPerBatch = 128): Generator<MesBatch> {
  const rand = mulberry32(fnv1a(`sluice-mes:${scale}`));
  const lots = mesLots(scale);
  // A small factory runs for fewer days, so that its lots still meet (merges) at a station.
  const days = Math.min(MAX_DAYS, Math.max(7, Math.round(lots / 20)));
  const spacing = (days * 86_400) / lots;
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const between = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const hotIndex = new Map(MES_HOTSPOTS.map((h, i) => [h.equipment, i]));
  let nextContainer = 1;
  const newId = () => `C${String(nextContainer++).padStart(8, "0")}`;

  function pickProduct(): Product {
    let r = rand();
    for (const p of PRODUCTS) {
      r -= p.weight;
      if (r < 0) return p;
    }
    return PRODUCTS[0];
  }

  for (let first = 0; first < lots; first += lotsPerBatch) {
    const batch: MesBatch = {
      lots: Math.min(lotsPerBatch, lots - first),
      containers: 0,
      lot_moves: [],
      container_lineage: [],
      upstream_history: [],
      defect_records: [],
    };
    const list: Container[] = [];
    /** child -> parents, for this batch (merges and splits stay inside a batch). */
    const parentsOf = new Map<string, string[]>();
    const link = (parent: string, child: string, relation: "SPLIT" | "MERGE", ts: number) => {
      parentsOf.set(child, [...(parentsOf.get(child) ?? []), parent]);
      batch.container_lineage.push({
        PARENT_CONTAINERID: parent,
        CHILD_CONTAINERID: child,
        RELATION: relation,
        TS: isoSeconds(ts),
      });
    };
    /** Whether `a` is `b` or one of its ancestors, by the edges so far. */
    const isAncestor = (a: string, b: string): boolean => {
      const todo = [b];
      const seen = new Set<string>();
      for (let x = todo.pop(); x !== undefined; x = todo.pop()) {
        if (x === a) return true;
        if (seen.has(x)) continue;
        seen.add(x);
        todo.push(...(parentsOf.get(x) ?? []));
      }
      return false;
    };
    for (let i = first; i < first + batch.lots; i++) {
      const product = pickProduct();
      list.push({
        id: newId(),
        lot: `L${String(i + 1).padStart(7, "0")}`,
        product,
        qty: Math.round((product.qty * (0.85 + 0.3 * rand())) / 100) * 100,
        ready: START + Math.floor((i + rand()) * spacing),
        hot: MES_HOTSPOTS.map(() => 0),
        alive: true,
      });
    }

    for (let s = 0; s < MES_ROUTE.length; s++) {
      const st = STATIONS[s] as StationDef;
      const units = MES_EQUIPMENT[st.name];
      const here = list.filter((c) => c.alive && (s !== PLATING || c.product.plating));
      for (const c of here) visit(c, st, units, s);
      split(here, s);
      merge(here, s);
    }
    batch.containers = list.length;
    yield batch;

    function visit(c: Container, st: StationDef, units: readonly string[], s: number): void {
      const equipment = pick(units);
      const operator = `OP${s + 1}${String(between(1, 15)).padStart(2, "0")}`;
      // Queue: mostly a few hours, sometimes most of a day.
      const trackIn = c.ready + 900 + Math.floor(rand() * rand() * 20 * 3600);
      const work = st.hours * 3600 * (0.7 + 0.6 * rand()) * (0.5 + c.qty / 20_000);
      const duration = Math.max(st.steps.length * 600, Math.floor(work));
      const trackOut = trackIn + duration;
      // Step boundaries: equal shares of the move, each at least 10 minutes.
      const bounds = st.steps.map((_, k) => trackIn + Math.floor((duration * k) / st.steps.length));
      bounds.push(trackOut);
      const qtyIn = c.qty;
      st.steps.forEach((step, k) => {
        batch.upstream_history.push({
          CONTAINERID: c.id,
          WORKCENTER: st.name,
          EQUIPMENT: equipment,
          SPEC: `${st.code}-${step}-${c.product.name}`,
          TRACKIN_TS: isoSeconds(bounds[k] as number),
          TRACKOUT_TS: isoSeconds(bounds[k + 1] as number),
          QTY: qtyIn,
          OPERATOR: operator,
        });
      });
      let lost = 0;
      for (const d of st.defects) {
        let n = 0;
        if (rand() < (s === TMTT ? OCCURS_TMTT : OCCURS_INLINE)) {
          n = Math.max(1, Math.round(qtyIn * d.rate * (0.3 + 1.4 * rand())));
        }
        if (s === TMTT) {
          MES_HOTSPOTS.forEach((h, i) => {
            const effect = h.effects[d.code];
            const share = c.hot[i] as number;
            if (effect && share > 0) n += Math.round(qtyIn * share * effect * (0.6 + 0.8 * rand()));
          });
        }
        if (n <= 0) continue;
        n = Math.min(n, qtyIn - lost - 1);
        if (n <= 0) continue;
        lost += n;
        const end = bounds[d.step + 1] as number;
        batch.defect_records.push({
          CONTAINERID: c.id,
          WORKCENTER: st.name,
          EQUIPMENT: equipment,
          REASON_CODE: d.code,
          DEFECT_QTY: n,
          TS: isoSeconds(end - between(0, 300)),
        });
      }
      c.qty = qtyIn - lost;
      batch.lot_moves.push({
        CONTAINERID: c.id,
        LOTID: c.lot,
        WORKCENTER: st.name,
        EQUIPMENT: equipment,
        SPEC: `${st.code}-${c.product.name}`,
        TRACKIN_TS: isoSeconds(trackIn),
        TRACKOUT_TS: isoSeconds(trackOut),
        QTY: c.qty,
        OPERATOR: operator,
      });
      const h = hotIndex.get(equipment);
      if (h !== undefined) c.hot[h] = 1;
      c.ready = trackOut;
    }

    function split(here: Container[], s: number): void {
      const p = SPLIT_AFTER[s] as number;
      if (p === 0) return;
      for (const parent of here) {
        if (parent.qty < 1000 || rand() >= p) continue;
        const qty = Math.round((parent.qty * (0.2 + 0.3 * rand())) / 100) * 100;
        const ts = parent.ready + between(60, 1800);
        const child: Container = {
          id: newId(),
          lot: parent.lot,
          product: parent.product,
          qty,
          ready: ts,
          hot: [...parent.hot],
          alive: true,
        };
        parent.qty -= qty;
        parent.ready = ts;
        list.push(child);
        link(parent.id, child.id, "SPLIT", ts);
      }
    }

    function merge(here: Container[], s: number): void {
      const p = MERGE_AFTER[s] as number;
      if (p === 0) return;
      const byReady = [...here].sort((a, b) => a.ready - b.ready || (a.id < b.id ? -1 : 1));
      for (let i = 0; i < byReady.length; i++) {
        const a = byReady[i] as Container;
        if (!a.alive || rand() >= p) continue;
        for (let j = i + 1; j < byReady.length; j++) {
          const b = byReady[j] as Container;
          if (b.ready - a.ready > MERGE_WINDOW_S) break;
          if (!b.alive || b.product !== a.product) continue;
          const [kept, gone] = a.qty >= b.qty ? [a, b] : [b, a];
          // The kept one must not be an ancestor of the merged one: no cycles in the lineage.
          if (isAncestor(kept.id, gone.id)) continue;
          const ts = Math.max(a.ready, b.ready) + between(300, 3600);
          const total = kept.qty + gone.qty;
          kept.hot = kept.hot.map(
            (x, k) => (x * kept.qty + (gone.hot[k] as number) * gone.qty) / total,
          );
          kept.qty = total;
          kept.ready = ts;
          gone.alive = false;
          link(gone.id, kept.id, "MERGE", ts);
          break;
        }
      }
    }
  }
}
