// The shape of console-assets.generated.ts, which scripts/build-console.mjs writes (gitignored):
// a fresh clone typechecks before its first build.
export declare const CONSOLE_ASSETS: Record<string, string>;
