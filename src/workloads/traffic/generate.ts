import type { Row } from "../../core/sql/source.js";
import { mulberry32 } from "../random.js";

const SECTIONS = ["blog", "docs", "products", "news", "help", "about", "pricing", "careers"];
const PATHS = [
  "/",
  ...SECTIONS.flatMap((s) => [
    `/${s}`,
    ...Array.from({ length: 30 }, (_, i) => `/${s}/${s}-article-${i + 1}`),
  ]),
];
const REFERRERS = [
  null,
  "https://www.google.com/",
  "https://www.bing.com/",
  "https://news.ycombinator.com/",
  "https://twitter.com/",
  "https://www.reddit.com/r/programming/",
  "https://duckduckgo.com/",
];
const COUNTRIES = ["US", "CN", "DE", "JP", "GB", "FR", "IN", "BR", "CA", "KR", "TW", "NL"];
const AGENTS = [
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
  "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
  "curl/8.5.0",
];
const STATUSES = [200, 200, 200, 200, 200, 200, 200, 200, 304, 301, 404, 500];

/** Zipf-like weights: a few paths get most views, as on a real site. */
const CUMULATIVE = (() => {
  const w = PATHS.map((_, i) => 1 / (i + 1) ** 1.1);
  const total = w.reduce((a, b) => a + b, 0);
  let acc = 0;
  return w.map((x) => {
    acc += x / total;
    return acc;
  });
})();

function pickPath(r: number): string {
  let lo = 0;
  let hi = CUMULATIVE.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((CUMULATIVE[mid] as number) < r) lo = mid + 1;
    else hi = mid;
  }
  return PATHS[lo] as string;
}

const pick = <T>(xs: readonly T[], r: number): T => xs[Math.floor(r * xs.length)] as T;

/** Generate `count` page views for `date`, in ts order, as batches of `batchSize` rows. */
export function* generateTrafficDay(
  date: string,
  count: number,
  batchSize = 10_000,
): Generator<Row[]> {
  const dayStart = Date.parse(`${date}T00:00:00Z`);
  const rand = mulberry32(dayStart / 86_400_000);
  const step = 86_400_000 / Math.max(1, count);
  for (let i = 0; i < count; i += batchSize) {
    const n = Math.min(batchSize, count - i);
    const batch: Row[] = new Array(n);
    for (let j = 0; j < n; j++) {
      batch[j] = {
        event_date: date,
        ts: Math.floor(dayStart + (i + j) * step),
        path: pickPath(rand()),
        referrer: pick(REFERRERS, rand()),
        country: pick(COUNTRIES, rand()),
        user_agent: pick(AGENTS, rand()),
        status: pick(STATUSES, rand()),
        duration_ms: Math.floor(5 + rand() * rand() * 2000),
      };
    }
    yield batch;
  }
}
