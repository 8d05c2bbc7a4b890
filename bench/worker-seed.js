// The seed's two Worker archive paths (seeds/archive-cleanup-fix.md), as baselines for
// bench/worker.mjs, run in the same workerd on the same local D1 and R2:
//   GET /old?date=  the code that was OOM-killed: every row of the day in one array, one JSONL
//                   string, then gzip, then one R2 put.
//   GET /fix?date=  the seed's "streaming" fix: LIMIT/OFFSET pages written into a gzip stream,
//                   but every compressed chunk kept until the end, merged, then one R2 put.
//   GET /floor?date=&bytes=&key=  not the seed's: the same I/O as sluice's archive + verify
//                   with none of its work: reads the day in key pages (as sluice does)
//                   keeping nothing, uploads `bytes` of filler as 5 MiB R2 parts, then reads
//                   sluice's archive `key` back through DecompressionStream, keeping nothing.
//                   What local D1, local R2 and the runtime's gunzip cost by themselves.
// Plain JS, as close to the seed's TypeScript as it goes; not part of sluice.
async function fetchEventsForDate(env, date) {
  const allEvents = [];
  let offset = 0;
  for (;;) {
    const batch = (
      await env.DB.prepare("SELECT * FROM traffic_events WHERE event_date = ? LIMIT ? OFFSET ?")
        .bind(date, 1000, offset)
        .all()
    ).results;
    if (!batch || batch.length === 0) break;
    allEvents.push(...batch);
    offset += 1000;
  }
  return allEvents;
}

async function oldArchive(env, date) {
  const events = await fetchEventsForDate(env, date);
  const jsonl = events.map((e) => JSON.stringify(e)).join("\n");
  const gz = new Blob([jsonl]).stream().pipeThrough(new CompressionStream("gzip"));
  const compressed = new Uint8Array(await new Response(gz).arrayBuffer());
  await env.ARCHIVE.put(`seed-old/${date}.jsonl.gz`, compressed);
  return { rows: events.length, bytes: compressed.byteLength };
}

function mergeChunks(chunks) {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

async function fixArchive(env, date) {
  const { readable, writable } = new TransformStream();
  const compressionStream = readable.pipeThrough(new CompressionStream("gzip"));
  const compressedChunks = [];
  const reader = compressionStream.getReader();
  const readPromise = (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      compressedChunks.push(value);
    }
  })();
  const writer = writable.getWriter();
  let offset = 0;
  let rows = 0;
  for (;;) {
    const result = await env.DB.prepare(
      "SELECT * FROM traffic_events WHERE event_date = ? LIMIT ? OFFSET ?",
    )
      .bind(date, 1000, offset)
      .all();
    if (!result.results || result.results.length === 0) break;
    for (const event of result.results) {
      await writer.write(new TextEncoder().encode(`${JSON.stringify(event)}\n`));
    }
    rows += result.results.length;
    offset += 1000;
  }
  await writer.close();
  await readPromise;
  const compressed = mergeChunks(compressedChunks);
  await env.ARCHIVE.put(`seed-fix/${date}.jsonl.gz`, compressed);
  return { rows, bytes: compressed.byteLength };
}

async function scan(env, date) {
  let rows = 0;
  let last = 0;
  for (;;) {
    const page = (
      await env.DB.prepare(
        "SELECT id, json_object('id', id, 'event_date', event_date, 'ts', ts, 'path', path, 'referrer', referrer, 'country', country, 'user_agent', user_agent, 'status', status, 'duration_ms', duration_ms) AS j FROM traffic_events WHERE event_date = ? AND id > ? ORDER BY id LIMIT 5000",
      )
        .bind(date, last)
        .all()
    ).results;
    if (page.length === 0) break;
    rows += page.length;
    last = page[page.length - 1].id;
  }
  return { rows };
}

async function floor(env, date, bytes, archived) {
  const { rows } = await scan(env, date);
  const part = new Uint8Array(5 << 20);
  for (let at = 0; at < part.byteLength; at += 65536) {
    crypto.getRandomValues(part.subarray(at, at + 65536));
  }
  const upload = await env.ARCHIVE.createMultipartUpload(`floor/${date}`);
  const parts = [];
  for (let left = bytes, n = 1; left > 0; n++) {
    const size = Math.min(part.byteLength, left);
    parts.push(await upload.uploadPart(n, part.subarray(0, size)));
    left -= size;
  }
  await upload.complete(parts);
  // Read back as verify does: a gzip JSONL part once, through the runtime's gunzip; a Parquet
  // part twice (whole, then every chunk again by ranges), as it is stored.
  const parquet = archived.endsWith(".parquet");
  let read = 0;
  for (let pass = 0; pass < (parquet ? 2 : 1); pass++) {
    const body = (await env.ARCHIVE.get(archived)).body;
    const reader = (parquet ? body : body.pipeThrough(new DecompressionStream("gzip"))).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      read += value.byteLength;
    }
  }
  return { rows, bytes, rawBytes: read };
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const date = url.searchParams.get("date");
    if (url.pathname === "/old") return Response.json(await oldArchive(env, date));
    if (url.pathname === "/fix") return Response.json(await fixArchive(env, date));
    if (url.pathname === "/floor") {
      const bytes = Number(url.searchParams.get("bytes"));
      return Response.json(await floor(env, date, bytes, url.searchParams.get("key")));
    }
    return new Response("ok");
  },
};
