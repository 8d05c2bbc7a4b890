import type { Context, MiddlewareHandler } from "hono";
import { sameSecret } from "./secret.js";

/** True when the request carries `Authorization: Bearer <token>` (compared in constant time). */
export async function hasBearer(c: Context, token: string): Promise<boolean> {
  const m = /^Bearer (.+)$/.exec(c.req.header("authorization") ?? "");
  return m !== null && (await sameSecret(m[1] as string, token));
}

/** 401 naming the setting whose token the route group wants. */
export function unauthorized(c: Context, setting: string, realm: string): Response {
  c.header("WWW-Authenticate", `Bearer realm="sluice ${realm}"`);
  return c.json({ error: "unauthorized", message: `send Authorization: Bearer <${setting}>` }, 401);
}

/**
 * A route group's optional token (INGEST_TOKEN, STATS_TOKEN, TRACE_TOKEN): unset, the group is
 * open to anyone; set, a request without that exact bearer token gets 401.
 */
export function optionalBearer(
  token: string | undefined,
  setting: string,
  realm: string,
): MiddlewareHandler {
  return async (c, next) => {
    if (token !== undefined && !(await hasBearer(c, token))) {
      return unauthorized(c, setting, realm);
    }
    await next();
  };
}
