import { Duplex } from "node:stream";
import { createGunzip, createGzip } from "node:zlib";
import type { BytePipe, Codec } from "../core/codec.js";

// 1 MiB output buffers: one thread-pool job per page instead of one per 16 KiB.
const CHUNK = 1 << 20;

export const zlibCodec: Codec = {
  gzip: () => Duplex.toWeb(createGzip({ chunkSize: CHUNK })) as BytePipe,
  gunzip: () => Duplex.toWeb(createGunzip({ chunkSize: CHUNK })) as BytePipe,
};
