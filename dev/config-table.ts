/**
 * The README's configuration table, generated from lib/config.ts (test/config.test.ts keeps the
 * two equal). `npm run docs:config` rewrites the table in README.md between its markers.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { CONFIG_VARS } from '../lib/config.ts';

const START = '<!-- config-table:start -->';
const END = '<!-- config-table:end -->';

export function configTableMarkdown(): string {
  const rows = CONFIG_VARS.map((v) => `| \`${v.env}\` | ${v.default === undefined ? '—' : `\`${v.default}\``} | ${v.doc} |`);
  return ['| Variable | Default | Meaning |', '|---|---|---|', ...rows].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const readmePath = new URL('../README.md', import.meta.url);
  const readme = readFileSync(readmePath, 'utf8');
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) {
    console.error(`README.md has no ${START} … ${END} markers`);
    process.exit(1);
  }
  writeFileSync(readmePath, `${readme.slice(0, start + START.length)}\n${configTableMarkdown()}\n${readme.slice(end)}`);
  console.log('README.md configuration table updated');
}
