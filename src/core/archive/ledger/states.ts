/**
 * The ledger's state machine: the archive_metadata row of a (table, date) partition moves
 * through these states, by whoever holds its lease.
 */
export type PartitionState =
  | "pending"
  | "archiving"
  | "archived"
  | "verified"
  | "cleaning"
  | "cleaned"
  | "failed";

/**
 * Allowed moves. `cleaned -> archiving` and `verified -> archiving` write late rows as a new
 * part; `archiving -> archiving` is a rerun after a job was killed mid-write; `cleaned ->
 * failed` is a re-verification that found the archive damaged or gone, for an alert to see.
 */
export const TRANSITIONS: Readonly<Record<PartitionState, readonly PartitionState[]>> = {
  pending: ["archiving", "failed"],
  archiving: ["archiving", "archived", "failed"],
  archived: ["verified", "archiving", "failed"],
  verified: ["cleaning", "archiving", "failed"],
  cleaning: ["cleaning", "cleaned", "failed"],
  cleaned: ["archiving", "failed"],
  failed: ["archiving", "verified", "cleaning", "failed"],
};

export function canMove(from: PartitionState, to: PartitionState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** The states a partition may move to `to` from. */
export function statesBefore(to: PartitionState): PartitionState[] {
  return (Object.keys(TRANSITIONS) as PartitionState[]).filter((s) => canMove(s, to));
}

/**
 * The states in which cleanup may start, once every part is verified: `failed` too (a failed
 * cleanup resumes), and `cleaned` (late rows archived since, or nothing left to do).
 */
export const CLEANABLE_STATES: readonly string[] = ["verified", "cleaning", "failed", "cleaned"];
