/**
 * Hand-drawn SVG charts: a few hundred bytes each where a chart library costs 20+ KB, and
 * every mark is an element with its figures in data-* attributes and a <title>, which screen
 * readers, tooltips and the browser tests read alike.
 */
import type { ParetoEntry } from "../src/core/trace/msd.js";
import { fmt } from "./api.js";

const W = 640;

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/** Horizontal bars, one per label, longest first as given. */
export function BarChart(props: {
  label: string;
  bars: { label: string; value: number }[];
}) {
  const rowH = 22;
  const left = 180;
  const h = Math.max(1, props.bars.length) * rowH + 8;
  const max = niceMax(Math.max(0, ...props.bars.map((b) => b.value)));
  return (
    <div class="chart-wrap">
      <svg
        class="chart"
        viewBox={`0 0 ${W} ${h}`}
        role="img"
        aria-label={props.label}
        data-chart="bars"
      >
        {props.bars.map((b, i) => {
          const w = ((W - left - 70) * b.value) / max;
          const y = 4 + i * rowH;
          return (
            <g key={b.label} class="bar" data-label={b.label} data-value={b.value}>
              <title>{`${b.label}: ${fmt.format(b.value)}`}</title>
              <text x={left - 6} y={y + 15} class="axis" text-anchor="end">
                {b.label.length > 26 ? `${b.label.slice(0, 25)}…` : b.label}
              </text>
              <rect x={left} y={y + 3} width={Math.max(1, w)} height={rowH - 6} class="fill-0" />
              <text x={left + w + 4} y={y + 15} class="axis">
                {fmt.format(b.value)}
              </text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}

export type TierName = string;

/** One stacked column per day, a segment per tier (classes tier-<name>). */
export function StackedDays(props: {
  label: string;
  tiers: readonly TierName[];
  days: { date: string; values: Record<TierName, number> }[];
}) {
  const h = 220;
  const top = 10;
  const bottom = 40;
  const left = 56;
  const n = Math.max(1, props.days.length);
  const colW = (W - left - 8) / n;
  const max = niceMax(
    Math.max(0, ...props.days.map((d) => props.tiers.reduce((s, t) => s + (d.values[t] ?? 0), 0))),
  );
  const y = (v: number) => top + (h - top - bottom) * (1 - v / max);
  return (
    <figure class="chart-wrap">
      <svg class="chart" viewBox={`0 0 ${W} ${h}`} role="img" aria-label={props.label}>
        <text x={left - 6} y={top + 8} class="axis" text-anchor="end">
          {fmt.format(max)}
        </text>
        <text x={left - 6} y={h - bottom} class="axis" text-anchor="end">
          0
        </text>
        <line x1={left} x2={W} y1={h - bottom} y2={h - bottom} class="rule" />
        {props.days.map((d, i) => {
          let acc = 0;
          const x = left + i * colW;
          return (
            <g key={d.date} class="day" data-date={d.date}>
              {props.tiers.map((t) => {
                const v = d.values[t] ?? 0;
                if (v <= 0) return null;
                const y1 = y(acc + v);
                const y0 = y(acc);
                acc += v;
                return (
                  <rect
                    key={t}
                    x={x + colW * 0.1}
                    width={Math.max(1, colW * 0.8)}
                    y={y1}
                    height={Math.max(1, y0 - y1)}
                    class={`tier-${t}`}
                    data-tier={t}
                    data-value={v}
                  >
                    <title>{`${d.date} ${t}: ${fmt.format(v)} rows`}</title>
                  </rect>
                );
              })}
              {n <= 16 || i % Math.ceil(n / 16) === 0 ? (
                <text
                  x={x + colW / 2}
                  y={h - bottom + 14}
                  class="axis"
                  text-anchor="end"
                  transform={`rotate(-35 ${x + colW / 2} ${h - bottom + 14})`}
                >
                  {d.date.slice(5)}
                </text>
              ) : null}
            </g>
          );
        })}
      </svg>
      <Legend tiers={props.tiers} />
    </figure>
  );
}

export function Legend(props: { tiers: readonly string[] }) {
  return (
    <figcaption class="legend">
      {props.tiers.map((t) => (
        <span key={t}>
          <i class={`swatch tier-${t}`} /> {t}
        </span>
      ))}
    </figcaption>
  );
}

/** Values per day as a line; each point coloured by its day's tier. */
export function DayLine(props: {
  label: string;
  points: { date: string; value: number; tier: string }[];
}) {
  const h = 200;
  const left = 56;
  const top = 10;
  const bottom = 36;
  const n = props.points.length;
  const max = niceMax(Math.max(0, ...props.points.map((p) => p.value)));
  const x = (i: number) => left + (n <= 1 ? (W - left) / 2 : ((W - left - 24) * i) / (n - 1));
  const y = (v: number) => top + (h - top - bottom) * (1 - v / max);
  const path = props.points.map((p, i) => `${i ? "L" : "M"}${x(i)},${y(p.value)}`).join("");
  const tiers = [...new Set(props.points.map((p) => p.tier))];
  return (
    <figure class="chart-wrap">
      <svg class="chart" viewBox={`0 0 ${W} ${h}`} role="img" aria-label={props.label}>
        <text x={left - 6} y={top + 8} class="axis" text-anchor="end">
          {fmt.format(max)}
        </text>
        <line x1={left} x2={W} y1={h - bottom} y2={h - bottom} class="rule" />
        {n > 1 ? <path d={path} class="line" /> : null}
        {props.points.map((p, i) => (
          <g key={p.date} class="point" data-date={p.date} data-value={p.value} data-tier={p.tier}>
            <circle cx={x(i)} cy={y(p.value)} r={4} class={`tier-${p.tier}`}>
              <title>{`${p.date}: ${fmt.format(p.value)} views (${p.tier})`}</title>
            </circle>
            {n <= 14 || i % Math.ceil(n / 14) === 0 ? (
              <text x={x(i)} y={h - bottom + 16} class="axis" text-anchor="middle">
                {p.date.slice(5)}
              </text>
            ) : null}
          </g>
        ))}
      </svg>
      <Legend tiers={tiers} />
    </figure>
  );
}

/** One bar of the pareto, as `POST /api/trace/pareto` and the MSD trailer send it. */
export type ParetoBar = ParetoEntry;

/** The MSD pareto: defect quantity per station/equipment, and the cumulative-percent line. */
export function ParetoChart(props: { bars: ParetoBar[] }) {
  const h = 260;
  const left = 56;
  const right = 40;
  const top = 12;
  const bottom = 70;
  const n = Math.max(1, props.bars.length);
  const colW = (W - left - right) / n;
  const max = niceMax(Math.max(0, ...props.bars.map((b) => b.defectQty)));
  const y = (v: number) => top + (h - top - bottom) * (1 - v / max);
  const yp = (p: number) => top + (h - top - bottom) * (1 - p / 100);
  const line = props.bars
    .map((b, i) => `${i ? "L" : "M"}${left + (i + 0.5) * colW},${yp(b.cumulativePercent)}`)
    .join("");
  return (
    <div class="chart-wrap">
      <svg
        class="chart"
        viewBox={`0 0 ${W} ${h}`}
        role="img"
        aria-label="Defect quantity by station and equipment, with the cumulative percent"
        data-chart="pareto"
      >
        <text x={left - 6} y={top + 8} class="axis" text-anchor="end">
          {fmt.format(max)}
        </text>
        <text x={W - right + 4} y={top + 8} class="axis">
          100%
        </text>
        <line x1={left} x2={W - right} y1={h - bottom} y2={h - bottom} class="rule" />
        {props.bars.map((b, i) => {
          const x = left + i * colW;
          const name = `${b.workcenter} / ${b.equipment}`;
          return (
            <g
              key={name}
              class="pareto-bar"
              data-workcenter={b.workcenter}
              data-equipment={b.equipment}
              data-defect-qty={b.defectQty}
              data-cumulative-percent={b.cumulativePercent}
              data-defect-share={b.defectShare}
            >
              <rect
                x={x + colW * 0.1}
                width={Math.max(1, colW * 0.8)}
                y={y(b.defectQty)}
                height={Math.max(1, h - bottom - y(b.defectQty))}
                class="fill-0"
              >
                <title>{`${name}: ${fmt.format(b.defectQty)} defects, ${b.cumulativePercent.toFixed(1)}% cumulative, defect share ${b.defectShare}%`}</title>
              </rect>
              {n <= 24 ? (
                <text
                  x={x + colW / 2}
                  y={h - bottom + 12}
                  class="axis"
                  text-anchor="end"
                  transform={`rotate(-45 ${x + colW / 2} ${h - bottom + 12})`}
                >
                  {name.length > 16 ? `${name.slice(0, 15)}…` : name}
                </text>
              ) : null}
            </g>
          );
        })}
        {props.bars.length > 1 ? <path d={line} class="line cumulative" /> : null}
      </svg>
    </div>
  );
}
