import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import type { Sha256Factory } from "../core/hash.js";

/** Who holds a lease: host, pid and a nonce, so a dead holder on this host can be recognised. */
export function ownerId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
}

/** True when `holder` was a process on this host that no longer exists. */
export function isHolderGone(holder: string): boolean {
  const [host, pidText] = holder.split(":");
  const pid = Number(pidText);
  if (host !== hostname() || !Number.isInteger(pid) || pid <= 0 || pid === process.pid)
    return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ESRCH";
  }
  return isZombie(pid);
}

/**
 * A killed process stays a zombie until its parent (or init) reaps it, and kill(pid, 0)
 * still succeeds meanwhile; a rerun right after a crash would wait for the lease to expire.
 */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Field 3, after the parenthesised command name (which may itself hold spaces).
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
  } catch {
    return false; // no /proc (not Linux): rely on kill(pid, 0) and lease expiry
  }
}

/** Node's native SHA-256 (several times faster than the portable one). */
export const nodeSha256: Sha256Factory = () => {
  const h = createHash("sha256");
  return {
    update: (bytes) => {
      h.update(bytes);
    },
    hex: () => h.digest("hex"),
  };
};
