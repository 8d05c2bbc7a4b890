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
const CLEANABLE_STATES: readonly PartitionState[] = ["verified", "cleaning", "failed", "cleaned"];

/**
 * What keeps cleanup from starting on a partition (its ledger row and parts): no archive, or
 * not verified (`state`: "not verified" when a part is not, else the partition's state); null
 * when it may start. Cleanup, the service's trigger and the dry run all ask this.
 */
export function cleanupBlock(
  rec: { state: PartitionState } | null,
  parts: readonly { verifiedAt: string | null }[],
): { noArchive: true } | { noArchive: false; state: string } | null {
  if (!rec || parts.length === 0) return { noArchive: true };
  if (parts.some((p) => p.verifiedAt === null)) return { noArchive: false, state: "not verified" };
  if (!CLEANABLE_STATES.includes(rec.state)) return { noArchive: false, state: rec.state };
  return null;
}
