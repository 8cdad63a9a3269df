/**
 * Runs once per `npm test`: brings the real stack up (reusing services already running, or the
 * ones named in the environment), migrates a database of the tests' own, and hands every test file
 * the environment to build its config from. What it started, it stops at the end.
 */
import { createHash } from 'node:crypto';
import type { TestProject } from 'vitest/node';
import { envFromConfig, loadConfig } from '../lib/config.ts';
import { childEnv } from '../lib/process-env.ts';
import { stackDown, stackUp } from '../scripts/stack/stack.ts';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const env = childEnv();
  // Tests get their own database so they never touch the demo's data.
  env.DATABASE_URL ??= 'postgres://postgres@127.0.0.1:5432/ats_relay_test';
  // A test-only keyring, the same every run so rows left by earlier runs in the test database stay
  // readable (consumers check every stored credential at start-up). Tests prove encryption, not a key.
  env.ATS_RELAY_ENCRYPTION_KEYS ??= ['test2', 'test1'].map((id) => `${id}:${createHash('sha256').update(`ats-relay test key ${id}`).digest('base64')}`).join(',');
  env.ATS_ALLOW_PRIVATE_NETWORKS ??= 'true';
  env.LOG_LEVEL ??= 'warn';
  const config = loadConfig(env);
  const say = (msg: string): void => void process.stdout.write(`[stack] ${msg}\n`);
  const t0 = Date.now();
  const { started } = await stackUp(config, say);
  say(`ready in ${((Date.now() - t0) / 1000).toFixed(1)} s${started.length ? ` (started: ${started.join(', ')})` : ' (all reused)'}`);
  project.provide('env', envFromConfig(config));
  return async () => {
    // Quietly: the run's summary line (test/support/summary-reporter.ts) stays the last thing printed.
    if (started.length) await stackDown(config, () => undefined, started);
  };
}
