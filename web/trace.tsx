import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, call, callJson, describe, fmt, setToken } from "./api.js";
import { type ParetoBar, ParetoChart } from "./charts.js";
import { DateField } from "./date-field.js";
import { TraceJob } from "./job.js";
import { RowWindow, VirtualTable } from "./rows.js";
import { LineageScanner, ndjsonLines } from "./stream.js";
import { TokenForm } from "./token.js";

const PROFILES = ["query_tool", "query_tool_reverse", "mid_section_defect"] as const;
type Profile = (typeof PROFILES)[number];

interface Seeds {
  lots: number;
  moves: number;
  count: number;
  containers: string[];
}
interface LineageView {
  edges: number;
  count: number | null;
  depth: number | null;
}
interface Msd {
  totalDefectQty: number;
  defectiveContainers: number;
  pareto: ParetoBar[];
}
/** What the events request left: the limit it hit, or the rows it streamed. */
type EventsView =
  | { kind: "refused"; limit: number; count: number; message: string }
  | { kind: "rows"; state: "streaming" | "complete" | "incomplete" | "stopped"; rows: RowWindow };

/** Redraws while rows stream are paced, not one per chunk. */
const DRAW_MS = 100;

export function TracePage() {
  const [profile, setProfile] = useState<Profile>("mid_section_defect");
  const [by, setBy] = useState<"lots" | "workcenter">("workcenter");
  const [lots, setLots] = useState("");
  const [workcenter, setWorkcenter] = useState("TMTT");
  const [from, setFrom] = useState("2025-01-01");
  const [to, setTo] = useState(new Date().toISOString().slice(0, 10));
  const [seeds, setSeeds] = useState<Omit<Seeds, "containers"> | null>(null);
  const [lineage, setLineage] = useState<LineageView | null>(null);
  const [events, setEvents] = useState<EventsView | null>(null);
  const [, redraw] = useState(0);
  const [message, setMessage] = useState<string | null>(null);
  const [needToken, setNeedToken] = useState(false);
  const [running, setRunning] = useState(false);
  const [job, setJob] = useState<{ profile: Profile; containers: string[] } | null>(null);
  const [domain, setDomain] = useState<string | null>(null);
  const abort = useRef<AbortController | null>(null);
  /** The containers of the last trace: what a background job or download is asked for. */
  const request = useRef<{ profile: Profile; containers: string[] } | null>(null);

  const run = async () => {
    abort.current?.abort();
    const stop = new AbortController();
    abort.current = stop;
    setSeeds(null);
    setLineage(null);
    setEvents(null);
    setMessage(null);
    setJob(null);
    setDomain(null);
    request.current = null;
    setRunning(true);
    const filter =
      by === "lots"
        ? { lotIds: lots.split(/[\s,]+/).filter((l) => l !== "") }
        : { workcenter, from, to };
    try {
      const s = await callJson<Seeds>("trace", "/api/trace/seed-resolve", {
        method: "POST",
        body: { profile, filter },
        signal: stop.signal,
      });
      setSeeds({ lots: s.lots, moves: s.moves, count: s.count });
      if (s.count === 0) {
        setMessage("No containers match these seeds: nothing to trace.");
        return;
      }
      const containers = await readLineage(profile, s.containers, stop.signal, setLineage);
      request.current = { profile, containers };
      await readEvents(profile, containers, stop.signal, setEvents, () => redraw((n) => n + 1));
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        setToken("trace", null);
        setNeedToken(true);
      }
      if (stop.signal.aborted) {
        setEvents((e) => (e?.kind === "rows" ? { ...e, state: "stopped" } : e));
      }
      setMessage(describe(err));
    } finally {
      setRunning(false);
    }
  };

  const msd = events?.kind === "rows" ? (events.rows.trailer?.msd as Msd | undefined) : undefined;
  const rows = events?.kind === "rows" ? events.rows : null;
  const domains = rows ? [...rows.counts.keys()] : [];
  const shownDomain = domain ?? domains[0] ?? null;

  return (
    <section aria-labelledby="trace-h">
      <h2 id="trace-h">Trace (MES)</h2>
      {needToken ? <TokenForm group="trace" onChange={() => setNeedToken(false)} /> : null}
      <form
        class="trace-form"
        onSubmit={(e) => {
          e.preventDefault();
          void run();
        }}
      >
        <fieldset>
          <legend>Profile</legend>
          {PROFILES.map((p) => (
            <label key={p}>
              <input
                type="radio"
                name="profile"
                value={p}
                checked={profile === p}
                onChange={() => setProfile(p)}
              />{" "}
              {p}
            </label>
          ))}
        </fieldset>
        <fieldset>
          <legend>Seeds</legend>
          <label>
            <input
              type="radio"
              name="by"
              checked={by === "workcenter"}
              onChange={() => setBy("workcenter")}
            />{" "}
            Workcenter and dates
          </label>
          <label>
            <input type="radio" name="by" checked={by === "lots"} onChange={() => setBy("lots")} />{" "}
            Lot ids
          </label>
          {by === "lots" ? (
            <div class="field">
              <label for="trace-lots">Lot ids (one per line or comma separated)</label>
              <textarea
                id="trace-lots"
                rows={4}
                value={lots}
                onInput={(e) => setLots((e.currentTarget as HTMLTextAreaElement).value)}
              />
            </div>
          ) : (
            <div class="row">
              <label for="trace-wc">Workcenter</label>
              <input
                id="trace-wc"
                value={workcenter}
                onInput={(e) => setWorkcenter((e.currentTarget as HTMLInputElement).value)}
              />
              <DateField id="trace-from" label="From" value={from} onChange={setFrom} />
              <DateField id="trace-to" label="To" value={to} onChange={setTo} />
            </div>
          )}
        </fieldset>
        <div class="row">
          <button type="submit" disabled={running}>
            Trace
          </button>
          <button type="button" disabled={!running} onClick={() => abort.current?.abort()}>
            Stop
          </button>
        </div>
      </form>
      {message ? (
        <p class="message" role="alert" data-testid="trace-message">
          {message}
        </p>
      ) : null}
      <dl class="stages" data-testid="stages">
        {seeds ? (
          <>
            <dt>Seeds</dt>
            <dd data-testid="seeds">
              {fmt.format(seeds.lots)} lots, {fmt.format(seeds.moves)} moves,{" "}
              {fmt.format(seeds.count)} containers
            </dd>
          </>
        ) : null}
        {lineage ? (
          <>
            <dt>Lineage</dt>
            <dd data-testid="lineage">
              {fmt.format(lineage.edges)} edges
              {lineage.count !== null
                ? `, ${fmt.format(lineage.count)} containers, depth ${lineage.depth}`
                : " so far…"}
            </dd>
          </>
        ) : null}
        {rows ? (
          <>
            <dt>Events</dt>
            <dd data-testid="events-state" data-state={events?.kind === "rows" ? events.state : ""}>
              {[...rows.counts].map(([d, n]) => `${d}: ${fmt.format(n)}`).join(", ") || "0 rows"} (
              {events?.kind === "rows" ? events.state : ""})
            </dd>
          </>
        ) : null}
      </dl>
      {events?.kind === "refused" ? (
        <div class="refused" role="alert" data-testid="refused">
          <p>
            {fmt.format(events.count)} containers is over this service's limit of{" "}
            {fmt.format(events.limit)} for {profile} (413). A background job has no such limit: it
            writes the result to the store for you to download.
          </p>
          {job ? null : (
            <button type="button" onClick={() => setJob(request.current)}>
              Run as a background job
            </button>
          )}
        </div>
      ) : null}
      {msd ? <Pareto msd={msd} /> : null}
      {rows && shownDomain ? (
        <>
          <h3>Events</h3>
          {domains.length > 1 ? (
            <div class="tabs" role="tablist">
              {domains.map((d) => (
                <button
                  key={d}
                  type="button"
                  role="tab"
                  aria-selected={d === shownDomain}
                  onClick={() => setDomain(d)}
                >
                  {d}
                </button>
              ))}
            </div>
          ) : null}
          <VirtualTable
            key={shownDomain}
            rows={rows.kept.get(shownDomain) ?? []}
            count={rows.counts.get(shownDomain) ?? 0}
          />
          {events?.kind === "rows" && events.state === "complete" && !job ? (
            <button type="button" onClick={() => setJob(request.current)}>
              Download the whole result (as a background job)
            </button>
          ) : null}
        </>
      ) : null}
      {job ? <TraceJob profile={job.profile} containers={job.containers} /> : null}
    </section>
  );
}

/** Stage 2: the lineage's edges counted as they stream; the containers it reached. */
async function readLineage(
  profile: Profile,
  seeds: string[],
  signal: AbortSignal,
  show: (v: LineageView) => void,
): Promise<string[]> {
  const res = await call("trace", "/api/trace/lineage", {
    method: "POST",
    body: { profile, containers: seeds },
    signal,
  });
  const scan = new LineageScanner();
  const decoder = new TextDecoder();
  let drawn = 0;
  show({ edges: 0, count: null, depth: null });
  if (!res.body) throw new Error("the lineage answer has no body");
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    scan.push(decoder.decode(value, { stream: true }));
    if (performance.now() - drawn > DRAW_MS) {
      drawn = performance.now();
      show({ edges: scan.edges, count: null, depth: null });
    }
  }
  scan.push(decoder.decode());
  const containers = scan.member<string[]>("containers");
  if (!containers) throw new Error("the lineage answer ended early (no containers)");
  show({
    edges: scan.edges,
    count: scan.member<number>("count") ?? containers.length,
    depth: scan.member<number>("depth") ?? null,
  });
  return containers;
}

/** Stage 3: the events as NDJSON, drawn as they arrive; a 413 is kept as what it says. */
async function readEvents(
  profile: Profile,
  containers: string[],
  signal: AbortSignal,
  show: (v: EventsView) => void,
  draw: () => void,
): Promise<void> {
  let res: Response;
  // Marks for bench/console.mjs: when the events request left, its first row, its end.
  performance.mark("sluice:events-start");
  try {
    res = await call("trace", "/api/trace/events", {
      method: "POST",
      body: { profile, containers },
      accept: "application/x-ndjson",
      signal,
    });
  } catch (err) {
    if (err instanceof ApiError && err.status === 413 && err.body.error === "too_many_containers") {
      show({
        kind: "refused",
        limit: Number(err.body.limit),
        count: Number(err.body.count),
        message: err.message,
      });
      return;
    }
    throw err;
  }
  if (!res.body) throw new Error("the events answer has no body");
  const rows = new RowWindow();
  show({ kind: "rows", state: "streaming", rows });
  let drawn = 0;
  let first = true;
  for await (const batch of ndjsonLines(res.body)) {
    for (const line of batch) rows.add(line);
    if (first && rows.total() > 0) {
      performance.mark("sluice:first-row");
      first = false;
    }
    if (performance.now() - drawn > DRAW_MS) {
      drawn = performance.now();
      draw();
    }
  }
  performance.mark("sluice:events-end");
  // A body cut short (the server stopped mid-stream) ends without its domains' end lines.
  show({ kind: "rows", state: rows.whole() ? "complete" : "incomplete", rows });
}

function Pareto(props: { msd: Msd }) {
  const { msd } = props;
  useEffect(() => {
    performance.mark("sluice:pareto-drawn");
  }, []);
  return (
    <>
      <h3>Mid-section defect pareto</h3>
      <p class="note">
        {fmt.format(msd.totalDefectQty)} defects on {fmt.format(msd.defectiveContainers)} defective
        containers; a defect counts for every station it went through (defect share).
      </p>
      <ParetoChart bars={msd.pareto} />
      <div class="scroll tall">
        <table data-testid="pareto-table">
          <thead>
            <tr>
              <th>Workcenter</th>
              <th>Equipment</th>
              <th class="num">Defect qty</th>
              <th class="num">Containers</th>
              <th class="num">%</th>
              <th class="num">Cumulative %</th>
              <th class="num">Defect share %</th>
            </tr>
          </thead>
          <tbody>
            {msd.pareto.map((b) => (
              <tr key={`${b.workcenter}/${b.equipment}`}>
                <td>{b.workcenter}</td>
                <td>{b.equipment}</td>
                <td class="num">{fmt.format(b.defectQty)}</td>
                <td class="num">{fmt.format(b.containers)}</td>
                <td class="num">{b.percent}</td>
                <td class="num">{b.cumulativePercent}</td>
                <td class="num">{b.defectShare}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}
