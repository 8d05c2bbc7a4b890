import type { MiddlewareHandler } from "hono";
import { BadInputError } from "../core/errors.js";

/**
 * Refuse a NUL (`%00`) in any query parameter's name or value, naming it: PostgreSQL rejects
 * the byte in text (a raw driver error), SQLite stores it and C code reading the value stops
 * there. No parameter of this API has a use for it. Bodies are checked by their own schemas.
 */
export const refuseNulInQuery: MiddlewareHandler = async (c, next) => {
  // A NUL reaches a URL only percent-encoded (Node's parser refuses the raw byte).
  if (c.req.url.includes("%00")) {
    for (const [name, values] of Object.entries(c.req.queries())) {
      if (name.includes("\u0000") || values.some((v) => v.includes("\u0000"))) {
        throw new BadInputError(`query parameter '${name}' must not hold NUL (\\u0000)`);
      }
    }
  }
  await next();
};
