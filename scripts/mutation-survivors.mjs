// What a mutation run left: each file's score as the README's Testing table gives it, and
// every mutant that survived or that no test reached, with its line and replacement.
//
//   node scripts/mutation-survivors.mjs [reports/mutation/mutation.json] [--only=part-of-path]
import { readFileSync } from "node:fs";

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith("--")) ?? "reports/mutation/mutation.json";
const only = args.find((a) => a.startsWith("--only="))?.slice(7);
const report = JSON.parse(readFileSync(file, "utf8"));

const rows = [];
const left = [];
for (const [path, { mutants }] of Object.entries(report.files)) {
  if (only && !path.includes(only)) continue;
  const n = (status) => mutants.filter((m) => m.status === status).length;
  const [killed, timedOut, survived, noCoverage] = [
    n("Killed"),
    n("Timeout"),
    n("Survived"),
    n("NoCoverage"),
  ];
  const valid = killed + timedOut + survived + noCoverage;
  if (valid === 0) continue;
  const score = (((killed + timedOut) / valid) * 100).toFixed(1);
  rows.push(
    `| \`${path.replace(/^src\//, "")}\` | ${killed} | ${timedOut} | ${survived} | ${noCoverage} | ${score}% |`,
  );
  for (const m of mutants) {
    if (m.status !== "Survived" && m.status !== "NoCoverage") continue;
    const at = m.location.start;
    const replacement = (m.replacement ?? "").replace(/\s+/g, " ").slice(0, 100);
    left.push(`${path}:${at.line}:${at.column} ${m.status} ${m.mutatorName}: ${replacement}`);
  }
}
console.log("| file | killed | timed out | survived | no coverage | score |");
console.log("|---|---|---|---|---|---|");
for (const r of rows) console.log(r);
console.log(`\n${left.length} left:`);
for (const l of left.sort((a, b) => a.localeCompare(b, "en", { numeric: true }))) console.log(l);
