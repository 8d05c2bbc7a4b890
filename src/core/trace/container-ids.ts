import { processHash } from "../keyed-hash.js";

/**
 * A set of container ids, each numbered in the order first added, packed into typed arrays:
 * the characters of all ids in one buffer, where each ends, and an open-addressing table.
 * At 114K containers that is about 3 MB outside V8's heap, where a Set or Map of
 * strings is 10 MB of small heap objects that V8 then sizes its old generation from, for the
 * whole of a request.
 */
export class ContainerIds implements Iterable<string> {
  /** Code units of every id, one after another: one byte each until an id needs more. */
  private chars: Uint8Array | Uint16Array;
  /** ends[i]: where id i ends in `chars` (it starts where id i - 1 ends). */
  private ends: Int32Array;
  /**
   * Open addressing over keyed hashes of the ids (request data: an unkeyed hash lets a client
   * post ids that all probe one run): index + 1, 0 for a free slot.
   */
  private table: Int32Array;
  private count = 0;

  /**
   * Room for `ids` ids of `chars` characters in all, when known: no array is then grown and
   * dropped (a dropped large array raises glibc's mmap threshold, and RSS with it).
   */
  constructor(capacity: { ids: number; chars: number } = { ids: 64, chars: 1024 }) {
    this.chars = new Uint8Array(Math.max(16, capacity.chars));
    // Sizing only: smaller arrays grow as ids arrive (append, rehash), larger ones hold them.
    // Stryker disable next-line MethodExpression: equivalent (sizing only)
    this.ends = new Int32Array(Math.max(4, capacity.ids));
    let slots = 8;
    // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent (sizing only)
    while (slots < capacity.ids * 2) slots *= 2;
    this.table = new Int32Array(slots);
  }

  /** The ids of `values`, each once, in the order first seen. */
  static from(values: Iterable<string>): ContainerIds {
    const ids = new ContainerIds();
    for (const v of values) ids.add(v);
    return ids;
  }

  get size(): number {
    return this.count;
  }

  /** The number of `id`, added if new. */
  add(id: string): number {
    const h = processHash().string(id);
    const slot = this.find(id, h);
    const at = this.table[slot] as number;
    if (at !== 0) return at - 1;
    this.append(id);
    this.table[slot] = ++this.count;
    // Stryker disable next-line EqualityOperator: equivalent; rehashing one id sooner keeps every id
    if (this.count * 2 > this.table.length) this.rehash(this.table.length * 2);
    return this.count - 1;
  }

  /** The number of `id`, or -1. */
  indexOf(id: string): number {
    return (this.table[this.find(id, processHash().string(id))] as number) - 1;
  }

  has(id: string): boolean {
    return this.indexOf(id) >= 0;
  }

  /** Id number `i`. */
  at(i: number): string {
    if (!(i >= 0 && i < this.count)) throw new RangeError(`no container ${i} of ${this.count}`);
    const codes = this.chars.subarray(this.start(i), this.ends[i] as number);
    // apply takes the typed array as it is; a spread would walk it through its iterator (3x slower).
    return String.fromCharCode.apply(null, codes as unknown as number[]);
  }

  *[Symbol.iterator](): Iterator<string> {
    for (let i = 0; i < this.count; i++) yield this.at(i);
  }

  private start(i: number): number {
    return i === 0 ? 0 : (this.ends[i - 1] as number);
  }

  /** The slot holding `id`, or the free slot where it would go. */
  private find(id: string, h: number): number {
    const mask = this.table.length - 1;
    for (let slot = h & mask; ; slot = (slot + 1) & mask) {
      const at = this.table[slot] as number;
      if (at === 0 || this.equals(at - 1, id)) return slot;
    }
  }

  private equals(i: number, id: string): boolean {
    const start = this.start(i);
    if ((this.ends[i] as number) - start !== id.length) return false;
    const chars = this.chars;
    for (let k = 0; k < id.length; k++) if (chars[start + k] !== id.charCodeAt(k)) return false;
    return true;
  }

  private append(id: string): void {
    let used = this.start(this.count);
    let wide = this.chars instanceof Uint16Array;
    // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent; 16-bit storage for U+00FF, or a step past the end (NaN), changes no id
    if (!wide) for (let k = 0; k < id.length && !wide; k++) wide = id.charCodeAt(k) > 0xff;
    if (used + id.length > this.chars.length || wide !== this.chars instanceof Uint16Array) {
      const size = Math.max(this.chars.length * 2, used + id.length);
      const next = wide ? new Uint16Array(size) : new Uint8Array(size);
      next.set(this.chars.subarray(0, used));
      this.chars = next;
    }
    for (let k = 0; k < id.length; k++) this.chars[used++] = id.charCodeAt(k);
    if (this.count === this.ends.length) {
      const ends = new Int32Array(this.ends.length * 2);
      ends.set(this.ends);
      this.ends = ends;
    }
    this.ends[this.count] = used;
  }

  private rehash(size: number): void {
    this.table = new Int32Array(size);
    const mask = size - 1;
    // Stryker disable next-line EqualityOperator: equivalent; a slot for the id not yet added names it once it is, as its own slot does, and equals() refuses it before
    for (let i = 0; i < this.count; i++) {
      let slot = processHash().codes(this.chars, this.start(i), this.ends[i] as number) & mask;
      while (this.table[slot] !== 0) slot = (slot + 1) & mask;
      this.table[slot] = i + 1;
    }
  }
}
