const encoder = new TextEncoder();

export const COMMA = 0x2c;
export const OPEN_BRACKET = 0x5b;
export const NEWLINE = 0x0a;
export const CLOSE_BRACE = 0x7d;

/**
 * Encodes text into one scratch buffer it reuses (grown to the largest batch, then kept), and
 * hands each chunk out as an exact-size copy: a chunk given to a stream may be held by the
 * consumer (a socket's write queue) after the next one is written, so it cannot be a view of
 * the scratch. As fast as TextEncoder.encode of the batch's text, and NDJSON lines
 * go straight in without being joined into a batch-sized string first.
 */
export class ChunkEncoder {
  buf = new Uint8Array(1 << 16);
  used = 0;

  write(text: string): void {
    this.reserve(text.length);
    let rest = text;
    for (;;) {
      const { read, written } = encoder.encodeInto(rest, this.buf.subarray(this.used));
      this.used += written;
      if (read === rest.length) return;
      rest = rest.slice(read);
      this.reserve(rest.length * 3);
    }
  }

  bytes(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.used);
    this.used += bytes.length;
  }

  /**
   * `text`, a JSON array "[a,b]", as items of an array being written: its "[" opens the array
   * (`first`) or becomes ",", and its "]" is dropped (the writer closes the array at its end).
   */
  arrayItems(text: string, first: boolean): void {
    const at = this.used;
    this.write(text);
    this.used -= 1;
    if (!first) this.buf[at] = COMMA;
  }

  byte(b: number): void {
    this.reserve(1);
    this.buf[this.used++] = b;
  }

  take(): Uint8Array {
    const out = this.buf.slice(0, this.used);
    this.used = 0;
    return out;
  }

  release(): void {
    this.buf = new Uint8Array(0);
    this.used = 0;
  }

  private reserve(n: number): void {
    if (this.used + n <= this.buf.length) return;
    const bigger = new Uint8Array(Math.max(this.used + n, this.buf.length * 2));
    bigger.set(this.buf.subarray(0, this.used));
    this.buf = bigger;
  }
}
