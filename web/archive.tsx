import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError, bytes, callJson, describe, fmt, getToken, setToken } from "./api.js";
import { StackedDays } from "./charts.js";
import { TokenForm } from "./token.js";

/** A row of GET /admin/partitions (the fields the page shows). */
export interface Partition {
  date: string;
  state: string;
  rows: number;
  parts: number;
  bytes: number | null;
  verifiedAt: string | null;
  cleaned: boolean | number;
  cleanedCount: number;
  hotRows: number;
  lateRows: number;
  lastError: string | null;
  job: JobView | null;
}

interface JobView {
  id: string;
  kind: string;
  date: string;
  state: string;
  progress: { phase: string; done: number; total: number | null } | null;
  error: string | null;
}

const TIERS = ["hot", "archived", "cleaned"] as const;

/** A day's rows split by where they are: deleted after a verified archive, archived, hot only. */
function tiersOf(p: Partition): Record<string, number> {
  const cleaned = p.cleanedCount;
  const archived = Math.max(0, p.rows - cleaned);
  const hot = p.rows === 0 ? p.hotRows : p.lateRows;
  return { hot, archived, cleaned };
}

/** A refused token is forgotten, so that the form asks for it again. */
function refused(err: unknown): void {
  if (err instanceof ApiError && err.status === 401) setToken("admin", null);
}

const today = () => new Date().toISOString().slice(0, 10);

export function ArchivePage() {
  const [, redraw] = useState(0);
  const [partitions, setPartitions] = useState<Partition[] | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [date, setDate] = useState(today());
  const [watching, setWatching] = useState<string | null>(null);
  const token = getToken("admin");

  const load = useCallback(async () => {
    if (!getToken("admin")) {
      setPartitions(null);
      return;
    }
    try {
      const body = await callJson<{ partitions: Partition[] }>("admin", "/admin/partitions");
      setPartitions(body.partitions);
      const running = body.partitions.find((p) => p.job?.state === "running");
      if (running) setWatching((w) => w ?? running.date);
    } catch (err) {
      refused(err);
      setMessage(describe(err));
    }
  }, []);

  // biome-ignore lint/correctness/useExhaustiveDependencies: a token entered or forgotten reloads
  useEffect(() => {
    void load();
  }, [load, token]);

  const trigger = async (kind: "archive" | "cleanup") => {
    if (!getToken("admin")) {
      setMessage("An admin token is needed to start a job: nothing was started.");
      return;
    }
    if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) {
      setMessage("Pick a date (YYYY-MM-DD).");
      return;
    }
    setMessage(null);
    try {
      await callJson("admin", `/admin/trigger-${kind}?date=${date}`, { method: "POST" });
      setMessage(`${kind === "archive" ? "Archive" : "Cleanup"} of ${date} started.`);
      setWatching(date);
    } catch (err) {
      refused(err);
      setMessage(describe(err));
    }
  };

  return (
    <section aria-labelledby="archive-h">
      <h2 id="archive-h">Archive</h2>
      <TokenForm group="admin" onChange={() => redraw((n) => n + 1)} />
      {!token ? (
        <output class="notice">
          The archive's partitions and jobs are admin routes: enter the admin token to see them.
        </output>
      ) : null}
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          void trigger("archive");
        }}
      >
        <label for="job-date">Date</label>
        <input
          id="job-date"
          type="date"
          value={date}
          onInput={(e) => setDate((e.currentTarget as HTMLInputElement).value)}
        />
        <button type="submit">Archive</button>
        <button type="button" onClick={() => void trigger("cleanup")}>
          Clean up
        </button>
      </form>
      {message ? (
        <p class="message" role="alert" data-testid="archive-message">
          {message}
        </p>
      ) : null}
      {watching ? (
        <JobProgress
          key={watching}
          date={watching}
          onEnd={(text) => {
            setMessage(text);
            setWatching(null);
            void load();
          }}
        />
      ) : null}
      {partitions ? <Partitions partitions={partitions} /> : null}
    </section>
  );
}

/** The running job of a date, from archive-status every half second, until it ends. */
function JobProgress(props: { date: string; onEnd: (text: string) => void }) {
  const [job, setJob] = useState<JobView | null>(null);
  const [rate, setRate] = useState<number | null>(null);
  const last = useRef<{ at: number; done: number; phase: string } | null>(null);
  const { date } = props;
  // The parent's callback changes with each of its renders; the polling must not restart.
  const onEndRef = useRef(props.onEnd);
  onEndRef.current = props.onEnd;
  useEffect(() => {
    const onEnd = (text: string) => onEndRef.current(text);
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        const s = await callJson<{ job: JobView | null }>(
          "admin",
          `/admin/archive-status?date=${date}`,
        );
        if (stopped) return;
        const j = s.job;
        setJob(j);
        const p = j?.progress;
        const now = performance.now();
        if (p && last.current && last.current.phase === p.phase && now > last.current.at) {
          setRate(((p.done - last.current.done) * 1000) / (now - last.current.at));
        }
        last.current = p ? { at: now, done: p.done, phase: p.phase } : null;
        if (!j || j.state !== "running") {
          onEnd(
            j
              ? `${j.kind} of ${date}: ${j.state}${j.error ? ` (${j.error})` : ""}.`
              : `No job for ${date}.`,
          );
          return;
        }
      } catch (err) {
        if (!stopped) onEnd(describe(err));
        return;
      }
      timer = setTimeout(poll, 500);
    };
    void poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [date]);
  const p = job?.progress;
  return (
    <output class="progress" aria-live="polite" data-testid="job-progress">
      <span>
        {job ? `${job.kind} ${date}` : `Starting ${date}`}
        {p
          ? `: ${p.phase}, ${fmt.format(p.done)}${p.total ? ` of ${fmt.format(p.total)}` : ""} rows`
          : ""}
        {rate !== null && rate > 0 ? `, ${fmt.format(Math.round(rate))} rows/s` : ""}
      </span>
      {p?.total ? <progress max={p.total} value={p.done} /> : <progress />}
    </output>
  );
}

function Partitions(props: { partitions: Partition[] }) {
  const sorted = [...props.partitions].sort((a, b) => a.date.localeCompare(b.date));
  const failed = sorted.filter((p) => p.state === "failed" || p.lastError);
  return (
    <>
      <h3>Rows per day by tier</h3>
      <StackedDays
        label="Rows per day: hot, archived, cleaned"
        tiers={TIERS}
        days={sorted.map((p) => ({ date: p.date, values: tiersOf(p) }))}
      />
      <h3>Partitions</h3>
      {failed.length ? (
        <p class="failed-note">
          {failed.length} partition{failed.length > 1 ? "s" : ""} failed or left an error:{" "}
          {failed.map((p) => p.date).join(", ")}.
        </p>
      ) : null}
      <div class="scroll">
        <table class="partitions" data-testid="partitions">
          <thead>
            <tr>
              <th>Date</th>
              <th>State</th>
              <th class="num">Rows</th>
              <th class="num">Parts</th>
              <th class="num">Bytes</th>
              <th>Verified</th>
              <th>Cleaned</th>
              <th class="num">Late rows</th>
              <th>Last error</th>
            </tr>
          </thead>
          <tbody>
            {[...sorted].reverse().map((p) => (
              <tr
                key={p.date}
                data-date={p.date}
                class={p.state === "failed" ? "failed" : undefined}
              >
                <td>{p.date}</td>
                <td data-field="state">
                  <span class={`state state-${p.state}`}>{p.state}</span>
                </td>
                <td class="num" data-field="rows" data-value={p.rows}>
                  {fmt.format(p.rows)}
                </td>
                <td class="num" data-field="parts" data-value={p.parts}>
                  {p.parts}
                </td>
                <td class="num" data-field="bytes" data-value={p.bytes ?? ""}>
                  {bytes(p.bytes)}
                </td>
                <td data-field="verifiedAt" data-value={p.verifiedAt ?? ""}>
                  {p.verifiedAt ? p.verifiedAt.slice(0, 19).replace("T", " ") : "–"}
                </td>
                <td data-field="cleaned" data-value={p.cleaned ? "true" : "false"}>
                  {p.cleaned ? `yes (${fmt.format(p.cleanedCount)} rows)` : "no"}
                </td>
                <td class="num" data-field="lateRows" data-value={p.lateRows}>
                  {fmt.format(p.lateRows)}
                </td>
                <td data-field="lastError" data-value={p.lastError ?? ""}>
                  {p.lastError ?? ""}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}
