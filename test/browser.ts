import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, type BrowserContext, type Page, chromium } from "playwright-core";

/** Debian's chromium, or SLUICE_CHROMIUM; null when neither is there. */
export function chromiumPath(): string | null {
  const candidates = [
    process.env.SLUICE_CHROMIUM,
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
  ];
  return candidates.find((p): p is string => !!p && existsSync(p)) ?? null;
}

/**
 * Whether the browser tests run: without chromium they are skipped, loudly, except in CI
 * (CI=true), where a missing browser is a failure (.ci/run installs it).
 */
export function browserAvailable(file: string): boolean {
  if (chromiumPath()) return true;
  if (process.env.CI === "true") {
    throw new Error(`${file}: chromium is missing (apt-get install chromium, or SLUICE_CHROMIUM)`);
  }
  console.warn(
    `SKIPPED ${file}: no chromium at /usr/bin/chromium (apt-get install chromium, or set SLUICE_CHROMIUM); the console is not tested`,
  );
  return false;
}

export async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath() ?? undefined,
    // The tests run as root in CI containers, where Chromium's sandbox cannot start.
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
}

/** Where screenshots go: test-output/console (gitignored), or SLUICE_TEST_OUTPUT. */
export const OUTPUT =
  process.env.SLUICE_TEST_OUTPUT ?? join(import.meta.dirname, "..", "test-output", "console");

/** A page whose console errors, uncaught errors and failed or refused requests are kept. */
export interface WatchedPage {
  page: Page;
  context: BrowserContext;
  /** Console errors and uncaught exceptions, as text. */
  errors: string[];
  /** Requests that failed at the network level, or were answered 4xx/5xx: `STATUS METHOD path`. */
  failed: string[];
  close(): Promise<void>;
}

export async function openPage(browser: Browser, base: string, width = 1280): Promise<WatchedPage> {
  const context = await browser.newContext({
    baseURL: base,
    viewport: { width, height: 900 },
    acceptDownloads: true,
  });
  const page = await context.newPage();
  const errors: string[] = [];
  const failed: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(`uncaught: ${e.message}`));
  page.on("requestfailed", (r) => {
    failed.push(`failed ${r.method()} ${new URL(r.url()).pathname}: ${r.failure()?.errorText}`);
  });
  page.on("response", (r) => {
    if (r.status() >= 400)
      failed.push(`${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`);
  });
  return { page, context, errors, failed, close: () => context.close() };
}

/** The page at 1280 and 390 px wide, saved as <name>-<width>.png; the paths are printed. */
export async function screenshots(page: Page, name: string): Promise<string[]> {
  mkdirSync(OUTPUT, { recursive: true });
  const paths: string[] = [];
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: 900 });
    const path = join(OUTPUT, `${name}-${width}.png`);
    await page.screenshot({ path, fullPage: true });
    paths.push(path);
  }
  await page.setViewportSize({ width: 1280, height: 900 });
  console.log(`screenshots: ${paths.join(" ")}`);
  return paths;
}
