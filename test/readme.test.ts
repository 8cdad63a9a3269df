/**
 * The README is the operators' handbook: its error-code table and its list of commands must say
 * what the code does.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { errorTableMarkdown } from '../dev/error-table.ts';
import { ALL_ERROR_CODES } from '../lib/error-codes.ts';
import { HEADER } from '../lib/headers.ts';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };

describe('README', () => {
  it('shows the error-code table generated from lib/error-codes.ts, every code once', () => {
    const section = readme.slice(readme.indexOf('<!-- error-table:start -->'), readme.indexOf('<!-- error-table:end -->'));
    expect(section, 'run `npm run docs:errors`').toBe(`<!-- error-table:start -->\n${errorTableMarkdown()}\n`);
    const rows = [...section.matchAll(/^\|\s*`([a-z_]+)`\s*\|\s*(yes|no)\s*\|/gm)].map((m) => m[1]!);
    expect(rows.sort()).toEqual([...ALL_ERROR_CODES].sort());
  });

  it('documents every header of the header contract', () => {
    const section = readme.slice(readme.indexOf('## Header contract'), readme.indexOf('## Error codes'));
    for (const name of Object.values(HEADER)) expect(section, name).toContain(`\`${name}\``);
  });

  it('shows the two commands and only npm scripts that exist', () => {
    expect(readme).toContain('npm run demo');
    expect(readme).toContain('npm test');
    for (const m of readme.matchAll(/npm run ([a-z:-]+)/g)) expect(pkg.scripts[m[1]!], `npm run ${m[1]}`).toBeDefined();
  });
});
