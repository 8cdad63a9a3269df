/**
 * Runs once per `npm test`: brings the real stack up (reusing services already running, or the
 * ones named in the environment), migrates a database of the tests' own, and hands every test file
 * the environment to build its config from. What it started, it stops at the end.
 *
 * TEST_STACK=containers starts docker-compose.yml's images with testcontainers first (needs a
 * Docker engine; test/support/containers.ts), then takes the same path: the services answer, so
 * they are reused, and the database is created and migrated.
 */
import { createHash } from 'node:crypto';
import type { TestProject } from 'vitest/node';
import { envFromConfig, loadConfig } from '../lib/config.ts';
import { childEnv } from '../dev/process-env.ts';
import { stackDown, stackUp } from '../dev/stack/stack.ts';
import type { StartedContainerStack } from './support/containers.ts';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const env = childEnv();
  const say = (msg: string): void => void process.stdout.write(`[stack] ${msg}\n`);
  let containers: StartedContainerStack | undefined;
  if (loadConfig(env).stack.testStack === 'containers') {
    // Loaded only here: the default path never touches testcontainers (nor looks for Docker).
    const { CONTAINER_STACK_ENV, startContainerStack } = await import('./support/containers.ts');
    for (const [k, v] of Object.entries(CONTAINER_STACK_ENV)) env[k] ??= v;
    containers = await startContainerStack(say);
  }
  // Tests get their own database so they never touch the demo's data.
  env.DATABASE_URL ??= 'postgres://postgres@127.0.0.1:5432/ats_relay_test';
  // A test-only keyring, the same every run so rows left by earlier runs in the test database stay
  // readable (consumers check every stored credential at start-up). Tests prove encryption, not a key.
  env.ATS_RELAY_ENCRYPTION_KEYS ??= ['test2', 'test1'].map((id) => `${id}:${createHash('sha256').update(`ats-relay test key ${id}`).digest('base64')}`).join(',');
  env.ATS_ALLOW_PRIVATE_NETWORKS ??= 'true';
  env.LOG_LEVEL ??= 'warn';
  const config = loadConfig(env);
  const t0 = Date.now();
  const { started } = await stackUp(config, say);
  say(`ready in ${((Date.now() - t0) / 1000).toFixed(1)} s${started.length ? ` (started: ${started.join(', ')})` : ' (all reused)'}`);
  project.provide('env', envFromConfig(config));
  return async () => {
    // Quietly: the run's summary line (test/support/summary-reporter.ts) stays the last thing printed.
    if (started.length) await stackDown(config, () => undefined, started);
    await containers?.stop();
  };
}
