import { createHash, randomBytes } from "node:crypto";
import { readFileSync, readlinkSync } from "node:fs";
import { hostname } from "node:os";
import { type Sha256Factory, nativeSha256 } from "../core/bytes/hash.js";

/**
 * This machine and pid namespace: a hostname alone is shared by containers (same image, or
 * same name on other hosts), where the same pid may be another process. The boot id tells
 * hosts apart, the pid namespace tells containers on one host apart.
 */
const here = (() => {
  const read = (f: () => string) => {
    try {
      return f();
    } catch {
      return "";
    }
  };
  const boot = read(() => readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim());
  const pidns = read(() => readlinkSync("/proc/self/ns/pid"));
  const tag = createHash("sha256").update(`${boot}/${pidns}`).digest("hex").slice(0, 8);
  return `${hostname()}@${tag}`;
})();

/** Who holds a lease: machine, pid and a nonce, so a dead holder here can be recognised. */
export function ownerId(): string {
  return `${here}:${process.pid}:${randomBytes(3).toString("hex")}`;
}

/** True when `holder` was a process on this machine, in this pid namespace, that no longer exists. */
export function isHolderGone(holder: string): boolean {
  const [host, pidText] = holder.split(":");
  const pid = Number(pidText);
  if (host !== here || !Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
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
export const nodeSha256: Sha256Factory = nativeSha256(createHash);
