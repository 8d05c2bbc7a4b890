import type mysql from "mysql2/promise";
import { mysqlDriver } from "./driver.js";

/**
 * Column types that mysql2 reads to the same values through the binary protocol as through
 * the text one. Not FLOAT (the float32 itself: 0.1 reads as 0.10000000149011612), not
 * fractional seconds (their trailing zeros go), and not DOUBLE or anything else unproven.
 */
const sameInBinaryTypes = (T: typeof mysql.Types) =>
  new Set<number>([
    T.TINY,
    T.SHORT,
    T.LONG,
    T.INT24,
    T.LONGLONG,
    T.YEAR,
    T.DECIMAL,
    T.NEWDECIMAL,
    T.DATE,
    T.NEWDATE,
    T.DATETIME,
    T.TIMESTAMP,
    T.TIME,
    T.VARCHAR,
    T.VAR_STRING,
    T.STRING,
    T.TINY_BLOB,
    T.MEDIUM_BLOB,
    T.LONG_BLOB,
    T.BLOB,
    T.ENUM,
    T.SET,
    T.JSON,
    T.BIT,
    T.NULL,
  ]);
let sets: { same: Set<number>; temporal: Set<number> } | null = null;

export function sameInBinary(field: mysql.FieldPacket): boolean {
  if (!sets) {
    const T = mysqlDriver().Types;
    sets = {
      same: sameInBinaryTypes(T),
      temporal: new Set<number>([T.DATETIME, T.TIMESTAMP, T.TIME]),
    };
  }
  const { same: SAME_IN_BINARY, temporal: TEMPORAL } = sets;
  const type = field.columnType ?? -1;
  return SAME_IN_BINARY.has(type) && !(TEMPORAL.has(type) && field.decimals > 0);
}
