/**
 * Compare a presented secret with the configured one in constant time. Both are hashed
 * first, so that neither their lengths nor their first differing byte show in the timing.
 * Web Crypto only: it runs on Node and on Workers alike.
 */
export async function sameSecret(presented: string, expected: string): Promise<boolean> {
  const enc = new TextEncoder();
  const [a, b] = await Promise.all([
    crypto.subtle.digest("SHA-256", enc.encode(presented)),
    crypto.subtle.digest("SHA-256", enc.encode(expected)),
  ]);
  const x = new Uint8Array(a);
  const y = new Uint8Array(b);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= (x[i] as number) ^ (y[i] as number);
  return diff === 0;
}
