import type { Row } from "../sql/source.js";
import { ContainerIds } from "./container-ids.js";
import type { EventDomain } from "./events.js";

/** One bar of the MSD pareto: defect quantity traced back to an upstream station/equipment. */
export interface ParetoEntry {
  workcenter: string;
  equipment: string;
  defectQty: number;
  /** Defective containers whose history passed through it. */
  containers: number;
  /** Of all the bars' quantity: a defect is credited to every station it went through. */
  percent: number;
  cumulativePercent: number;
  /** Of the total defect quantity: how much of it went through this station/equipment. */
  defectShare: number;
}

export interface MsdResult {
  totalDefectQty: number;
  defectiveContainers: number;
  pareto: ParetoEntry[];
}

/**
 * The order MSD reads its domains in: the pareto credits each defective container's quantity
 * to the upstream stations as upstream_history streams by, so the defects come first.
 */
export const MSD_DOMAIN_ORDER: readonly EventDomain[] = ["defect_records", "upstream_history"];

interface Bar {
  index: number;
  workcenter: string;
  equipment: string;
  qty: number;
  containers: number;
}

/** Compressed adjacency lists over container indices: the items of node x are at[start[x]..start[x+1]). */
interface Adjacency {
  start: Int32Array;
  at: Int32Array;
}

/**
 * Mid-section-defect trace-back, computed while the rows stream. A container's history is
 * its own upstream_history and that of its ancestors (a split child's rows start at the
 * split; what it went through before is in its parent's rows). Each defective container's
 * DEFECT_QTY is credited once to every WORKCENTER/EQUIPMENT of that history.
 *
 * Feed order: `addLineage` (edges among the containers), `addDefects` (all defect_records),
 * then `addUpstream` (upstream_history). Containers are numbered once, from the request's
 * list; everything else is typed arrays over those numbers (quantities, lineage, who credits
 * whom, a bitset of the bars each defective container was credited to) plus two numbers per
 * bar. Never the rows, and no object per container: at 114K containers the state
 * is a few MB, which keeps V8's heap (sized from what is live) small for the whole request.
 */
export class MsdPareto {
  private readonly index: ContainerIds;
  /** Lineage edges among the containers: edgeChild[i] inherits from edgeParent[i]. */
  private edgeChild: Int32Array;
  private edgeParent: Int32Array;
  private edgeCount = 0;
  /** Defect quantity per container; dropped once `prepare` has taken the defective ones'. */
  private qty: Float64Array;
  private readonly hasDefect: Uint8Array;
  private defectQtyTotal = 0;
  /** Per container, the defective containers (by rank) whose history includes its rows. */
  private creditors: Adjacency | null = null;
  private defectiveQty = new Float64Array(0);
  /** Bars by WORKCENTER, then EQUIPMENT: no key string built per row. */
  private readonly bars = new Map<string, Map<string, Bar>>();
  private barCount = 0;
  /** For defective container k, bit b set once bar b was credited: bitsets[k * words + w]. */
  private bitsets = new Uint32Array(0);
  private words = 0;

  /** `containers`: every container of the request (the seeds and their ancestors). */
  constructor(containers: Iterable<string>) {
    this.index = containers instanceof ContainerIds ? containers : ContainerIds.from(containers);
    this.qty = new Float64Array(this.index.size);
    this.hasDefect = new Uint8Array(this.index.size);
    // Sized for a lineage of one edge per two containers, so it is rarely grown and dropped.
    this.edgeChild = new Int32Array(Math.max(1024, this.index.size >> 1));
    this.edgeParent = new Int32Array(this.edgeChild.length);
  }

  /** Feed lineage edges (child inherits from parent); edges outside the containers are left out. */
  addLineage(edges: Iterable<{ parent: string; child: string }>): void {
    for (const e of edges) {
      const child = this.index.indexOf(e.child);
      const parent = this.index.indexOf(e.parent);
      if (child < 0 || parent < 0) continue;
      if (this.edgeCount === this.edgeChild.length) {
        this.edgeChild = grow(this.edgeChild);
        this.edgeParent = grow(this.edgeParent);
      }
      this.edgeChild[this.edgeCount] = child;
      this.edgeParent[this.edgeCount++] = parent;
    }
  }

  /** Feed a batch of defect_records rows (all of them before any upstream_history row). */
  addDefects(rows: readonly Row[]): void {
    if (this.creditors) throw new Error("MsdPareto: defect_records after upstream_history");
    for (const r of rows) {
      const x = this.index.indexOf(String(r.CONTAINERID));
      const qty = Number(r.DEFECT_QTY);
      if (x < 0 || !Number.isFinite(qty)) continue;
      this.qty[x] = (this.qty[x] as number) + qty;
      this.hasDefect[x] = 1;
      this.defectQtyTotal += qty;
    }
  }

  /** Each defective container, credited to itself and every ancestor (once each). */
  private prepare(): Adjacency {
    const n = this.index.size;
    const m = this.edgeCount;
    const parents = adjacency(n, this.edgeChild.subarray(0, m), this.edgeParent.subarray(0, m));
    this.edgeChild = new Int32Array(0);
    this.edgeParent = this.edgeChild;
    const defective: number[] = [];
    for (let x = 0; x < n; x++) if (this.hasDefect[x]) defective.push(x);
    this.defectiveQty = Float64Array.from(defective, (x) => this.qty[x] as number);
    this.qty = new Float64Array(0);
    // Walk each defective container's ancestors twice: to count, then to fill. A stamp per
    // container (the walk's number) marks the ones already reached, instead of a Set per walk.
    const stamp = new Int32Array(n);
    const stack: number[] = [];
    const walk = (k: number, visit: (x: number) => void) => {
      stamp[defective[k] as number] = k + 1;
      stack.push(defective[k] as number);
      while (stack.length > 0) {
        const x = stack.pop() as number;
        visit(x);
        for (let e = parents.start[x] as number; e < (parents.start[x + 1] as number); e++) {
          const p = parents.at[e] as number;
          if (stamp[p] !== k + 1) {
            stamp[p] = k + 1;
            stack.push(p);
          }
        }
      }
    };
    const start = new Int32Array(n + 1);
    for (let k = 0; k < defective.length; k++)
      walk(k, (x) => {
        start[x + 1] = (start[x + 1] as number) + 1;
      });
    for (let x = 0; x < n; x++) start[x + 1] = (start[x + 1] as number) + (start[x] as number);
    const at = new Int32Array(start[n] as number);
    const fill = start.slice(0, n);
    stamp.fill(0);
    for (let k = 0; k < defective.length; k++) {
      walk(k, (x) => {
        at[fill[x] as number] = k;
        fill[x] = (fill[x] as number) + 1;
      });
    }
    return { start, at };
  }

  private bar(workcenter: string, equipment: string): Bar {
    let station = this.bars.get(workcenter);
    if (!station) {
      station = new Map();
      this.bars.set(workcenter, station);
    }
    let bar = station.get(equipment);
    if (!bar) {
      bar = { index: this.barCount++, workcenter, equipment, qty: 0, containers: 0 };
      station.set(equipment, bar);
      const words = Math.ceil(this.barCount / 32);
      if (words > this.words) {
        // Widen every defective container's bitset by one word.
        const n = this.defectiveQty.length;
        const wider = new Uint32Array(n * words);
        for (let i = 0; i < n; i++) {
          wider.set(this.bitsets.subarray(i * this.words, (i + 1) * this.words), i * words);
        }
        this.bitsets = wider;
        this.words = words;
      }
    }
    return bar;
  }

  /** Feed a batch of upstream_history rows. */
  addUpstream(rows: readonly Row[]): void {
    this.creditors ??= this.prepare();
    const { start, at } = this.creditors;
    for (const r of rows) {
      const x = this.index.indexOf(String(r.CONTAINERID));
      if (x < 0 || start[x] === start[x + 1]) continue;
      const bar = this.bar(String(r.WORKCENTER), String(r.EQUIPMENT));
      const word = bar.index >>> 5;
      const bit = 1 << (bar.index & 31);
      for (let e = start[x] as number; e < (start[x + 1] as number); e++) {
        const k = at[e] as number;
        const w = k * this.words + word;
        if ((this.bitsets[w] as number) & bit) continue;
        this.bitsets[w] = (this.bitsets[w] as number) | bit;
        bar.qty += this.defectiveQty[k] as number;
        bar.containers += 1;
      }
    }
  }

  /** Feed a batch of `domain`'s rows (in {@link MSD_DOMAIN_ORDER}). */
  add(domain: EventDomain, rows: readonly Row[]): void {
    if (domain === "defect_records") this.addDefects(rows);
    else this.addUpstream(rows);
  }

  /** The pareto: bars by defect quantity, largest first, with cumulative percent. */
  result(): MsdResult {
    const bars = [...this.bars.values()].flatMap((station) => [...station.values()]);
    let total = 0;
    for (const b of bars) total += b.qty;
    const entries = bars
      .map(({ workcenter, equipment, qty, containers }) => ({
        workcenter,
        equipment,
        defectQty: qty,
        containers,
      }))
      .sort(
        (a, b) =>
          b.defectQty - a.defectQty ||
          cmp(a.workcenter, b.workcenter) ||
          cmp(a.equipment, b.equipment),
      );
    let cumulative = 0;
    const defects = this.defectQtyTotal;
    const pareto = entries.map((e) => {
      cumulative += e.defectQty;
      return {
        ...e,
        percent: total ? round((e.defectQty / total) * 100) : 0,
        cumulativePercent: total ? round((cumulative / total) * 100) : 0,
        defectShare: defects ? round((e.defectQty / defects) * 100) : 0,
      };
    });
    let defectiveContainers = 0;
    for (let x = 0; x < this.hasDefect.length; x++)
      defectiveContainers += this.hasDefect[x] as number;
    return { totalDefectQty: this.defectQtyTotal, defectiveContainers, pareto };
  }
}

/** Twice the room, the items kept. */
function grow(a: Int32Array): Int32Array {
  const wider = new Int32Array(a.length * 2);
  wider.set(a);
  return wider;
}

/** Edges (from[i] -> to[i]) over nodes 0..n-1 as compressed adjacency lists of `from`. */
function adjacency(n: number, from: Int32Array, to: Int32Array): Adjacency {
  const start = new Int32Array(n + 1);
  for (const f of from) start[f + 1] = (start[f + 1] as number) + 1;
  for (let x = 0; x < n; x++) start[x + 1] = (start[x + 1] as number) + (start[x] as number);
  const at = new Int32Array(from.length);
  const fill = start.slice(0, n);
  for (let i = 0; i < from.length; i++) {
    const f = from[i] as number;
    at[fill[f] as number] = to[i] as number;
    fill[f] = (fill[f] as number) + 1;
  }
  return { start, at };
}

const round = (x: number) => Math.round(x * 100) / 100;
/** Code-point order: the same on every runtime and locale. */
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
