/**
 * Told how many rows (ids, edges) a long stream has handled, and when it ended, so that the
 * runtime can pace its garbage collections (Node: node/gc-pacer.ts). Runtimes that need no
 * pacing pass none.
 */
export interface RowPacer {
  count(rows: number): void;
  end(): void;
}
