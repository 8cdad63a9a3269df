/**
 * A rollout on a new environment: every role starts at the same moment on a subject the registry has
 * never seen. Each one comes up (every /readyz answers ready), the subject ends with
 * the schema and BACKWARD compatibility, and each stops cleanly on SIGTERM.
 */
import { afterAll, expect, it } from 'vitest';
import { envFromConfig } from '../../lib/config.ts';
import { createKafka, withAdmin } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/logger.ts';
import { spawnTs, type TsProcess } from '../../dev/spawn-entrypoint.ts';
import { ensureTopics, topicSpecs } from '../../lib/topics.ts';
import { freePort } from '../dead-letters/support.ts';
import { testConfig, uniqueName } from '../support/config.ts';
import { deleteTestTopics } from '../support/pipeline-base.ts';
import { waitFor } from './support.ts';

const children: TsProcess[] = [];
afterAll(() => {
  for (const c of children) c.child.kill('SIGKILL');
});

async function readyz(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2_000) })).status === 200;
  } catch {
    return false;
  }
}

it('eight processes started at once on a new subject all come up', async () => {
  const config = testConfig({ TOPIC_APPLICATIONS: uniqueName('apps'), TOPIC_PARTITIONS: '2', RETRY_TIERS: 'retry-a:1000,retry-b:1500,retry-c:2000', S3_PREFIX: uniqueName('start') });
  const kafka = createKafka(config.kafka, createLogger({ level: 'warn', name: 'test' }));
  await withAdmin(kafka, (admin) => ensureTopics(admin, topicSpecs(config.topics)));
  const subject = `${config.topics.applications}-value`;
  expect((await fetch(`${config.schemaRegistry.url}/subjects/${subject}/versions`)).status).toBe(404);

  const env = { ...envFromConfig(config), LOG_LEVEL: 'warn' };
  const consumers: Array<[string[], number]> = [];
  for (const args of [['--role', 'dispatcher'], ...config.topics.retryTiers.map((t) => ['--role', 'retry', '--tier', t.name]), ['--role', 'dlq-s3'], ['--role', 'alerts']]) {
    consumers.push([[...args, '--group', uniqueName('start')], await freePort()]);
  }
  const relays: number[] = [];
  while (consumers.length + relays.length < 8) relays.push(await freePort());
  for (const [args, port] of consumers) children.push(spawnTs('consumers/cli.ts', args, { ...env, HTTP_PORT: String(port) }));
  for (const port of relays) children.push(spawnTs('producers/outbox/cli.ts', [], { ...env, HTTP_PORT: String(port) }));
  expect(children).toHaveLength(8);

  const gone = (): TsProcess[] => children.filter((c) => c.child.exitCode !== null || c.child.signalCode !== null);
  await waitFor('every process ready', async () => {
    if (gone().length) throw new Error(`a process exited at start:\n${gone().map((c) => c.output()).join('\n')}`);
    return (await Promise.all([...consumers.map(([, port]) => port), ...relays].map(readyz))).every(Boolean);
  }, 90_000);
  const config_ = (await (await fetch(`${config.schemaRegistry.url}/config/${subject}`)).json()) as { compatibilityLevel: string };
  expect(config_.compatibilityLevel).toBe('BACKWARD');
  expect(gone()).toHaveLength(0);

  for (const c of children) c.child.kill('SIGTERM');
  const codes = await Promise.all(children.map((c) => c.exited));
  expect(codes, children.map((c) => c.output()).join('\n')).toEqual(children.map(() => 0));
  await deleteTestTopics(kafka, config);
}, 180_000);
