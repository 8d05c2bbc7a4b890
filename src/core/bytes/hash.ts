import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";

/** An incremental SHA-256; Node injects its native one, Workers use the portable one. */
export interface Sha256 {
  update(bytes: Uint8Array): void;
  hex(): string;
}

export type Sha256Factory = () => Sha256;

/** The portable implementation, for runtimes without node:crypto. */
export const portableSha256: Sha256Factory = () => {
  const h = sha256.create();
  return {
    update: (bytes) => {
      h.update(bytes);
    },
    hex: () => bytesToHex(h.digest()),
  };
};

/** What `node:crypto`'s createHash gives (Node's, or workerd's under nodejs_compat). */
type CreateHash = (algorithm: "sha256") => {
  update(bytes: Uint8Array): unknown;
  digest(encoding: "hex"): string;
};

/** The runtime's native SHA-256 through `createHash`, which the runtime passes in. */
export function nativeSha256(createHash: CreateHash): Sha256Factory {
  return () => {
    const h = createHash("sha256");
    return {
      update: (bytes) => {
        h.update(bytes);
      },
      hex: () => h.digest("hex"),
    };
  };
}
