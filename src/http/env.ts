/** What every route of the app sees in its context: the request's id. */
export type AppEnv = { Variables: { requestId: string } };

/** A structured logger (pino's shape): one line per request, with its id. */
export interface RequestLog {
  info(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}
