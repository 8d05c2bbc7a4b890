import * as errors from "../core/errors.js";

/** An error as it crosses to another thread: its class by name, its message and its figures. */
export interface WireError {
  name: string;
  message: string;
  stack?: string;
  fields: Record<string, unknown>;
}

type ErrorClass = new (...args: never[]) => Error;

// The typed errors, by class name: the ones HTTP statuses and job states are decided by.
const CLASSES = new Map<string, ErrorClass>(
  (Object.values(errors) as unknown[])
    .filter(
      (v): v is ErrorClass =>
        typeof v === "function" && (v as { prototype?: unknown }).prototype instanceof Error,
    )
    .map((c) => [c.name, c]),
);

/** `err` as plain data a structured clone keeps whole. */
export function toWire(err: unknown): WireError {
  if (!(err instanceof Error)) return { name: "Error", message: String(err), fields: {} };
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(err)) {
    try {
      fields[k] = structuredClone(v);
    } catch {
      // A field no clone can carry (a function, a handle) stays on this side.
    }
  }
  return { name: err.constructor.name, message: err.message, stack: err.stack, fields };
}

/** The error again, of its own class when it is one of core's typed errors, else an Error. */
export function fromWire(w: WireError): Error {
  const cls = CLASSES.get(w.name);
  const err: Error = cls ? Object.create(cls.prototype) : new Error(w.message);
  Object.assign(err, w.fields);
  Object.defineProperty(err, "message", { value: w.message, writable: true, configurable: true });
  if (w.stack)
    Object.defineProperty(err, "stack", { value: w.stack, writable: true, configurable: true });
  if (!cls && w.name !== "Error") err.name = w.name;
  return err;
}
