/**
 * A redriven dead letter is delivered by the dispatcher, and running the same redrive again does
 * not reach the ATS a second time (the dispatcher's delivery log dedupes).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeliveryConsumer, type DeliveryConsumer } from '../../consumers/dispatcher/index.ts';
import { envFromConfig } from '../../lib/config.ts';
import { failureHeaders } from '../../lib/headers.ts';
import { ACKS_ALL, withAdmin } from '../../lib/kafka/index.ts';
import { uniqueName } from '../support/config.ts';
import { spawnTs } from '../../dev/spawn-entrypoint.ts';
import { startPipeline, waitFor, type Pipeline } from '../dispatcher/support.ts';

let p: Pipeline;
let dispatcher: DeliveryConsumer;

async function redriveCli(args: string[]): Promise<string> {
  const child = spawnTs('scripts/redrive/cli.ts', args, { ...envFromConfig(p.config), LOG_LEVEL: 'warn' });
  const code = await child.exited;
  expect(code, child.output()).toBe(0);
  return child.output();
}

/** The dispatcher has handled everything on the main topic so far. */
async function caughtUp(): Promise<boolean> {
  return withAdmin(p.kafka, async (admin) => {
    const high = await admin.fetchTopicOffsets(p.config.topics.applications);
    const committed = (await admin.fetchOffsets(dispatcher.groupId, [p.config.topics.applications]))[0]!.partitions;
    return high.every((h) => h.high === '0' || committed.find((c) => c.partition === h.partition)?.offset === h.high);
  });
}

beforeAll(async () => {
  p = await startPipeline();
  dispatcher = createDeliveryConsumer({ config: p.config, logger: p.logger, role: { role: 'dispatcher' }, options: { groupId: uniqueName('dispatcher') } });
  await dispatcher.start();
  await waitFor('dispatcher to join', async () => dispatcher.ready, 30_000);
});

afterAll(async () => {
  await dispatcher?.close();
  await p?.close();
});

describe('redrive end to end', () => {
  it('a dead letter redriven after the fix is delivered once, and a second redrive is harmless', async () => {
    const event = p.event();
    const now = Date.now();
    const headers = failureHeaders(
      { topic: p.config.topics.applications, partition: 0, offset: '7', timestamp: String(now - 60_000), headers: { 'trace-id': randomUUID() } },
      { code: 'auth_failed', message: 'the ATS said 401', status: 401 },
      { tryCount: 1, failedBy: 'ats-relay.dispatcher', now: now - 30_000 },
    );
    await p.producer.send({ topic: p.config.topics.dlq, acks: ACKS_ALL, messages: [{ key: event.applicationId, value: await p.codec.encode(event), headers }] });

    const first = await redriveCli(['--company', event.companyId, '--error-code', 'auth_failed']);
    expect(first).toMatch(/sent\s+1/);
    const d = await waitFor('delivery', async () => {
      const row = await p.deliveries.findDelivery(p.integration.id, event.applicationId);
      return row?.status === 'delivered' ? row : undefined;
    });
    expect(d.externalCandidateId).toBeTruthy();
    const candidates = (): unknown[] => p.sandbox.candidates('greenhouse', p.tenant).filter((c) => JSON.stringify(c.email_addresses ?? []).includes(event.candidate.email));
    expect(candidates()).toHaveLength(1);

    const duplicatesBefore = (await dispatcher.metrics.duplicates.get()).values.reduce((n, v) => n + v.value, 0);
    const second = await redriveCli(['--company', event.companyId, '--error-code', 'auth_failed']);
    expect(second).toMatch(/sent\s+1/);
    await waitFor('dispatcher to handle the second redrive', caughtUp, 30_000);
    const duplicatesAfter = (await dispatcher.metrics.duplicates.get()).values.reduce((n, v) => n + v.value, 0);
    expect(duplicatesAfter).toBe(duplicatesBefore + 1);
    expect(candidates()).toHaveLength(1);
  });
});
