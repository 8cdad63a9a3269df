/**
 * The README is the operators' handbook: its error-code table and its list of commands must say
 * what the code does.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ATS_ERROR_CODES, RETRIABLE } from '../connectors/ats-error.ts';
import { DISPATCH_ERROR_CODES } from '../consumers/dispatcher/handler.ts';
import { HEADER } from '../lib/headers.ts';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };

describe('README', () => {
  it('lists every error code once, with the retriable flag the code has', () => {
    const section = readme.slice(readme.indexOf('## Error codes'), readme.indexOf('\n## ', readme.indexOf('## Error codes') + 1));
    const rows = [...section.matchAll(/^\|\s*`([a-z_]+)`\s*\|\s*(yes|no)\s*\|/gm)].map((m) => [m[1]!, m[2] === 'yes'] as const);
    const expected = new Map<string, boolean>([
      ...ATS_ERROR_CODES.map((c) => [c, RETRIABLE[c]] as const),
      ...Object.entries(DISPATCH_ERROR_CODES).map(([c, v]) => [c, v.retriable] as const),
    ]);
    expect(rows.map(([c]) => c).sort()).toEqual([...expected.keys()].sort());
    for (const [code, retriable] of rows) expect(retriable, code).toBe(expected.get(code));
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
