/**
 * What every command an image runs must be (Dockerfile CMD, docker-compose.yml, deploy/k8s/):
 * plain node on a file `npm run build` emits, so no npm or TypeScript loader is in the process.
 */
import { expect } from 'vitest';
import { BUILT_ENTRYPOINTS } from '../../dev/build.ts';

export function expectBuiltCommand(where: string, command: string[]): void {
  expect(command[0], `${where}: runs node itself (not npm, not tsx)`).toBe('node');
  const file = command[1]!;
  const known = file === 'bin/ats-relay.mjs' ? command[2] === 'consume' : (Object.values(BUILT_ENTRYPOINTS) as string[]).includes(file);
  expect(known, `${where}: ${command.join(' ')} is not an entrypoint the build emits`).toBe(true);
}
