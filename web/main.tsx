import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ArchivePage } from "./archive.js";
import { StatsPage } from "./stats.js";
import { TracePage } from "./trace.js";

const PAGES = [
  ["archive", "Archive", ArchivePage],
  ["stats", "Stats", StatsPage],
  ["trace", "Trace (MES)", TracePage],
] as const;
type PageName = (typeof PAGES)[number][0];

/** The page named by the URL's fragment: a reload or a shared link opens the same page. */
function current(): PageName {
  const name = location.hash.slice(1);
  return PAGES.some(([n]) => n === name) ? (name as PageName) : "archive";
}

function App() {
  const [page, setPage] = useState<PageName>(current());
  useEffect(() => {
    const on = () => setPage(current());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  const Page = (PAGES.find(([n]) => n === page) ?? PAGES[0])[2];
  return (
    <>
      <header>
        <h1>sluice</h1>
        <nav aria-label="Pages">
          {PAGES.map(([name, title]) => (
            <a key={name} href={`#${name}`} aria-current={name === page ? "page" : undefined}>
              {title}
            </a>
          ))}
        </nav>
      </header>
      <main>
        <Page />
      </main>
    </>
  );
}

const root = document.getElementById("app");
if (root) render(<App />, root);
