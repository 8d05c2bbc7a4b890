import type { Row } from "../source.js";

/** One bar of the MSD pareto: defect quantity traced back to an upstream station/equipment. */
export interface ParetoEntry {
  workcenter: string;
  equipment: string;
  defectQty: number;
  /** Defective containers whose history passed through it. */
  containers: number;
  percent: number;
  cumulativePercent: number;
}

/**
 * Mid-section-defect trace-back, computed while the rows stream. A container's history is
 * its own upstream_history and that of its ancestors (a split child's rows start at the
 * split; what it went through before is in its parent's rows). Each defective container's
 * DEFECT_QTY is credited once to every WORKCENTER/EQUIPMENT of that history.
 *
 * Feed order: `addLineage` (edges among the containers), `addDefects` (all defect_records),
 * then `addUpstream` (upstream_history, a container's rows together). Holds per defective
 * container its quantity, the containers it inherits from, and a bitset of the bars it has
 * been credited to; per bar two numbers. Never the rows.
 */
export class MsdPareto {
  private readonly parents = new Map<string, string[]>();
  private readonly defects = new Map<string, number>();
  /** Defective containers (by index) whose history includes each container's rows. */
  private creditors: Map<string, number[]> | null = null;
  private defective: { cid: string; qty: number }[] = [];
  private readonly bars = new Map<string, { index: number; qty: number; containers: number }>();
  private barKeys: string[] = [];
  /** For defective container i, bit b set once bar b was credited: bitsets[i * words + w]. */
  private bitsets = new Uint32Array(0);
  private words = 0;

  /** Feed lineage edges (child inherits from parent) among the traced containers. */
  addLineage(edges: readonly { parent: string; child: string }[]): void {
    for (const e of edges) {
      const list = this.parents.get(e.child);
      if (list) list.push(e.parent);
      else this.parents.set(e.child, [e.parent]);
    }
  }

  /** Feed a batch of defect_records rows (all of them before any upstream_history row). */
  addDefects(rows: readonly Row[]): void {
    for (const r of rows) {
      const cid = String(r.CONTAINERID);
      const qty = Number(r.DEFECT_QTY);
      if (Number.isFinite(qty)) this.defects.set(cid, (this.defects.get(cid) ?? 0) + qty);
    }
  }

  /** Each defective container, credited to itself and every ancestor (once each). */
  private prepare(): Map<string, number[]> {
    const creditors = new Map<string, number[]>();
    this.defective = [...this.defects].map(([cid, qty]) => ({ cid, qty }));
    for (const [i, d] of this.defective.entries()) {
      const seen = new Set<string>([d.cid]);
      const stack = [d.cid];
      while (stack.length > 0) {
        const x = stack.pop() as string;
        const list = creditors.get(x);
        if (list) list.push(i);
        else creditors.set(x, [i]);
        for (const p of this.parents.get(x) ?? []) {
          if (!seen.has(p)) {
            seen.add(p);
            stack.push(p);
          }
        }
      }
    }
    return creditors;
  }

  private barIndex(key: string): number {
    let bar = this.bars.get(key);
    if (!bar) {
      bar = { index: this.barKeys.length, qty: 0, containers: 0 };
      this.bars.set(key, bar);
      this.barKeys.push(key);
      const words = Math.ceil(this.barKeys.length / 32);
      if (words > this.words) {
        // Widen every container's bitset by one word.
        const n = this.defective.length;
        const wider = new Uint32Array(n * words);
        for (let i = 0; i < n; i++) {
          wider.set(this.bitsets.subarray(i * this.words, (i + 1) * this.words), i * words);
        }
        this.bitsets = wider;
        this.words = words;
      }
    }
    return bar.index;
  }

  /** Feed a batch of upstream_history rows. */
  addUpstream(rows: readonly Row[]): void {
    this.creditors ??= this.prepare();
    for (const r of rows) {
      const credit: number[] | undefined = this.creditors.get(String(r.CONTAINERID));
      if (!credit) continue;
      const key = `${r.WORKCENTER}\u0000${r.EQUIPMENT}`;
      const b = this.barIndex(key);
      const bar = this.bars.get(key) as { qty: number; containers: number };
      const word = b >>> 5;
      const bit = 1 << (b & 31);
      for (const i of credit) {
        const at = i * this.words + word;
        if ((this.bitsets[at] as number) & bit) continue;
        this.bitsets[at] = (this.bitsets[at] as number) | bit;
        bar.qty += (this.defective[i] as { qty: number }).qty;
        bar.containers += 1;
      }
    }
  }

  /** The pareto: bars by defect quantity, largest first, with cumulative percent. */
  result(): { totalDefectQty: number; defectiveContainers: number; pareto: ParetoEntry[] } {
    const total = [...this.bars.values()].reduce((n, b) => n + b.qty, 0);
    const entries = [...this.bars.entries()]
      .map(([key, b]) => {
        const [workcenter = "", equipment = ""] = key.split("\u0000");
        return { workcenter, equipment, defectQty: b.qty, containers: b.containers };
      })
      .sort(
        (a, b) =>
          b.defectQty - a.defectQty ||
          cmp(a.workcenter, b.workcenter) ||
          cmp(a.equipment, b.equipment),
      );
    let cumulative = 0;
    const pareto = entries.map((e) => {
      cumulative += e.defectQty;
      return {
        ...e,
        percent: total ? round((e.defectQty / total) * 100) : 0,
        cumulativePercent: total ? round((cumulative / total) * 100) : 0,
      };
    });
    return {
      totalDefectQty: [...this.defects.values()].reduce((a, b) => a + b, 0),
      defectiveContainers: this.defects.size,
      pareto,
    };
  }
}

const round = (x: number) => Math.round(x * 100) / 100;
/** Code-point order: the same on every runtime and locale. */
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
