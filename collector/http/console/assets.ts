/**
 * The console's page and stylesheet, kept as strings so that the build (tsc only) puts them in
 * dist/ with the rest and the server reads nothing from the source tree at run time. The page is a
 * shell: its content is built by the modules from collector/console/ with DOM calls (no innerHTML).
 */

/** The one HTML page (`/console/`): no inline script or style, the CSP forbids both. */
export const CONSOLE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Driftwatch</title>
<link rel="icon" href="favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="style.css">
<script type="module" src="main.js"></script>
</head>
<body>
<header class="top">
  <span class="brand">Driftwatch</span>
  <nav id="nav" aria-label="Main"></nav>
  <div id="who" class="who"></div>
</header>
<main id="main" tabindex="-1"><p>Loading the console…</p></main>
<div id="announce" class="sr-only" role="status" aria-live="polite"></div>
<noscript><p class="notice">The Driftwatch console needs JavaScript.</p></noscript>
</body>
</html>
`;

/** The stylesheet: readable on a laptop screen, visible focus, colour never the only signal. */
export const CONSOLE_CSS = `:root {
  --bg: #f7f7f5; --fg: #1b1b1b; --muted: #5a5a5a; --line: #d4d4cf; --panel: #ffffff;
  --accent: #0b5cad; --focus: #ff9d00;
  --critical: #8b0000; --high: #b3400a; --medium: #7a5a00; --low: #2d5f2d;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg);
}
* { box-sizing: border-box; }
body { margin: 0; }
a { color: var(--accent); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.skip { position: absolute; left: -9999px; }
.skip:focus { left: 8px; top: 8px; z-index: 10; background: var(--panel); padding: 6px 10px; }
.top { display: flex; align-items: center; gap: 24px; padding: 8px 20px; background: #16232f; color: #fff; flex-wrap: wrap; }
.top a { color: #fff; }
.brand { font-weight: 700; letter-spacing: .02em; }
#nav ul { display: flex; gap: 4px; list-style: none; margin: 0; padding: 0; flex-wrap: wrap; }
#nav a { display: inline-block; padding: 4px 10px; border-radius: 4px; text-decoration: none; }
#nav a[aria-current="page"] { background: #2f4a63; font-weight: 600; }
.who { margin-left: auto; display: flex; gap: 12px; align-items: center; }
.who button { background: transparent; color: #fff; border: 1px solid #8aa; }
main { padding: 16px 20px 48px; max-width: 1400px; margin: 0 auto; outline: none; }
h1 { font-size: 1.35rem; margin: 4px 0 12px; overflow-wrap: anywhere; }
h2 { font-size: 1.1rem; margin: 24px 0 8px; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px; margin: 12px 0; }
.panel > h2:first-child, .panel > h1:first-child { margin-top: 0; }
.notice { background: #fff8e1; border: 1px solid #e0c36a; padding: 8px 12px; border-radius: 4px; }
.error { background: #fdecec; border: 1px solid #d88; padding: 8px 12px; border-radius: 4px; }
.ok { background: #eaf6ea; border: 1px solid #8c8; padding: 8px 12px; border-radius: 4px; }
.muted { color: var(--muted); }
.filters { display: flex; gap: 12px; flex-wrap: wrap; align-items: flex-end; margin-bottom: 8px; }
label { display: flex; flex-direction: column; gap: 2px; font-size: .9rem; }
label.inline { flex-direction: row; align-items: center; gap: 6px; }
input, select, textarea, button { font: inherit; }
input, select, textarea { border: 1px solid #999; border-radius: 4px; padding: 4px 6px; background: #fff; color: var(--fg); }
textarea { min-height: 3.5em; width: 100%; }
button { border: 1px solid #666; border-radius: 4px; background: #eee; padding: 4px 12px; cursor: pointer; white-space: nowrap; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
button.danger { background: #fff; border-color: var(--critical); color: var(--critical); }
button:disabled { opacity: .55; cursor: not-allowed; }
.actions { display: flex; gap: 8px; flex-wrap: wrap; align-items: center; margin: 8px 0; }
table { border-collapse: collapse; width: 100%; background: var(--panel); }
th, td { text-align: left; vertical-align: top; padding: 5px 8px; border-bottom: 1px solid var(--line); }
th { font-size: .85rem; color: var(--muted); font-weight: 600; background: #f0f0ec; }
td { overflow-wrap: anywhere; }
td.num, th.num { text-align: right; white-space: nowrap; }
td.time { white-space: nowrap; }
tr.fresh { animation: fresh 3s ease-out; }
@keyframes fresh { from { background: #fff3c4; } to { background: transparent; } }
@media (prefers-reduced-motion: reduce) { tr.fresh { animation: none; background: #fff8dd; } }
tr.stale td { color: var(--muted); }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 0 6px; border-radius: 3px; font-size: .8rem; font-weight: 600; border: 1px solid currentColor; white-space: nowrap; }
.sev-critical { color: var(--critical); } .sev-high { color: var(--high); } .sev-medium { color: var(--medium); } .sev-low { color: var(--low); }
.state-firing { color: var(--critical); } .state-acknowledged { color: var(--medium); } .state-resolved, .state-accepted { color: var(--low); }
.silent, tr.quarantined td { background: #fdecec; }
tr.suspect td:first-child { box-shadow: inset 4px 0 0 var(--critical); } .flag.dropped { color: var(--critical); }
.state-learning { color: var(--accent); } .state-enforcing, .state-approved, .state-added { color: var(--low); } .state-locked { color: #16232f; }
.state-relearn, .state-flagged, .state-partial { color: var(--medium); } .state-removed { color: var(--critical); } .state-learned { color: var(--muted); }
tr.flagged td { background: #fff8e1; } tr.flagged td:first-child { box-shadow: inset 4px 0 0 #e0c36a; }
.flag { font-weight: 600; color: var(--medium); font-size: .85rem; }
tr.removed td.entry { text-decoration: line-through; color: var(--muted); }
.why { font-size: .85rem; margin: 4px 0; }
ul.why { padding-left: 18px; }
.entry-form { display: flex; flex-direction: column; gap: 4px; min-width: 200px; }
.entry-form .actions { margin: 0; }
.diff-part ul { margin: 4px 0; padding-left: 18px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.pager { display: flex; gap: 12px; align-items: center; margin: 8px 0; }
.live { font-size: .85rem; }
.cols { display: grid; grid-template-columns: minmax(0, 3fr) minmax(280px, 2fr); gap: 16px; }
@media (max-width: 1000px) { .cols { grid-template-columns: 1fr; } }
.signin { max-width: 420px; margin: 48px auto; }
.signin input { width: 100%; }
`;

/**
 * The console's icon, served at /console/favicon.svg (which the page names) and at /favicon.ico
 * (which browsers and tools ask for on their own): both open, so a browser loading the console
 * before sign-in makes no request that needs a token.
 */
export const CONSOLE_ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#16232f"/><path d="M2 10c2-4 4-4 6 0s4 4 6 0" fill="none" stroke="#ff9d00" stroke-width="2"/></svg>
`;
