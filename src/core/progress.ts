/** What a long job reports as it goes; the CLI draws a bar, the service exposes it. */
export interface Progress {
  phase: "prepare" | "archive" | "verify" | "cleanup" | "restore" | "convert";
  table: string;
  date: string;
  /** Rows done so far in this phase. */
  done: number;
  /** Rows this phase expects, when known. */
  total: number | null;
}

export type ProgressListener = (p: Progress) => void;
