import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/**
 * V8's full, compacting collection as a function, or null where V8 will not give it. Exposed
 * the way Jest does for --logHeapUsage: the flag, then `gc` from a context made after it, so
 * the service's own global gets no `gc`.
 */
export function fullGc(): Gc | null {
  const own = (globalThis as { gc?: unknown }).gc;
  if (typeof own === "function") return own as Gc;
  try {
    setFlagsFromString("--expose-gc");
    const gc: unknown = runInNewContext("gc");
    return typeof gc === "function" ? (gc as Gc) : null;
  } catch {
    return null;
  }
}

/** V8's exposed gc: a full collection, or with `{ type: "minor" }` a young one. */
export type Gc = (options?: { type?: "major" | "minor" }) => void;
