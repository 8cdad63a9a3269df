/**
 * `npm run build`: the JavaScript that production runs with plain `node` (no tsx loader, no npm as
 * PID 1). tsc emits dist/ with the sources' folder layout and rewrites the `.ts` import specifiers to
 * `.js`; the files the code reads at run time relative to its own module (`import.meta.url`) are
 * copied to the same place under dist/, so `dist/lib/serde.js` finds `dist/schemas/…` exactly as
 * `lib/serde.ts` finds `schemas/…`.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Read at run time next to the code; a new one belongs here (test/build.test.ts checks the list). */
export const RUNTIME_ASSETS = ['schemas', 'db/migrations'] as const;
/** The entrypoints an image runs, by the command that runs them in development. */
export const BUILT_ENTRYPOINTS = {
  consume: 'dist/consumers/cli.js',
  api: 'dist/api/cli.js',
  'outbox-relay': 'dist/producers/outbox/cli.js',
  'db:migrate': 'dist/scripts/db-migrate.js',
  topics: 'dist/scripts/topics.js',
  integrations: 'dist/scripts/integrations.js',
  redrive: 'dist/scripts/redrive/cli.js',
  sandbox: 'dist/sandbox/cli.js',
} as const;

export function build(): void {
  rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true });
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`tsc -p tsconfig.build.json exited ${result.status ?? result.signal}`);
  for (const dir of RUNTIME_ASSETS) cpSync(new URL(`../${dir}`, import.meta.url), new URL(`../dist/${dir}`, import.meta.url), { recursive: true, filter: (src) => !src.endsWith('.ts') });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    build();
  } catch (err) {
    process.stderr.write(`build: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
