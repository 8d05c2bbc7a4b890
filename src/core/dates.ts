import { BadInputError } from "./errors.js";

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Validate a partition date: YYYY-MM-DD and a real calendar day. */
/** A date given as the field `name` of a request: one missing or malformed says which. */
export function parseDateField(name: string, input: unknown): string {
  if (input === undefined || input === null || input === "") {
    throw new BadInputError(`${name} is missing (YYYY-MM-DD)`);
  }
  try {
    return parsePartitionDate(input);
  } catch (err) {
    throw new BadInputError(`${name}: ${(err as Error).message}`);
  }
}

export function parsePartitionDate(input: unknown): string {
  if (typeof input !== "string" || !DATE.test(input)) {
    throw new BadInputError(`date '${String(input)}' is not YYYY-MM-DD (e.g. 2025-10-13)`);
  }
  if (input < "1000") {
    throw new BadInputError(`date '${input}' is before the year 1000`);
  }
  const d = new Date(`${input}T00:00:00Z`);
  if (Number.isNaN(d.getTime()) || d.toISOString().slice(0, 10) !== input) {
    throw new BadInputError(`date '${input}' is not a day of the calendar`);
  }
  return input;
}

/** The date `days` days before `today` (UTC), as YYYY-MM-DD. */
export function daysBefore(today: Date, days: number): string {
  // Not Date.UTC(y, m, d): it reads years 0-99 as 1900-1999.
  const t = Math.floor(today.getTime() / 86_400_000) * 86_400_000;
  return new Date(t - days * 86_400_000).toISOString().slice(0, 10);
}

/** The day after `date` (YYYY-MM-DD). */
export function nextDay(date: string): string {
  return daysBefore(new Date(`${date}T00:00:00Z`), -1);
}

/**
 * The first date kept hot: with `days` = 3 the hot store keeps today and the two days before
 * it, and every date before the cutoff is archived and cleaned.
 */
export function retentionCutoff(today: Date, days: number): string {
  return daysBefore(today, days - 1);
}
