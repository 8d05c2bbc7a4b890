import { useEffect, useState } from "preact/hooks";
import { callJson, describe, fmt, getToken, headersFor } from "./api.js";

interface JobStatus {
  id: string;
  state: "queued" | "running" | "succeeded" | "failed" | "lost";
  rows: Record<string, number>;
  bytes: number | null;
  error: string | null;
  result?: string;
}

/**
 * A trace run as a background job (POST /api/trace/jobs): its state and rows as it goes, and
 * the stored result to download once it succeeded. The page holds none of the result.
 */
export function TraceJob(props: { profile: string; containers: string[] }) {
  const [status, setStatus] = useState<JobStatus | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const { profile, containers } = props;

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async (id: string) => {
      try {
        const s = await callJson<JobStatus>("trace", `/api/trace/jobs/${id}`);
        if (stopped) return;
        setStatus(s);
        if (s.state === "queued" || s.state === "running") timer = setTimeout(() => poll(id), 700);
      } catch (err) {
        if (!stopped) setMessage(describe(err));
      }
    };
    (async () => {
      try {
        const job = await callJson<JobStatus>("trace", "/api/trace/jobs", {
          method: "POST",
          body: { profile, containers },
        });
        if (stopped) return;
        setStatus(job);
        void poll(job.id);
      } catch (err) {
        if (!stopped) setMessage(describe(err));
      }
    })();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [profile, containers]);

  const rows = status ? Object.values(status.rows).reduce((a, b) => a + b, 0) : 0;
  const done = status?.state === "succeeded";
  return (
    <div class="job" data-testid="trace-job" data-state={status?.state ?? "starting"}>
      <h3>Background job</h3>
      {message ? (
        <p class="message" role="alert">
          {message}
        </p>
      ) : null}
      {status ? (
        <>
          <output aria-live="polite">
            {status.state}: {fmt.format(rows)} rows written
            {status.error ? ` (${status.error})` : ""}
          </output>
          {done ? (
            <progress max={1} value={1} />
          ) : status.state === "queued" || status.state === "running" ? (
            <progress />
          ) : null}
          {done ? <Download id={status.id} /> : null}
        </>
      ) : (
        <output>Starting the job…</output>
      )}
    </div>
  );
}

/**
 * The result as a link the browser downloads by itself (streamed to disk, not held by the
 * page). With a trace token the link cannot carry it (never in a URL): then the page fetches
 * the file with the header and hands it over as a blob.
 */
function Download(props: { id: string }) {
  const href = `/api/trace/jobs/${props.id}/result`;
  const name = `trace-${props.id}.json`;
  if (!getToken("trace")) {
    return (
      <a class="button" href={href} download={name} data-testid="job-download">
        Download the result
      </a>
    );
  }
  return (
    <button
      type="button"
      data-testid="job-download"
      onClick={async () => {
        const res = await fetch(href, { headers: headersFor("trace") });
        const url = URL.createObjectURL(await res.blob());
        const a = document.createElement("a");
        a.href = url;
        a.download = name;
        a.click();
        setTimeout(() => URL.revokeObjectURL(url), 10_000);
      }}
    >
      Download the result
    </button>
  );
}
