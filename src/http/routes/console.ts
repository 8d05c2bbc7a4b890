import { Hono } from "hono";
import type { AppEnv } from "../env.js";

/** One of the console's built files, as the runtime holds it. */
export type ConsoleAsset = string | Uint8Array;

/**
 * The console's files by name (`index.html`, `console.js`, `console.css`): Node reads them from
 * dist/console, the Worker has them bundled as strings. Passed in, so that this folder stays
 * free of `node:` imports.
 */
export interface ConsoleAssets {
  get(name: string): ConsoleAsset | null | Promise<ConsoleAsset | null>;
}

/** The files a request may ask for, with their types; anything else is a 404 without touching the assets. */
const CONSOLE_TYPES: Record<string, string> = {
  "index.html": "text/html; charset=utf-8",
  "console.js": "text/javascript; charset=utf-8",
  "console.css": "text/css; charset=utf-8",
};

/** Whether `name` is one of the console's files. */
export const isConsoleFile = (name: string): boolean => Object.hasOwn(CONSOLE_TYPES, name);

/**
 * Only the page's own files run or style it: no inline script or style, no other origin, and
 * calls back to this service only. A token kept by the page can leave only towards it.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const HEADERS = {
  "Content-Security-Policy": CONSOLE_CSP,
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
};

/** GET / (the page) and GET /console/<file> (its script and style). */
export function consoleRoutes(assets: ConsoleAssets): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const send = async (name: string, cache: string) => {
    const body = await assets.get(name);
    if (body === null) return null;
    return new Response(body, {
      headers: {
        ...HEADERS,
        "Content-Type": CONSOLE_TYPES[name] as string,
        "Cache-Control": cache,
      },
    });
  };
  const missing = (name: string) =>
    Response.json(
      { error: "not_found", message: `the console's ${name} is not built: run npm run build` },
      { status: 404, headers: HEADERS },
    );

  // The page is small and names its files without a hash: each load checks for a new build.
  app.get("/", async () => (await send("index.html", "no-cache")) ?? missing("index.html"));
  app.get("/console/:name", async (c) => {
    const name = c.req.param("name");
    if (!isConsoleFile(name) || name === "index.html") {
      return c.json({ error: "not_found", message: `no console file ${name}` }, 404);
    }
    return (await send(name, "no-cache")) ?? missing(name);
  });
  return app;
}
