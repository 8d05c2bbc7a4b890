/**
 * ObjectStore: where archives go. Implementations: a local folder, S3 protocol, R2.
 * Keys are '/'-separated relative paths, e.g. `traffic_events/date=2025-10-13/part-0000.jsonl.gz`.
 */
export interface ObjectInfo {
  key: string;
  bytes: number;
}

export interface ObjectStore {
  /**
   * Store a stream under `key`, atomically: a reader sees the old object or the whole new
   * one, never a part. Resolves once the object is durable.
   */
  put(key: string, body: ReadableStream<Uint8Array>): Promise<ObjectInfo>;
  /** The object's bytes as a stream, or null if there is none. */
  get(key: string): Promise<ReadableStream<Uint8Array> | null>;
  /**
   * Bytes `[start, end)` of the object (fewer at its end), or null if there is none: what a
   * reader of a columnar part (Parquet) reads instead of the whole object.
   */
  getRange(key: string, start: number, end: number): Promise<Uint8Array | null>;
  head(key: string): Promise<ObjectInfo | null>;
  delete(key: string): Promise<void>;
  /**
   * The objects whose keys start with `prefix`, in no given order. Optional: what needs it
   * (sweeping expired trace jobs) does without on a store that cannot list.
   */
  list?(prefix: string): AsyncIterable<ObjectInfo>;
  /** Where this store points, safe to print. */
  describe(): string;
}

/** Store a small value (a manifest) as one object. */
export function putBytes(store: ObjectStore, key: string, bytes: Uint8Array): Promise<ObjectInfo> {
  return store.put(
    key,
    new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes);
        controller.close();
      },
    }),
  );
}

/** Read a small object (a manifest) whole; null if it does not exist. */
export async function getText(store: ObjectStore, key: string): Promise<string | null> {
  const body = await store.get(key);
  if (!body) return null;
  return await new Response(body).text();
}
