/**
 * The page shell every console page shares: header with the signed-in scope, navigation (operator
 * pages only for admin tokens), sign-out, and one small stylesheet that works from a phone's width
 * to a desktop. No script is needed to use any page; two pages add a few lines of progressive
 * enhancement (test connection without a reload, auto-refresh).
 */
import type { ConsoleSession } from './sessions.ts';
import { html, trusted, type Html, type Renderable } from './html.ts';

export interface PageOptions {
  title: string;
  session: ConsoleSession | undefined;
  csrfToken: string;
  /** Which navigation entry is current. */
  active?: NavKey;
  body: Renderable;
  /** Reload the page every n seconds (pipeline, a running redrive). */
  refreshSeconds?: number;
}

export type NavKey = 'integrations' | 'pipeline' | 'topics' | 'dead-letters' | 'redrives' | 'alerts';

const NAV: Array<{ key: NavKey; href: string; label: string; admin: boolean }> = [
  { key: 'integrations', href: '/console/integrations', label: 'Integrations', admin: false },
  { key: 'pipeline', href: '/console/pipeline', label: 'Pipeline', admin: true },
  { key: 'topics', href: '/console/topics', label: 'Topic inspector', admin: true },
  { key: 'dead-letters', href: '/console/dead-letters', label: 'Dead letters', admin: true },
  { key: 'redrives', href: '/console/redrives', label: 'Redrive history', admin: true },
  { key: 'alerts', href: '/console/alerts', label: 'Alerts', admin: true },
];

const CSS = `
:root{--fg:#1d2330;--muted:#5b6475;--bg:#f5f6f8;--card:#fff;--line:#d9dde5;--accent:#1f5fbf;--ok:#1e7d3a;--warn:#a86400;--bad:#b3261e}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
a{color:var(--accent)}a:focus,button:focus,input:focus,select:focus,textarea:focus,summary:focus{outline:3px solid #8db4f0;outline-offset:1px}
header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;padding:.6rem 1rem;background:#14213d;color:#fff}
header .brand{font-weight:700;color:#fff;text-decoration:none}header nav{display:flex;flex-wrap:wrap;gap:.25rem}
header nav a{color:#dfe7f5;text-decoration:none;padding:.3rem .6rem;border-radius:4px}header nav a[aria-current=page]{background:#2c4a80;color:#fff}
header .who{margin-left:auto;display:flex;gap:.5rem;align-items:center;font-size:.9em}header .who button{background:transparent;color:#fff;border:1px solid #8a9ab8}
main{max-width:1240px;margin:0 auto;padding:1rem}h1{font-size:1.4rem;margin:.2rem 0 1rem}h2{font-size:1.1rem;margin:1.2rem 0 .5rem}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:1rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:1rem}
.card h2{margin:0 0 .3rem;font-size:1.05rem}.muted{color:var(--muted)}.small{font-size:.85em}
.logo{display:inline-grid;place-items:center;width:2rem;height:2rem;border-radius:6px;color:#fff;font-weight:700;margin-right:.5rem;vertical-align:middle}
.logo.greenhouse{background:#24a47f}.logo.lever{background:#4b5563}.logo.workable{background:#1a9eb0}.logo.ashby{background:#5a4fcf}.logo.generic{background:#64748b}
.badge{display:inline-block;padding:.05rem .45rem;border-radius:999px;font-size:.8em;border:1px solid var(--line);background:#eef1f6}
.badge.ok{background:#e3f4e8;border-color:#9fd3ad;color:var(--ok)}.badge.bad{background:#fbe6e4;border-color:#eeb0aa;color:var(--bad)}.badge.warn{background:#fdf0dc;border-color:#e8c48a;color:var(--warn)}
table{width:100%;border-collapse:collapse;background:var(--card);font-size:.92em}th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#eef1f6;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}.scroll{overflow-x:auto;border:1px solid var(--line);border-radius:6px;margin-bottom:1rem}
form.inline{display:inline}label{display:block;font-weight:600;margin:.6rem 0 .2rem}.req{color:var(--bad)}
input[type=text],input[type=password],input[type=url],input[type=number],input[type=search],select,textarea{width:100%;max-width:34rem;padding:.45rem .5rem;border:1px solid #aab2c0;border-radius:4px;font:inherit;background:#fff}
input[aria-invalid=true],select[aria-invalid=true]{border-color:var(--bad);background:#fff7f6}.field-error{color:var(--bad);font-size:.88em;margin:.2rem 0}
.hint{color:var(--muted);font-size:.85em;margin:.15rem 0}
button,.button{display:inline-block;font:inherit;padding:.42rem .9rem;border-radius:4px;border:1px solid var(--accent);background:var(--accent);color:#fff;cursor:pointer;text-decoration:none}
button.secondary,.button.secondary{background:#fff;color:var(--accent)}button.danger{background:var(--bad);border-color:var(--bad)}
.actions{display:flex;flex-wrap:wrap;gap:.5rem;margin-top:.8rem;align-items:center}
.tabs{display:flex;flex-wrap:wrap;gap:.25rem;border-bottom:1px solid var(--line);margin-bottom:1rem}.tabs a{padding:.45rem .8rem;text-decoration:none;border:1px solid transparent;border-bottom:none;border-radius:6px 6px 0 0}
.tabs a[aria-current=page]{background:var(--card);border-color:var(--line);font-weight:600}
.notice{padding:.7rem 1rem;border-radius:6px;border:1px solid var(--line);background:var(--card);margin:0 0 1rem}.notice.error{border-color:#eeb0aa;background:#fbe6e4}.notice.ok{border-color:#9fd3ad;background:#e3f4e8}
.empty{padding:2rem 1rem;text-align:center;color:var(--muted);background:var(--card);border:1px dashed var(--line);border-radius:8px}
.figures{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;margin:.4rem 0}.figures div{min-width:5.5rem}.figures b{display:block;font-size:1.2rem}
pre,code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85em}pre{white-space:pre-wrap;word-break:break-all;background:#f0f2f6;padding:.5rem;border-radius:4px;margin:.2rem 0}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:.3rem 0}dl.kv dt{color:var(--muted)}dl.kv dd{margin:0;word-break:break-all}
.filters{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:flex-end;margin-bottom:1rem}.filters label{margin:0}.filters input,.filters select{width:auto}
.chart svg{width:100%;height:auto;max-width:900px;background:var(--card);border:1px solid var(--line);border-radius:6px}
progress{width:100%;max-width:34rem;height:1.1rem}
.skip{position:absolute;left:-999px;top:0;background:#fff;padding:.4rem .8rem;z-index:1}.skip:focus{left:.5rem}
@media (max-width:640px){main{padding:.6rem}header .who{margin-left:0}.cards{grid-template-columns:1fr}th,td{padding:.3rem}}
`;

/** After a rejected form, the keyboard lands on the first field the server marked. */
const FOCUS_FIRST_ERROR = "var e=document.querySelector('[aria-invalid=true]');if(e){e.focus();e.scrollIntoView({block:'center'})}";

export function renderPage(o: PageOptions): string {
  const admin = o.session?.scope.kind === 'admin';
  const who = o.session ? (o.session.scope.kind === 'admin' ? 'operator (admin token)' : `company ${o.session.scope.companyId}`) : '';
  const nav = o.session ? NAV.filter((n) => admin || !n.admin) : [];
  const page: Html = html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
${o.refreshSeconds ? html`<meta http-equiv="refresh" content="${o.refreshSeconds}">` : ''}
<title>${o.title} · ats-relay console</title><style>${trusted(CSS)}</style></head>
<body><a class="skip" href="#main">Skip to content</a><header><a class="brand" href="/console/">ats-relay console</a>
${nav.length ? html`<nav aria-label="Main">${nav.map((n) => html`<a href="${n.href}"${o.active === n.key ? trusted(' aria-current="page"') : ''}>${n.label}</a>`)}</nav>` : ''}
${o.session
  ? html`<div class="who"><span>${who} · ${o.session.tokenName}</span><form class="inline" method="post" action="/console/sign-out"><input type="hidden" name="_csrf" value="${o.csrfToken}"><button type="submit">Sign out</button></form></div>`
  : ''}
</header><main id="main">${o.body}</main>
<script>${trusted(FOCUS_FIRST_ERROR)}</script></body></html>`;
  return page.value;
}

/** The hidden field every state-changing form carries. */
export const csrfField = (token: string): Html => html`<input type="hidden" name="_csrf" value="${token}">`;

export function notice(kind: 'ok' | 'error' | 'info', text: Renderable): Html {
  return html`<div class="notice ${kind === 'info' ? '' : kind}" role="${kind === 'error' ? 'alert' : 'status'}">${text}</div>`;
}
