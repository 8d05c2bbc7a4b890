import { z } from "zod/v3";
import { BadInputError } from "../errors.js";
import type { Row } from "../sql/source.js";

/** The page-view table's columns, besides its key: what ingest inserts. */
export const TRAFFIC_COLUMNS = [
  "event_date",
  "ts",
  "path",
  "referrer",
  "country",
  "user_agent",
  "status",
  "duration_ms",
] as const;

const text = (max: number) =>
  z
    .string()
    .max(max)
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
    .regex(/^[^\u0000-\u001f\u007f]*$/, "must not hold control characters");

/** One page view as ingest takes it; `event_date` is the UTC day of `ts` when absent. */
const eventSchema = z
  .object({
    ts: z.number().int().min(946_684_800_000).max(4_102_444_800_000),
    event_date: z
      .string()
      .regex(/^\d{4}-\d{2}-\d{2}$/)
      .optional(),
    path: text(512).min(1).startsWith("/"),
    referrer: text(512).nullable().optional(),
    country: z
      .string()
      .regex(/^[A-Z]{2}$/, "must be two capital letters (ISO 3166-1)")
      .nullable()
      .optional(),
    user_agent: text(512).nullable().optional(),
    status: z.number().int().min(100).max(599),
    duration_ms: z.number().int().min(0).max(86_400_000),
  })
  .strict();

/** A rejected batch: which event, and why. Nothing of the batch was written. */
export class BadEventError extends BadInputError {
  constructor(
    readonly index: number,
    readonly reason: string,
  ) {
    super(`event ${index}: ${reason}`);
  }
}

/** Check one event and give the row to insert; throws BadEventError naming the field. */
export function parseTrafficEvent(input: unknown, index: number): Row {
  const parsed = eventSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? `${issue.path.join(".")}: ` : "";
    throw new BadEventError(index, `${where}${issue?.message ?? "invalid"}`);
  }
  const e = parsed.data;
  const day = new Date(e.ts).toISOString().slice(0, 10);
  if (e.event_date !== undefined && e.event_date !== day) {
    throw new BadEventError(index, `event_date ${e.event_date} is not the UTC day of ts (${day})`);
  }
  return {
    event_date: day,
    ts: e.ts,
    path: e.path,
    referrer: e.referrer ?? null,
    country: e.country ?? null,
    user_agent: e.user_agent ?? null,
    status: e.status,
    duration_ms: e.duration_ms,
  };
}
