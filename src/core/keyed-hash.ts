/**
 * A string hash with random keys, for hash tables filled from request data: without the keys
 * a client cannot choose ids that collide, so a table stays O(1) per operation whatever is
 * posted. (An unseeded hash such as FNV-1a lets anyone compute a million colliding ids; a
 * seeded FNV or Murmur still has multicollisions that work for every seed.)
 *
 * The family is Dietzfelbinger's vector multiply-shift, which is provably strongly universal:
 * h(x) = ((b + sum a_i * x_i) mod 2^32) >>> 16 over the code units x_i (each plus one, so that
 * strings of different lengths differ in some position), with a random 32-bit key a_i per
 * position and a random b; w = 32 >= 17 bits of input + 16 bits of output - 1. Two halves with
 * independent keys make the 32 bits returned: two distinct strings of code units share a hash
 * with probability about 2^-32 over the keys, and any subset of its bits (a table's mask) is
 * just as uniform. Cost per character: two Math.imul and two additions.
 *
 * Runtime-free: the keys come from crypto.getRandomValues (Node, Workers, browsers).
 */
export class KeyedHash {
  /** Per position i: the low half's key at 2i, the high half's at 2i + 1. */
  private keys: Int32Array;
  private readonly bLow: number;
  private readonly bHigh: number;

  constructor(private readonly random: (into: Int32Array) => void = fillRandom) {
    this.keys = new Int32Array(2 * 64);
    random(this.keys);
    const b = new Int32Array(2);
    random(b);
    this.bLow = b[0] as number;
    this.bHigh = b[1] as number;
  }

  /** The hash of a string's UTF-16 code units. */
  string(s: string): number {
    const n = s.length;
    // Stryker disable next-line EqualityOperator: equivalent; growing at 2n = length too keeps the keys it has (a condition always true is too, and survives)
    const keys = 2 * n > this.keys.length ? this.grow(n) : this.keys;
    let low = this.bLow;
    let high = this.bHigh;
    // Stryker disable next-line EqualityOperator: equivalent; a step past the end reads NaN, and Math.imul(NaN, key) adds 0
    for (let i = 0, k = 0; i < n; i++, k += 2) {
      const x = s.charCodeAt(i) + 1;
      low = (low + Math.imul(x, keys[k] as number)) | 0;
      high = (high + Math.imul(x, keys[k + 1] as number)) | 0;
    }
    return (high & 0xffff0000) | (low >>> 16);
  }

  /** The hash of `codes[start..end)`: equal to string() of the same code units. */
  codes(codes: Uint8Array | Uint16Array, start: number, end: number): number {
    // Stryker disable next-line ArithmeticOperator: equivalent; a larger n only grows the keys sooner
    const n = end - start;
    // Stryker disable next-line EqualityOperator: equivalent, as in string()
    const keys = 2 * n > this.keys.length ? this.grow(n) : this.keys;
    let low = this.bLow;
    let high = this.bHigh;
    for (let i = start, k = 0; i < end; i++, k += 2) {
      const x = (codes[i] as number) + 1;
      low = (low + Math.imul(x, keys[k] as number)) | 0;
      high = (high + Math.imul(x, keys[k + 1] as number)) | 0;
    }
    return (high & 0xffff0000) | (low >>> 16);
  }

  /** Keys for strings of `n` characters: the ones so far, and fresh random ones after them. */
  private grow(n: number): Int32Array {
    let size = this.keys.length;
    // Stryker disable next-line EqualityOperator: equivalent; a table twice as large keeps every key
    while (size < 2 * n) size *= 2;
    const keys = new Int32Array(size);
    keys.set(this.keys);
    this.random(keys.subarray(this.keys.length));
    this.keys = keys;
    return keys;
  }
}

/** crypto.getRandomValues fills at most 65536 bytes per call. */
function fillRandom(into: Int32Array): void {
  // Stryker disable next-line EqualityOperator: equivalent; one more call fills nothing
  for (let at = 0; at < into.length; at += 16384) {
    crypto.getRandomValues(into.subarray(at, Math.min(into.length, at + 16384)));
  }
}

let shared: KeyedHash | undefined;

/**
 * The keys of this process: one set for every table, drawn at first use, not when the module
 * loads (Workers give out random values only while handling a request).
 */
export function processHash(): KeyedHash {
  shared ??= new KeyedHash();
  return shared;
}
