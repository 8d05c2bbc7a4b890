import { BadInputError } from "../errors.js";

/** A plain identifier: what every table, column and schema name must be. */
export const IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** A table name: an identifier, or schema.identifier. */
export const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/;

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

/** `table` or `schema.table`, each part a plain identifier: where a table may live elsewhere. */
export function checkTableName(what: string, name: string): string {
  if (!TABLE_NAME.test(name)) {
    throw new BadInputError(
      `${what} '${name}' is not a table name (an identifier, or schema.identifier: letters, digits, _)`,
    );
  }
  return name;
}

/** The schema and the table of a name checked by checkTableName (schema null: the default). */
export function splitTableName(name: string): { schema: string | null; table: string } {
  const dot = name.indexOf(".");
  return dot < 0
    ? { schema: null, table: name }
    : { schema: name.slice(0, dot), table: name.slice(dot + 1) };
}
