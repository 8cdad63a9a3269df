/**
 * One live delivery per application (issue 18's trail): the dispatcher fails an application and
 * forwards it to a tier, then its offset is lost (the process died before the commit: here the
 * group is rewound) and the restarted dispatcher replays the original while the tier copy is due.
 * The replay is acknowledged without a call (the route is recorded in PostgreSQL), and two
 * processes given the same application at once deliver it once (the lease): one application at the
 * sandbox either way.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDeliveryConsumer, type DeliveryConsumer } from '../../consumers/dispatcher/index.ts';
import { withAdmin } from '../../lib/kafka/index.ts';
import { uniqueName } from '../support/config.ts';
import { readTopic, startPipeline, waitFor, type Pipeline } from './support.ts';

let p: Pipeline;
const running: DeliveryConsumer[] = [];

beforeAll(async () => {
  p = await startPipeline({ TOPIC_PARTITIONS: '2', RETRY_TIERS: 'retry-a:3000,retry-b:3000,retry-c:3000' });
});

afterAll(async () => {
  await Promise.all(running.map((c) => c.close()));
  await p?.close();
});

async function start(role: 'dispatcher' | 'retry-a', groupId: string): Promise<DeliveryConsumer> {
  const c = createDeliveryConsumer({ config: p.config, logger: p.logger, role: role === 'dispatcher' ? { role } : { role: 'retry', tier: role }, options: { groupId } });
  running.push(c);
  await c.start();
  await waitFor(`${groupId} to join`, async () => c.ready, 30_000);
  return c;
}

async function stop(c: DeliveryConsumer): Promise<void> {
  await c.close();
  running.splice(running.indexOf(c), 1);
}

function atSandbox(email: string): { candidates: number; applications: number } {
  const candidates = p.sandbox.candidates('greenhouse', p.tenant).filter((c) => JSON.stringify(c.email_addresses ?? []).includes(email));
  const ids = new Set(candidates.map((c) => c.id));
  const applications = p.sandbox.applications('greenhouse', p.tenant).filter((a) => ids.has(a.candidate_id as number));
  return { candidates: candidates.length, applications: applications.length };
}

async function counter(c: DeliveryConsumer, name: 'duplicates' | 'deferred', labels: Record<string, string>): Promise<number> {
  const { values } = await c.metrics[name].get();
  return values.filter((v) => Object.entries(labels).every(([k, want]) => (v.labels as Record<string, unknown>)[k] === want)).reduce((s, v) => s + v.value, 0);
}

it('forwarded to a tier, offset lost, original replayed while the tier copy is due: one application, no call for the replay', async () => {
  const event = p.event();
  p.sandbox.addFault({ kind: 'error', status: 503, platform: 'greenhouse', tenant: p.tenant, method: 'POST', path: '/v1/candidates', times: 1 });
  const group = uniqueName('dispatcher');
  const first = await start('dispatcher', group);
  await p.publish(event);
  await waitFor('the tier copy', async () => (await readTopic(p.kafka, p.config.topics.retryTiers[0]!.topic)).some((r) => r.key?.toString() === event.applicationId));
  await stop(first);
  // What a SIGKILL before the commit leaves: the group's offset still before the original.
  await withAdmin(p.kafka, (admin) => admin.resetOffsetsToEarliest(group, p.config.topics.applications));

  // Slow calls, so the tier copy's delivery and the replay overlap.
  p.sandbox.addFault({ kind: 'latency', ms: 1_500, platform: 'greenhouse', tenant: p.tenant });
  const callsBefore = p.sandbox.state.stats.requests;
  const [replaying] = await Promise.all([start('dispatcher', group), start('retry-a', uniqueName('retry-a'))]);
  await waitFor('delivered', async () => (await p.deliveries.findDelivery(p.integration.id, event.applicationId))?.status === 'delivered', 30_000);
  await waitFor('the replay acknowledged', async () => (await counter(replaying, 'duplicates', { reason: 'already_routed' })) >= 1, 15_000);
  p.sandbox.clearFaults();

  expect(atSandbox(event.candidate.email)).toEqual({ candidates: 1, applications: 1 });
  // Only the tier copy called the ATS (search + create); the replayed original made no call.
  expect(p.sandbox.state.stats.requests - callsBefore).toBeLessThanOrEqual(2);
  const d = await p.deliveries.findDelivery(p.integration.id, event.applicationId);
  expect(d!.tryCount).toBe(2); // the 503 and the delivering call
  await Promise.all([...running].map(stop));
}, 120_000);

it('two processes given the same applications at once: each reaches the ATS once, the loser defers without a try', async () => {
  const events = Array.from({ length: 10 }, () => p.event());
  p.sandbox.addFault({ kind: 'latency', ms: 800, platform: 'greenhouse', tenant: p.tenant });
  // Two groups each read every record: two live copies of every application, at the same moment.
  const [a, b] = await Promise.all([start('dispatcher', uniqueName('copy-a')), start('dispatcher', uniqueName('copy-b'))]);
  await Promise.all(events.map((e) => p.publish(e)));
  await waitFor('all delivered', async () => {
    const rows = await Promise.all(events.map((e) => p.deliveries.findDelivery(p.integration.id, e.applicationId)));
    return rows.every((r) => r?.status === 'delivered');
  }, 60_000);
  // Both copies are done once each group has acknowledged its own (the loser after its wait).
  await waitFor('both copies handled', async () => {
    const acked = (await counter(a, 'duplicates', {})) + (await counter(b, 'duplicates', {}));
    return acked >= events.length;
  }, 30_000);
  p.sandbox.clearFaults();

  for (const e of events) expect(atSandbox(e.candidate.email)).toEqual({ candidates: 1, applications: 1 });
  const deferred = (await counter(a, 'deferred', { reason: 'lease_held' })) + (await counter(b, 'deferred', { reason: 'lease_held' }));
  expect(deferred).toBeGreaterThanOrEqual(1);
  for (const e of events) expect((await p.deliveries.findDelivery(p.integration.id, e.applicationId))!.tryCount).toBe(1);
}, 120_000);
