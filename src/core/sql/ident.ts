import { BadInputError } from "../errors.js";

const IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/**
 * Accept a table or column name only if it is a plain identifier. Names come from
 * configuration, never from a request, but configuration can hold typos and worse.
 */
export function checkIdentifier(what: string, name: string): string {
  if (!IDENT.test(name)) {
    throw new BadInputError(
      `${what} '${name}' is not a plain identifier (letters, digits, _; at most 63 characters)`,
    );
  }
  return name;
}
