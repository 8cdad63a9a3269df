/**
 * The README's configuration table, generated from lib/config.ts (test/config.test.ts keeps the
 * two equal). `npm run docs:config` rewrites the table in README.md between its markers.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { CONFIG_VARS } from '../lib/config.ts';

/** Replace what stands between `<!-- name:start -->` and `<!-- name:end -->` in README.md. */
export function writeReadmeSection(name: string, body: string): void {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const readmePath = new URL('../README.md', import.meta.url);
  const readme = readFileSync(readmePath, 'utf8');
  const from = readme.indexOf(start);
  const to = readme.indexOf(end);
  if (from < 0 || to < from) throw new Error(`README.md has no ${start} … ${end} markers`);
  writeFileSync(readmePath, `${readme.slice(0, from + start.length)}\n${body}\n${readme.slice(to)}`);
}

/** A generator's command line: write the section, say so, exit 1 with the reason when it cannot. */
export function regenerateReadmeSection(name: string, body: () => string, what: string): void {
  try {
    writeReadmeSection(name, body());
    console.log(`README.md ${what} updated`);
  } catch (err) {
    console.error((err as Error).message);
    process.exit(1);
  }
}

export function configTableMarkdown(): string {
  const rows = CONFIG_VARS.map((v) => `| \`${v.env}\` | ${v.default === undefined ? '—' : `\`${v.default}\``} | ${v.doc} |`);
  return ['| Variable | Default | Meaning |', '|---|---|---|', ...rows].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) regenerateReadmeSection('config-table', configTableMarkdown, 'configuration table');
