import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";

export interface S3Server {
  endpoint: string;
  client: S3Client;
  /** SLUICE_STORE for `bucket`/`prefix` on this server. */
  storeUrl(bucket: string, prefix: string): string;
  stop(): void;
}

/**
 * A real S3-protocol server (s3rver) in its own process, on loopback, with `buckets` made.
 * Sets the AWS credential env vars it accepts, as a user would for any S3 endpoint.
 */
export async function startS3rver(buckets: string[]): Promise<S3Server> {
  const dir = mkdtempSync(join(tmpdir(), "sluice-s3-"));
  const server: ChildProcess = spawn(
    process.execPath,
    [join(import.meta.dirname, "fixtures", "s3rver-server.mjs"), dir],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const port = await new Promise<string>((resolve, reject) => {
    server.stdout?.once("data", (d: Buffer) => resolve(d.toString().trim()));
    server.once("exit", (code) => reject(new Error(`s3rver exited with ${code}`)));
  });
  const endpoint = `http://127.0.0.1:${port}`;
  process.env.AWS_ACCESS_KEY_ID = "S3RVER";
  process.env.AWS_SECRET_ACCESS_KEY = "S3RVER";
  const client = new S3Client({ endpoint, region: "us-east-1", forcePathStyle: true });
  for (const Bucket of buckets) await client.send(new CreateBucketCommand({ Bucket }));
  return {
    endpoint,
    client,
    storeUrl: (bucket, prefix) =>
      `s3://${bucket}/${prefix}?endpoint=${encodeURIComponent(endpoint)}&region=us-east-1&forcePathStyle=true`,
    stop() {
      server.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
