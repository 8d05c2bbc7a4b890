import { expect, it } from "vitest";
import { progressLine } from "../src/cli/progress.js";

it("progress: no rate before a second has passed, then the recent rate, numbers in one format", () => {
  let text = "";
  let t = 0;
  const bar = progressLine(
    true,
    (s) => {
      text = s;
    },
    () => t,
  );
  const at = (ms: number, done: number) => {
    t = ms;
    bar.update({ phase: "archive", table: "pv", date: "2025-10-13", done, total: 1_000_000 });
    return text;
  };
  // The first page, 1 ms in: a rate would read 5,000,000 rows/s; none is shown.
  expect(at(1, 5000)).not.toMatch(/rows\/s/);
  expect(text).toMatch(/5,000\/1,000,000 rows/);
  // 20,000 rows a second from then on.
  for (let s = 1; s <= 10; s++) at(s * 1000, 5000 + s * 20_000);
  expect(text).toMatch(/205,000\/1,000,000 rows {2}20,000 rows\/s/);
  // A stall: the rate falls within the window, it does not keep the old average.
  for (let s = 11; s <= 14; s++) at(s * 1000, 205_000);
  expect(text).toMatch(/ 0 rows\/s/);
});
