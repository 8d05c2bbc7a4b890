/**
 * Told how many rows (ids, edges) a long stream has handled, and when it ended, so that the
 * runtime can pace its garbage collections (Node: node/gc-pacer.ts). Runtimes that need no
 * pacing pass none.
 */
export interface RowPacer {
  count(rows: number): void;
  /**
   * `n` more bytes went by outside the JS heap (rows already JSON, as bytes). Such buffers are
   * freed by the young collections that heap allocation sets off, and a stream of them
   * allocates little heap: they are counted apart.
   */
  bytes?(n: number): void;
  end(): void;
}
