import { BadInputError } from "./errors.js";

/**
 * Calendar days in an IANA time zone, with the platform's Intl (Node and Workers alike): where
 * a day starts as an instant, and which day an instant falls on. A day is [its start, the next
 * day's start): 23 or 25 hours across a DST change. UTC, the default, is plain arithmetic: a
 * process's first zoned Intl.DateTimeFormat maps ~8 MB of ICU data it would otherwise not.
 */
const UTC = "UTC";
const formats = new Map<string, Intl.DateTimeFormat>();

function formatIn(timeZone: string): Intl.DateTimeFormat {
  let f = formats.get(timeZone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat("en-US", {
        timeZone,
        hourCycle: "h23",
        year: "numeric",
        month: "2-digit",
        day: "2-digit",
        hour: "2-digit",
        minute: "2-digit",
        second: "2-digit",
      });
    } catch {
      throw new BadInputError(
        `time zone '${timeZone}' is not an IANA zone (e.g. UTC, Europe/Berlin)`,
      );
    }
    formats.set(timeZone, f);
  }
  return f;
}

/** Whether `timeZone` is a zone this platform knows. */
export function knownTimeZone(timeZone: string): boolean {
  if (timeZone === UTC) return true;
  try {
    formatIn(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** Throws a BadInputError unless `timeZone` is a zone this platform knows. */
export function checkTimeZone(timeZone: string): string {
  if (timeZone !== UTC) formatIn(timeZone);
  return timeZone;
}

/** The wall-clock fields of instant `ms` in `timeZone`. */
function wallOf(ms: number, timeZone: string): { date: string; wallMs: number } {
  const parts: Record<string, string> = {};
  for (const p of formatIn(timeZone).formatToParts(ms)) parts[p.type] = p.value;
  const date = `${parts.year}-${parts.month}-${parts.day}`;
  const wallMs =
    Date.parse(`${date}T00:00:00Z`) +
    ((Number(parts.hour) * 60 + Number(parts.minute)) * 60 + Number(parts.second)) * 1000 +
    (((ms % 1000) + 1000) % 1000);
  return { date, wallMs };
}

/** The calendar day (YYYY-MM-DD) instant `ms` falls on in `timeZone`. */
export function dayInZone(ms: number, timeZone: string): string {
  if (timeZone === UTC) return new Date(ms).toISOString().slice(0, 10);
  return wallOf(ms, timeZone).date;
}

const MINUTE = 60_000;

/** The first instant (ms) of `date` in `timeZone`: its midnight, or later where midnight is skipped. */
export function dayStartInZone(date: string, timeZone: string): number {
  const midnight = Date.parse(`${date}T00:00:00Z`);
  if (timeZone === UTC) return midnight;
  // The zone's offset near that midnight, taken twice: once is wrong across a change.
  let t = midnight - (wallOf(midnight, timeZone).wallMs - midnight);
  t = midnight - (wallOf(t, timeZone).wallMs - t);
  // Where no midnight exists (a DST change at 00:00), the day starts at its first minute.
  while (dayInZone(t, timeZone) < date) t += MINUTE;
  while (dayInZone(t - MINUTE, timeZone) >= date) t -= MINUTE;
  return t;
}
