import { type Logger, pino } from "pino";

/**
 * The service's logger: pino's JSON lines for a collector, or human lines on a terminal.
 * `auto` picks by whether stdout is a terminal; the pretty printer is loaded only then.
 */
export async function createLogger(
  level: string,
  format: "auto" | "json" | "pretty" = "auto",
): Promise<Logger> {
  const pretty = format === "pretty" || (format === "auto" && process.stdout.isTTY === true);
  if (!pretty) return pino({ level });
  const { default: prettyStream } = await import("pino-pretty");
  return pino(
    { level },
    prettyStream({
      colorize: process.stdout.isTTY === true,
      translateTime: "SYS:HH:MM:ss.l",
      ignore: "pid,hostname",
      sync: true,
    }),
  );
}
