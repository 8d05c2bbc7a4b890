/** An async or a sync iterator: the sources the writers read batches from. */
export type AnyIterator<T> = AsyncIterator<T> | Iterator<T>;

/** The iterator of an async or sync iterable of batches; `name` says whose in the error. */
export function iteratorOf<T>(
  name: string,
  batches: AsyncIterable<T> | Iterable<T>,
): AnyIterator<T> {
  const source = batches as Partial<AsyncIterable<T> & Iterable<T>> | null;
  const asyncIterator = source?.[Symbol.asyncIterator];
  if (typeof asyncIterator === "function") return asyncIterator.call(source);
  const syncIterator = source?.[Symbol.iterator];
  if (typeof syncIterator === "function") return syncIterator.call(source);
  throw new TypeError(`${name}: rows must be an (async) iterable of batches`);
}

/** A source not yet started that is an iterator itself (a generator object) can be closed. */
export function closeUnstarted(batches: unknown): Promise<unknown> | undefined {
  const it = batches as Partial<AsyncIterator<unknown>>;
  return typeof it.return === "function" ? it.return() : undefined;
}
