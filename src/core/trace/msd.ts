import type { Row } from "../source.js";

/** One bar of the MSD pareto: defect quantity traced back to an upstream station/equipment. */
export interface ParetoEntry {
  workcenter: string;
  equipment: string;
  defectQty: number;
  /** Defective containers that went through it. */
  containers: number;
  percent: number;
  cumulativePercent: number;
}

/**
 * Mid-section-defect trace-back, computed while the rows stream: defect_records first (each
 * defective container's total DEFECT_QTY), then upstream_history (each of its upstream
 * WORKCENTER/EQUIPMENT gets that quantity, once per container). Holds one number per
 * defective container and one per station/equipment, never the rows.
 */
export class MsdPareto {
  private readonly defects = new Map<string, number>();
  private readonly bars = new Map<string, { qty: number; containers: number }>();
  /** The last container credited to each bar, so a container counts once per bar. */
  private readonly lastCredited = new Map<string, string>();

  /** Feed a batch of defect_records rows (before any upstream_history row). */
  addDefects(rows: readonly Row[]): void {
    for (const r of rows) {
      const cid = String(r.CONTAINERID);
      const qty = Number(r.DEFECT_QTY);
      if (Number.isFinite(qty)) this.defects.set(cid, (this.defects.get(cid) ?? 0) + qty);
    }
  }

  /** Feed a batch of upstream_history rows. */
  addUpstream(rows: readonly Row[]): void {
    for (const r of rows) {
      const cid = String(r.CONTAINERID);
      const qty = this.defects.get(cid);
      if (!qty) continue;
      const key = `${r.WORKCENTER}\u0000${r.EQUIPMENT}`;
      if (this.lastCredited.get(key) === cid) continue;
      this.lastCredited.set(key, cid);
      const bar = this.bars.get(key) ?? { qty: 0, containers: 0 };
      bar.qty += qty;
      bar.containers += 1;
      this.bars.set(key, bar);
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
