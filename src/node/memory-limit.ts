import { readFileSync } from "node:fs";

/**
 * The memory ceiling assumed when no cgroup limit is found: deploy/sluice.service's `MemoryMax=6G`, which
 * deploy/sluice.service sets.
 */
export const FALLBACK_MEMORY_MAX = 6 * 1024 ** 3;

/**
 * The part of a worker's share of the ceiling at which trace requests are refused: the guard
 * only turns new requests away, and the ones in flight go on growing past it.
 */
export const MEMORY_HEADROOM = 0.75;

/**
 * TRACE_MEMORY_LIMIT_MB when it is not set: the process group's memory ceiling (the cgroup
 * limit, systemd's MemoryMax; else FALLBACK_MEMORY_MAX) shared by the workers, with headroom.
 * The old fixed 4096 MB per worker, times 2 workers, was above MemoryMax=6G: the kernel killed
 * before the guard refused. 6 GiB and 2 workers give 2304 MB each.
 */
export function defaultTraceMemoryLimitMb(memoryMaxBytes: number | null, workers: number): number {
  const ceiling = memoryMaxBytes ?? FALLBACK_MEMORY_MAX;
  return Math.max(64, Math.floor((ceiling * MEMORY_HEADROOM) / Math.max(1, workers) / 1048576));
}

/** A file's text, or null when it cannot be read. */
type Read = (path: string) => string | null;

const readText: Read = (path) => {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
};

/** Limits at or above this are "no limit" (cgroup v1 writes 2^63 rounded to a page). */
const UNLIMITED = 2 ** 60;

/**
 * The tightest memory limit of this process's cgroup and its parents, in bytes, or null. cgroup
 * v2: `memory.max` under /sys/fs/cgroup at the path /proc/self/cgroup names (a systemd
 * service: /system.slice/sluice.service), or at the root inside a container. cgroup v1:
 * `memory.limit_in_bytes` under /sys/fs/cgroup/memory likewise.
 */
export function cgroupMemoryMax(read: Read = readText): number | null {
  const groups = read("/proc/self/cgroup") ?? "";
  const files: string[] = [];
  const chain = (root: string, path: string, file: string) => {
    for (let p = path; p !== "" && p !== "/"; p = p.slice(0, p.lastIndexOf("/"))) {
      files.push(`${root}${p}/${file}`);
    }
    files.push(`${root}/${file}`);
  };
  for (const line of groups.split("\n")) {
    const [, controllers, path] = /^\d+:([^:]*):(.*)$/.exec(line.trim()) ?? [];
    if (path === undefined) continue;
    if (controllers === "") chain("/sys/fs/cgroup", path, "memory.max");
    else if (controllers?.split(",").includes("memory")) {
      chain("/sys/fs/cgroup/memory", path, "memory.limit_in_bytes");
    }
  }
  if (files.length === 0) chain("/sys/fs/cgroup", "", "memory.max");
  let tightest: number | null = null;
  for (const file of files) {
    const text = read(file)?.trim() ?? "";
    if (!/^\d+$/.test(text)) continue; // "max", or no such file
    const bytes = Number(text);
    if (bytes < UNLIMITED && (tightest === null || bytes < tightest)) tightest = bytes;
  }
  return tightest;
}

/** TRACE_MEMORY_LIMIT_MB in effect, and where it came from (printed at start). */
export function traceMemoryLimit(
  setMb: number | undefined,
  workers: number,
  read: Read = readText,
): { mb: number; from: string } {
  if (setMb !== undefined) return { mb: setMb, from: "TRACE_MEMORY_LIMIT_MB" };
  const max = cgroupMemoryMax(read);
  const ceiling =
    max === null
      ? `${FALLBACK_MEMORY_MAX / 1048576} MB assumed (no cgroup memory limit found)`
      : `cgroup memory limit ${Math.round(max / 1048576)} MB`;
  return {
    mb: defaultTraceMemoryLimitMb(max, workers),
    from: `${ceiling} x ${MEMORY_HEADROOM} / ${workers} worker${workers === 1 ? "" : "s"}`,
  };
}
