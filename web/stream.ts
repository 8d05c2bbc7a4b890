/**
 * Reading a response as it arrives. Bytes are decoded and cut into lines chunk by chunk, so
 * a line is parsed and dropped before the next chunk is read: the page holds one chunk and
 * one partial line, whatever the size of the answer.
 */

/** Each complete, non-empty line of an NDJSON body, in batches (one per chunk read). */
export async function* ndjsonLines(body: ReadableStream<Uint8Array>): AsyncGenerator<string[]> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let rest = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      const text = rest + (done ? decoder.decode() : decoder.decode(value, { stream: true }));
      const lines = text.split("\n");
      rest = done ? "" : (lines.pop() ?? "");
      const batch = lines.filter((l) => l !== "");
      if (batch.length) yield batch;
      if (done) return;
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * The lineage answer, `{"profile":..,"edges":[...],"containers":[...],"count":N,"depth":D}`
 * (54 MB of JSON at 114K containers), scanned as it streams: edges are counted without being
 * parsed or kept; every other top-level member is kept as text and parsed at the end.
 */
export class LineageScanner {
  edges = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;
  private key = "";
  private keyText: string[] | null = null;
  private readingKey = false;
  private value: string[] = [];
  private readonly members = new Map<string, string>();

  /** Feed the next piece of the body's text. */
  push(text: string): void {
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const ch = text.charCodeAt(i);
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (ch === 92) this.escaped = true;
        else if (ch === 34) {
          this.inString = false;
          if (this.readingKey) {
            this.keyText?.push(text.slice(start, i));
            this.key = JSON.parse(`"${(this.keyText ?? []).join("")}"`);
            this.readingKey = false;
            this.keyText = null;
          }
        }
        continue;
      }
      if (ch === 34) {
        this.inString = true;
        if (this.depth === 1 && this.atKey) {
          this.readingKey = true;
          this.keyText = [];
          start = i + 1;
        }
      } else if (ch === 123 || ch === 91) {
        this.depth++;
      } else if (ch === 125 || ch === 93) {
        this.depth--;
        if (this.depth === 2 && this.key === "edges" && ch === 125) this.edges++;
        if (this.depth === 0) this.endMember(text, start, i);
      } else if (ch === 58 && this.depth === 1) {
        this.atKey = false;
        start = i + 1;
        this.value = [];
      } else if (ch === 44 && this.depth === 1) {
        this.endMember(text, start, i);
        this.atKey = true;
      }
    }
    if (this.readingKey) this.keyText?.push(text.slice(start));
    else if (!this.atKey && this.key !== "edges") this.value.push(text.slice(start));
  }

  private atKey = true;

  private endMember(text: string, start: number, end: number): void {
    if (this.key === "" || this.key === "edges") return;
    this.value.push(text.slice(start, end));
    this.members.set(this.key, this.value.join(""));
    this.value = [];
    this.key = "";
  }

  /** A top-level member other than edges, parsed (undefined until the body has ended). */
  member<T>(name: string): T | undefined {
    const text = this.members.get(name);
    return text === undefined ? undefined : (JSON.parse(text) as T);
  }
}
