/**
 * A consumer (every role) whose Kafka client gives up must not sit "up" doing nothing: it reports not-ready and
 * exits non-zero so its supervisor restarts it. Made to crash for real: the topic its group reads is
 * deleted under it.
 */
import { afterAll, expect, it } from 'vitest';
import { withAdmin } from '../../lib/kafka/index.ts';
import { exited, freePort, spawnConsumer } from '../dead-letters/support.ts';
import { uniqueName } from '../support/config.ts';
import { startPipeline, waitFor, type Pipeline } from './support.ts';

// One pipeline per case: deleting its topic leaves nothing for the next case to use.
const pipelines: Pipeline[] = [];

afterAll(async () => {
  await Promise.all(pipelines.map((p) => p.close()));
});

async function readyz(port: number): Promise<number | 'down'> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2_000) })).status;
  } catch {
    return 'down';
  }
}

// Every consumer role runs on the same runtime (consumers/runtime); each is crashed on the topic it reads.
const roles: Array<{ role: string; args: string[]; topic(p: Pipeline): string }> = [
  { role: 'dispatcher', args: [], topic: (p) => p.config.topics.applications },
  { role: 'retry', args: ['--tier', 'retry-a'], topic: (p) => p.config.topics.retryTiers[0]!.topic },
  { role: 'dlq-s3', args: [], topic: (p) => p.config.topics.dlq },
  { role: 'alerts', args: [], topic: (p) => p.config.topics.dlq },
];

it.each(roles)('the group topic deleted under a running $role: not ready, then exit non-zero', async ({ role, args, topic }) => {
  const p = await startPipeline();
  pipelines.push(p);
  const port = await freePort();
  const child = spawnConsumer(p.config, role, { HTTP_PORT: String(port), LOG_LEVEL: 'error' }, [...args, '--group', uniqueName(role)]);
  const code = exited(child);
  await waitFor(`${role} ready`, async () => (await readyz(port)) === 200, 60_000);

  await withAdmin(p.kafka, (admin) => admin.deleteTopics([topic(p)]));
  const seen: Array<number | 'down'> = [];
  const watching = (async () => {
    while (child.exitCode === null && child.signalCode === null) {
      seen.push(await readyz(port));
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const result = await Promise.race([code, new Promise<'still running'>((r) => setTimeout(() => r('still running'), 100_000))]);
  if (result === 'still running') child.kill('SIGKILL');
  await watching;
  expect(result).not.toBe('still running');
  expect(result).not.toBe(0);
  // Once it stopped saying ready (crash noticed, or gone), it never said ready again.
  const firstNotReady = seen.findIndex((s) => s !== 200);
  if (firstNotReady >= 0) expect(seen.slice(firstNotReady).every((s) => s === 503 || s === 'down')).toBe(true);
}, 150_000);
