/**
 * Calls to the service, and what its refusals mean in words. Tokens live in sessionStorage
 * (gone with the tab), are sent only as `Authorization: Bearer`, never in a URL, and are
 * never logged.
 */
import { byteSize } from "../src/core/bytes/size.js";

export type TokenGroup = "admin" | "stats" | "trace";

const KEY = (g: TokenGroup) => `sluice.token.${g}`;

export function getToken(group: TokenGroup): string | null {
  return sessionStorage.getItem(KEY(group));
}

export function setToken(group: TokenGroup, token: string | null): void {
  if (token) sessionStorage.setItem(KEY(group), token);
  else sessionStorage.removeItem(KEY(group));
}

/** An answer that was not 2xx: its status, the service's error body, and a sentence. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
    message: string,
  ) {
    super(message);
  }
}

export function headersFor(group: TokenGroup, json = false): Headers {
  const h = new Headers();
  const token = getToken(group);
  if (token) h.set("Authorization", `Bearer ${token}`);
  if (json) h.set("Content-Type", "application/json");
  return h;
}

/** fetch, with the group's token; a non-2xx answer becomes an ApiError. */
export async function call(
  group: TokenGroup,
  path: string,
  init: { method?: string; body?: unknown; accept?: string; signal?: AbortSignal } = {},
): Promise<Response> {
  const headers = headersFor(group, init.body !== undefined);
  if (init.accept) headers.set("Accept", init.accept);
  const res = await fetch(path, {
    method: init.method ?? "GET",
    headers,
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    signal: init.signal,
  });
  if (!res.ok) throw await apiError(group, res);
  return res;
}

export async function callJson<T>(
  group: TokenGroup,
  path: string,
  init: Parameters<typeof call>[2] = {},
): Promise<T> {
  return (await (await call(group, path, init)).json()) as T;
}

async function apiError(group: TokenGroup, res: Response): Promise<ApiError> {
  let body: Record<string, unknown> = {};
  try {
    body = (await res.json()) as Record<string, unknown>;
  } catch {
    // A body that is not JSON (a proxy's page): the status says enough.
  }
  return new ApiError(res.status, body, meaning(group, res.status, body));
}

const TOKEN_NAME: Record<TokenGroup, string> = {
  admin: "ADMIN_TOKEN",
  stats: "STATS_TOKEN",
  trace: "TRACE_TOKEN",
};

/** What a refusal means to the person looking at the page. */
export function meaning(group: TokenGroup, status: number, body: Record<string, unknown>): string {
  const said = typeof body.message === "string" ? body.message : "";
  if (status === 401) {
    return `The token was refused (401): enter this service's ${TOKEN_NAME[group]}.`;
  }
  if (status === 403) {
    return group === "admin"
      ? "Admin actions are off on this service (403): it was started without ADMIN_TOKEN."
      : `Refused (403): ${said}`;
  }
  if (status === 409 && body.error === "locked") {
    const until = typeof body.leaseExpiresAt === "string" ? body.leaseExpiresAt : "later";
    const date = said.match(/\d{4}-\d{2}-\d{2}/)?.[0] ?? "this day";
    return `Another process (${String(body.holder)}) holds ${date} until ${until}: try again then (409).`;
  }
  if (status === 409) return `Not now (409): ${said}`;
  if (status === 413 && body.error === "too_many_containers") {
    return `Too many containers (413): ${String(body.count)} containers, the limit is ${String(body.limit)} (TRACE_EVENTS_CID_LIMIT).`;
  }
  if (status === 429 || status === 503) return `Busy (${status}): ${said} Try again shortly.`;
  if (status === 404 && group === "trace") {
    return `Not available here (404): ${said || "this service has no trace database"}`;
  }
  return `${status}: ${said || "the service refused the request"}`;
}

/** An error as one line for the page. */
export function describe(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof DOMException && err.name === "AbortError") return "Stopped.";
  return `The request failed: ${err instanceof Error ? err.message : String(err)}`;
}

export const fmt = new Intl.NumberFormat("en");

export function bytes(n: number | null | undefined): string {
  return n === null || n === undefined ? "–" : byteSize(n);
}
