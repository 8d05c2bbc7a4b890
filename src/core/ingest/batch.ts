import { BadInputError } from "../errors.js";

/**
 * An ingest body with more events than INGEST_MAX_EVENTS. Counting stopped at the first event
 * over the limit, so the body's real count is not known; `scanned` is how many characters
 * were looked at.
 */
export class TooManyEventsError extends BadInputError {
  constructor(
    readonly limit: number,
    readonly scanned: number,
  ) {
    super(`more than ${limit} events in one batch; send at most ${limit} per request`);
  }
}

/**
 * The events of an ingest body: the values of a JSON array, or the non-blank lines of NDJSON
 * (as text, each parsed later so that a 400 names the first bad one). Events are counted while
 * the body is scanned, and scanning stops at the first one over `maxEvents`: a body of a few
 * MB of tiny events costs no more than its first `maxEvents`.
 */
export function splitEventBatch(text: string, ndjson: boolean, maxEvents: number): unknown[] {
  if (ndjson) return ndjsonLines(text, maxEvents);
  countArrayItems(text, maxEvents);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new BadInputError(`body is not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(body)) throw new BadInputError("body must be a JSON array of events");
  return body;
}

function ndjsonLines(text: string, maxEvents: number): string[] {
  const lines: string[] = [];
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end === -1) end = text.length;
    if (!isBlank(text, start, end)) {
      if (lines.length === maxEvents) throw new TooManyEventsError(maxEvents, end);
      lines.push(text.slice(start, end));
    }
    start = end + 1;
  }
  return lines;
}

/** True when text[start, end) holds only what String.prototype.trim removes. */
function isBlank(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 32 || (c >= 9 && c <= 13)) continue;
    if (c < 128 || !/\s/.test(text.charAt(i))) return false;
  }
  return true;
}

const QUOTE = 34;
const BACKSLASH = 92;
const COMMA = 44;

/**
 * Count the items of a top-level JSON array up to `maxEvents`, throwing TooManyEventsError at
 * the first one over. Strings are skipped whole, so brackets and commas inside them do not
 * count. Anything that is not an array is left to JSON.parse to refuse.
 */
function countArrayItems(text: string, maxEvents: number): void {
  let i = 0;
  while (i < text.length && isJsonSpace(text.charCodeAt(i))) i++;
  if (text.charCodeAt(i) !== 91 /* [ */) return;
  let depth = 0;
  let items = 0;
  let inItem = false;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (isJsonSpace(c)) continue;
    if (depth === 1 && !inItem && c !== COMMA && c !== 93 /* ] */) {
      inItem = true;
      if (++items > maxEvents) throw new TooManyEventsError(maxEvents, i);
    }
    if (c === QUOTE) {
      i = stringEnd(text, i);
      if (i === -1) return; // unterminated: JSON.parse says where
    } else if (c === 91 || c === 123 /* [ { */) {
      depth++;
    } else if (c === 93 || c === 125 /* ] } */) {
      if (--depth === 0) return;
    } else if (c === COMMA && depth === 1) {
      inItem = false;
    }
  }
}

/** The index of the quote that closes the string opening at `open`, or -1. */
function stringEnd(text: string, open: number): number {
  let at = open;
  for (;;) {
    at = text.indexOf('"', at + 1);
    if (at === -1) return -1;
    let slashes = 0;
    while (text.charCodeAt(at - 1 - slashes) === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return at;
  }
}

function isJsonSpace(c: number): boolean {
  return c === 32 || c === 10 || c === 13 || c === 9;
}
