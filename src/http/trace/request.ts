import type { Context } from "hono";
import { BadInputError } from "../../core/errors.js";
import { ContainerIds } from "../../core/trace/container-ids.js";
import { MES_ID } from "../../core/trace/seed-resolve.js";

export const PROFILES = ["query_tool", "query_tool_reverse", "mid_section_defect"] as const;
export type Profile = (typeof PROFILES)[number];

export function checkProfile(value: unknown): Profile {
  if (!PROFILES.includes(value as Profile)) {
    throw new BadInputError(`profile must be one of ${PROFILES.join(", ")}`);
  }
  return value as Profile;
}

/**
 * The request's container ids, checked and packed (each once). The parsed body is not kept
 * (see jsonBody), so its 100K+ strings die before the events are read.
 */
export function checkContainers(value: unknown, max = 2_000_000): ContainerIds {
  if (!Array.isArray(value) || value.length === 0 || value.length > max) {
    throw new BadInputError(`containers must be an array of 1 to ${max} container ids`);
  }
  let chars = 0;
  for (const id of value) if (typeof id === "string") chars += id.length;
  const ids = new ContainerIds({ ids: value.length, chars });
  for (const [i, id] of value.entries()) {
    if (typeof id !== "string" || !MES_ID.test(id)) {
      throw new BadInputError(
        `containers[${i}] is not a container id (letters, digits, _.:-; 1-64)`,
      );
    }
    ids.add(id);
  }
  return ids;
}

/**
 * The body as an object, read from the raw request: Hono's c.req.json() would keep it cached
 * for as long as the response streams.
 */
export async function jsonBody(c: Context): Promise<Record<string, unknown>> {
  let body: unknown;
  try {
    body = await c.req.raw.json();
  } catch (err) {
    throw new BadInputError(`body is not JSON: ${(err as Error).message}`);
  }
  if (!body || typeof body !== "object" || Array.isArray(body)) {
    throw new BadInputError("body must be a JSON object");
  }
  return body as Record<string, unknown>;
}
