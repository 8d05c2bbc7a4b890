import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/**
 * V8's full, compacting collection as a function, or null where V8 will not give it. Exposed
 * the way Jest does for --logHeapUsage: the flag, then `gc` from a context made after it, so
 * the service's own global gets no `gc`.
 */
export function fullGc(): (() => void) | null {
  const own = (globalThis as { gc?: unknown }).gc;
  if (typeof own === "function") return own as () => void;
  try {
    setFlagsFromString("--expose-gc");
    const gc: unknown = runInNewContext("gc");
    return typeof gc === "function" ? (gc as () => void) : null;
  } catch {
    return null;
  }
}
