import type { Row } from "../../core/sql/source.js";
import { mulberry32 } from "../random.js";

/**
 * A generated semiconductor back-end factory for the MES trace tables, deterministic for a
 * given scale. Scale 1 is the seed's case: ~70K lots, ~525K lot_moves rows, ~114K containers,
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

/** The route, in order. TMTT (test, mark, tape) is the late station where defects are found. */
export const MES_ROUTE = [
  "DIE_ATTACH",
  "WIRE_BOND",
  "MOLD",
  "TRIM_FORM",
  "PLATING",
  "TMTT",
  "PACK",
] as const;
export type MesStation = (typeof MES_ROUTE)[number];

interface DefectCode {
  code: string;
  /** The step (index into the station's steps) that records it. */
  step: number;
  /** Defective fraction of the units, when the code occurs on a container at all. */
  rate: number;
}

interface StationDef {
  name: MesStation;
  code: string;
  units: number;
  steps: readonly string[];
  /** Typical processing time of a 10K-unit container, hours. */
  hours: number;
  defects: readonly DefectCode[];
}

const STATIONS: readonly StationDef[] = [
  {
    name: "DIE_ATTACH",
    code: "DA",
    units: 10,
    steps: ["DISPENSE", "BOND", "CURE"],
    hours: 3,
    defects: [
      { code: "DIE_CRACK", step: 1, rate: 0.0001 },
      { code: "EPOXY_VOID", step: 2, rate: 0.00015 },
      { code: "DIE_TILT", step: 1, rate: 0.0001 },
    ],
  },
  {
    name: "WIRE_BOND",
    code: "WB",
    units: 24,
    steps: ["BOND", "PULL_TEST"],
    hours: 6,
    defects: [
      { code: "NSOP", step: 0, rate: 0.00015 },
      { code: "BALL_LIFT", step: 1, rate: 0.0001 },
      { code: "WIRE_SAG", step: 0, rate: 0.0001 },
    ],
  },
  {
    name: "MOLD",
    code: "MD",
    units: 8,
    steps: ["MOLD", "PMC"],
    hours: 2.5,
    defects: [
      { code: "INCOMPLETE_FILL", step: 0, rate: 0.0001 },
      { code: "WIRE_SWEEP", step: 0, rate: 0.00015 },
    ],
  },
  {
    name: "TRIM_FORM",
    code: "TF",
    units: 8,
    steps: ["TRIM_FORM"],
    hours: 1.5,
    defects: [
      { code: "LEAD_BENT", step: 0, rate: 0.00015 },
      { code: "BURR", step: 0, rate: 0.0001 },
    ],
  },
  {
    name: "PLATING",
    code: "PL",
    units: 5,
    steps: ["DEFLASH", "PLATE"],
    hours: 4,
    defects: [
      { code: "PLATING_THIN", step: 1, rate: 0.0001 },
      { code: "DISCOLOR", step: 1, rate: 0.0001 },
    ],
  },
  {
    name: "TMTT",
    code: "TM",
    units: 12,
    steps: ["TEST", "MARK", "VISUAL"],
    hours: 5,
    defects: [
      { code: "OS_OPEN", step: 0, rate: 0.0004 },
      { code: "OS_SHORT", step: 0, rate: 0.0003 },
      { code: "IR_LEAK", step: 0, rate: 0.0005 },
      { code: "VF_FAIL", step: 0, rate: 0.0004 },
      { code: "VBR_FAIL", step: 0, rate: 0.0003 },
      { code: "TRR_FAIL", step: 0, rate: 0.0002 },
      { code: "MARK_ILLEGIBLE", step: 1, rate: 0.0002 },
      { code: "PKG_CRACK", step: 2, rate: 0.0002 },
      { code: "CHIPPING", step: 2, rate: 0.0003 },
      { code: "LEAD_COPLANARITY", step: 2, rate: 0.0003 },
    ],
  },
  { name: "PACK", code: "PK", units: 6, steps: ["TAPE_REEL"], hours: 1.5, defects: [] },
];

const TMTT = MES_ROUTE.indexOf("TMTT");
const PLATING = MES_ROUTE.indexOf("PLATING");

/** The equipment units of each station: `WB-01` .. `WB-24`. */
export const MES_EQUIPMENT: { readonly [S in MesStation]: readonly string[] } = Object.fromEntries(
  STATIONS.map((s) => [
    s.name,
    Array.from({ length: s.units }, (_, i) => `${s.code}-${String(i + 1).padStart(2, "0")}`),
  ]),
) as { [S in MesStation]: string[] };

/**
 * The three upstream units that cause most defects found at TMTT (extra defective fraction of
 * the units that went through them, per TMTT reason code).
 */
export const MES_HOTSPOTS: readonly {
  workcenter: MesStation;
  equipment: string;
  effects: Readonly<Record<string, number>>;
}[] = [
  { workcenter: "WIRE_BOND", equipment: "WB-07", effects: { OS_OPEN: 0.035, OS_SHORT: 0.015 } },
  { workcenter: "MOLD", equipment: "MD-03", effects: { IR_LEAK: 0.01, PKG_CRACK: 0.006 } },
  { workcenter: "DIE_ATTACH", equipment: "DA-02", effects: { VF_FAIL: 0.015 } },
];

const PRODUCTS = [
  { name: "SOT23", weight: 0.35, qty: 12_000, plating: true },
  { name: "SOD123", weight: 0.15, qty: 10_000, plating: true },
  { name: "SOT223", weight: 0.1, qty: 4_000, plating: true },
  { name: "DFN2020", weight: 0.25, qty: 8_000, plating: false },
  { name: "SOD123F", weight: 0.15, qty: 10_000, plating: false },
] as const;
type Product = (typeof PRODUCTS)[number];

/** Lots at scale 1, and the first day a lot starts. */
export const MES_LOTS_AT_SCALE_1 = 70_000;
const START = Date.parse("2025-09-01T00:00:00Z") / 1000;
const MAX_DAYS = 150;
/** Split-off probability per container after each station (index into the route). */
const SPLIT_AFTER = [0.02, 0.06, 0.06, 0.05, 0, 0.38, 0];
/** Merge probability per container after TRIM_FORM and PLATING (needs a partner nearby). */
const MERGE_AFTER = [0, 0, 0, 0.07, 0.07, 0, 0];
const MERGE_WINDOW_S = 12 * 3600;
/** Chance that a reason code occurs on a container at a station at all. */
const OCCURS_INLINE = 0.45;
const OCCURS_TMTT = 0.8;

/** Rows at scale 1 per lot, all four tables together: for a progress estimate only. */
export const MES_ROWS_PER_LOT = 36.8;

/** Lots for a scale: at least one. */
export function mesLots(scale: number): number {
  return Math.max(1, Math.round(MES_LOTS_AT_SCALE_1 * scale));
}

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
