/** Split a byte stream of UTF-8 text into lines, in batches, holding one chunk at a time. */
export async function* readLines(body: ReadableStream<Uint8Array>): AsyncGenerator<string[]> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const reader = body.getReader();
  let rest = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      const text = done ? rest + decoder.decode() : rest + decoder.decode(value, { stream: true });
      const out: string[] = [];
      let start = 0;
      for (let nl = text.indexOf("\n", start); nl !== -1; nl = text.indexOf("\n", start)) {
        out.push(text.slice(start, nl));
        start = nl + 1;
      }
      rest = text.slice(start);
      if (out.length) yield out;
      if (done) {
        if (rest.length) yield [rest];
        return;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

/** Count and hash bytes as they pass, without holding them. */
export function tap(onChunk: (chunk: Uint8Array) => void): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream({
    transform(chunk, controller) {
      onChunk(chunk);
      controller.enqueue(chunk);
    },
  });
}
