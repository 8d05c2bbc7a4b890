import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, callJson, describe, fmt, setToken } from "./api.js";
import { BarChart, DayLine } from "./charts.js";
import { DateField } from "./date-field.js";
import { TokenForm } from "./token.js";

interface Coverage {
  hot: string[];
  archive: string[];
  both: string[];
  unanswered: string[];
  missing: string[];
}
interface TopPaths {
  from: string;
  to: string;
  paths: { path: string; views: number }[];
  coverage: Coverage;
}
interface PathDaily {
  path: string;
  days: { date: string; views: number; tier: string }[];
}

const day = (offset: number) =>
  new Date(Date.now() - offset * 86_400_000).toISOString().slice(0, 10);

export function StatsPage() {
  const [from, setFrom] = useState(day(6));
  const [to, setTo] = useState(day(0));
  const [top, setTop] = useState<TopPaths | null>(null);
  const [daily, setDaily] = useState<PathDaily | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [needToken, setNeedToken] = useState(false);

  const failed = (err: unknown) => {
    if (err instanceof ApiError && err.status === 401) {
      setToken("stats", null);
      setNeedToken(true);
    }
    setMessage(describe(err));
  };

  // Only the latest request's answer is drawn: an earlier one that arrives late is dropped.
  const latest = useRef(0);

  const load = async () => {
    const mine = ++latest.current;
    setMessage(null);
    setDaily(null);
    try {
      const body = await callJson<TopPaths>(
        "stats",
        `/api/stats/top-paths?from=${from}&to=${to}&limit=20`,
      );
      if (mine === latest.current) setTop(body);
    } catch (err) {
      if (mine !== latest.current) return;
      setTop(null);
      failed(err);
    }
  };

  const open = async (path: string) => {
    const mine = ++latest.current;
    try {
      const q = new URLSearchParams({ path, from, to });
      const body = await callJson<PathDaily>("stats", `/api/stats/path-daily?${q}`);
      if (mine === latest.current) setDaily(body);
    } catch (err) {
      if (mine === latest.current) failed(err);
    }
  };

  // biome-ignore lint/correctness/useExhaustiveDependencies: the first range loads once; later ones on submit
  useEffect(() => {
    void load();
  }, []);

  return (
    <section aria-labelledby="stats-h">
      <h2 id="stats-h">Stats</h2>
      {needToken ? <TokenForm group="stats" onChange={() => void load()} /> : null}
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          void load();
        }}
      >
        <DateField id="stats-from" label="From" value={from} onChange={setFrom} />
        <DateField id="stats-to" label="To" value={to} onChange={setTo} />
        <button type="submit">Show</button>
      </form>
      {message ? (
        <p class="message" role="alert">
          {message}
        </p>
      ) : null}
      {top ? (
        <>
          <CoverageNote coverage={top.coverage} />
          <h3>
            Top paths, {top.from} to {top.to}
          </h3>
          {top.paths.length === 0 ? <p class="note">No views in this range.</p> : null}
          <BarChart
            label="Views per path"
            bars={top.paths.map((p) => ({ label: p.path, value: p.views }))}
          />
          <div class="scroll">
            <table data-testid="top-paths">
              <thead>
                <tr>
                  <th>Path</th>
                  <th class="num">Views</th>
                </tr>
              </thead>
              <tbody>
                {top.paths.map((p) => (
                  <tr key={p.path}>
                    <td>
                      <button type="button" class="link" onClick={() => void open(p.path)}>
                        {p.path}
                      </button>
                    </td>
                    <td class="num">{fmt.format(p.views)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      ) : null}
      {daily ? (
        <>
          <h3>{daily.path}: views per day</h3>
          <DayLine
            label={`Views of ${daily.path} per day, by tier`}
            points={daily.days.map((d) => ({ date: d.date, value: d.views, tier: d.tier }))}
          />
          <div class="scroll">
            <table data-testid="path-daily">
              <thead>
                <tr>
                  <th>Date</th>
                  <th class="num">Views</th>
                  <th>From</th>
                </tr>
              </thead>
              <tbody>
                {daily.days.map((d) => (
                  <tr key={d.date}>
                    <td>{d.date}</td>
                    <td class="num">{fmt.format(d.views)}</td>
                    <td>{TIER_WORDS[d.tier] ?? d.tier}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      ) : null}
    </section>
  );
}

const TIER_WORDS: Record<string, string> = {
  hot: "hot table",
  archive: "counts of the archived rows cleanup deleted",
  both: "hot rows + counts of the rows cleanup deleted",
};

/** Where the range's days were answered from; days left out are named, never silent. */
function CoverageNote(props: { coverage: Coverage }) {
  const c = props.coverage;
  const parts: [string, string[]][] = [
    ["from the hot table", c.hot],
    ["from the counts of the rows cleanup deleted", c.archive],
    ["from both", c.both],
    ["not answerable (rows deleted without rollups)", c.unanswered],
    ["with no rows", c.missing],
  ];
  return (
    <ul class="coverage" data-testid="coverage">
      {parts
        .filter(([, days]) => days.length > 0)
        .map(([what, days]) => (
          <li key={what} title={days.join(", ")}>
            {days.length} day{days.length > 1 ? "s" : ""} {what}
            {days.length <= 3 ? `: ${days.join(", ")}` : ""}
          </li>
        ))}
    </ul>
  );
}
