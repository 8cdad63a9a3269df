/**
 * The delivery consumers on the real stack: the dispatcher and three short retry tiers
 * (1 s / 1.5 s / 2 s, set through options) against the ATS sandbox.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEADER } from '../../lib/headers.ts';
import { ACKS_ALL } from '../../lib/kafka/index.ts';
import type { DeliveryConsumer } from '../../consumers/dispatcher/index.ts';
import { uniqueName } from '../support/config.ts';
import { readTopic, startDeliveryConsumers, startPipeline, waitFor, type Pipeline } from './support.ts';

let p: Pipeline;
const consumers: DeliveryConsumer[] = [];

function candidatesFor(email: string): unknown[] {
  return p.sandbox.candidates('greenhouse', p.tenant).filter((c) => JSON.stringify(c.email_addresses ?? []).includes(email));
}

async function delivery(applicationId: string) {
  return p.deliveries.findDelivery(p.integration.id, applicationId);
}

beforeAll(async () => {
  p = await startPipeline();
  consumers.push(...(await startDeliveryConsumers(p)));
});

afterAll(async () => {
  await Promise.all(consumers.map((c) => c.close()));
  await p?.close();
});

describe('dispatcher and retry tiers', () => {
  it('delivers an application once, with its resume', async () => {
    const event = p.event();
    await p.publish(event);
    const d = await waitFor('delivery', async () => ((await delivery(event.applicationId))?.status === 'delivered' ? delivery(event.applicationId) : undefined));
    expect(d?.externalCandidateId).toBeTruthy();
    expect(candidatesFor(event.candidate.email)).toHaveLength(1);
  });

  it('fails twice with 503, then succeeds: delivered once, try count 2, never before a due time', async () => {
    const event = p.event();
    p.sandbox.addFault({ kind: 'error', status: 503, platform: 'greenhouse', tenant: p.tenant, method: 'POST', path: '/v1/candidates', times: 2 });
    const published = Date.now();
    await p.publish(event);
    const d = await waitFor('delivery after two retries', async () => ((await delivery(event.applicationId))?.status === 'delivered' ? delivery(event.applicationId) : undefined), 30_000);
    expect(candidatesFor(event.candidate.email)).toHaveLength(1);

    const [tierA, tierB] = p.config.topics.retryTiers;
    const hopA = (await readTopic(p.kafka, tierA!.topic)).find((r) => r.key?.toString() === event.applicationId)!;
    const hopB = (await readTopic(p.kafka, tierB!.topic)).find((r) => r.key?.toString() === event.applicationId)!;
    expect(hopA.headers[HEADER.tryCount]).toBe('1');
    expect(hopB.headers[HEADER.tryCount]).toBe('2');
    expect(hopB.headers[HEADER.errorCode]).toBe('unavailable');
    expect(hopB.headers[HEADER.errorStatus]).toBe('503');
    // Randomized backoff within ±20 % of each tier's delay, and the final try not before the last due time.
    const dueA = Number(hopA.headers[HEADER.dueAt]);
    const dueB = Number(hopB.headers[HEADER.dueAt]);
    expect(dueA - published).toBeGreaterThanOrEqual(800);
    expect(d!.lastAttemptAt!.getTime()).toBeGreaterThanOrEqual(dueB);
    expect(d!.deliveredAt!.getTime() - published).toBeGreaterThanOrEqual(800 + 1_200);
  });

  it('always 503: in the DLQ after the last tier, with every header', async () => {
    const event = p.event();
    p.sandbox.addFault({ kind: 'error', status: 503, platform: 'greenhouse', tenant: p.tenant, method: 'POST', path: '/v1/candidates', times: 4 });
    await p.publish(event);
    const dead = await waitFor('dead letter', async () => (await readTopic(p.kafka, p.config.topics.dlq)).find((r) => r.key?.toString() === event.applicationId), 40_000);
    expect(dead.headers).toMatchObject({
      [HEADER.tryCount]: '4',
      [HEADER.errorCode]: 'unavailable',
      [HEADER.errorStatus]: '503',
      [HEADER.originalTopic]: p.config.topics.applications,
    });
    for (const h of [HEADER.firstFailureAt, HEADER.errorMessage, HEADER.originalPartition, HEADER.originalOffset, HEADER.originalTimestamp, HEADER.failedBy]) {
      expect(dead.headers[h], h).toBeTruthy();
    }
    expect(dead.headers[HEADER.dueAt]).toBeUndefined();
    expect(await p.codec.decode(dead.value!)).toEqual(event);
    expect((await delivery(event.applicationId))?.status).toBe('dead_lettered');
    expect(candidatesFor(event.candidate.email)).toHaveLength(0);
  });

  it('a non-retriable answer (unknown job) goes to the DLQ at once', async () => {
    const event = p.event({ atsJobId: '999' });
    await p.publish(event);
    const dead = await waitFor('dead letter', async () => (await readTopic(p.kafka, p.config.topics.dlq)).find((r) => r.key?.toString() === event.applicationId), 20_000);
    expect(dead.headers[HEADER.tryCount]).toBe('1');
    expect(dead.headers[HEADER.errorCode]).toBe('job_not_found');
    const tierA = await readTopic(p.kafka, p.config.topics.retryTiers[0]!.topic);
    expect(tierA.find((r) => r.key?.toString() === event.applicationId)).toBeUndefined();
  });

  it('Ashby: an unknown job is dead-lettered as job_not_found and nothing is created in the ATS', async () => {
    const tenant = uniqueName('ashby');
    const apiKey = `ash-${crypto.randomUUID()}`;
    p.sandbox.addTenant({ platform: 'ashby', tenant, credentials: { apiKey }, jobs: ['job-known'] });
    const integration = await p.repo.createIntegration(p.integration.companyId, {
      platform: 'ashby',
      name: 'Ashby (sandbox)',
      settings: {},
      credentials: { apiKey },
      apiBaseUrl: p.sandbox.urlFor('ashby', tenant),
      enabled: true,
      allowMissingResume: false,
    });
    const event = p.event({ integrationId: integration.id, platform: 'ashby', atsJobId: 'job-unknown' });
    await p.publish(event);
    const dead = await waitFor('dead letter', async () => (await readTopic(p.kafka, p.config.topics.dlq)).find((r) => r.key?.toString() === event.applicationId), 20_000);
    expect(dead.headers[HEADER.errorCode]).toBe('job_not_found');
    expect(dead.headers[HEADER.tryCount]).toBe('1');
    expect(p.sandbox.candidates('ashby', tenant)).toHaveLength(0);
    expect(p.sandbox.applications('ashby', tenant)).toHaveLength(0);
    expect(p.sandbox.state.uploads.size).toBe(0);
  });

  it('garbage bytes go to the DLQ with the raw bytes intact', async () => {
    const key = uniqueName('garbage');
    const value = Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02]);
    await p.producer.send({ topic: p.config.topics.applications, acks: ACKS_ALL, messages: [{ key, value, headers: { 'x-trace': 't-1' } }] });
    const dead = await waitFor('dead letter', async () => (await readTopic(p.kafka, p.config.topics.dlq)).find((r) => r.key?.toString() === key), 20_000);
    expect(dead.value?.equals(value)).toBe(true);
    expect(dead.headers[HEADER.errorCode]).toBe('decode_failed');
    expect(dead.headers['x-trace']).toBe('t-1');
  });

  it('a record not yet due on one partition does not delay another partition', async () => {
    const tierC = p.config.topics.retryTiers[2]!;
    const held = p.event();
    const free = p.event();
    const now = Date.now();
    const send = async (ev: typeof held, partition: number, dueAt: number) =>
      p.producer.send({
        topic: tierC.topic,
        acks: ACKS_ALL,
        messages: [{ key: ev.applicationId, value: await p.codec.encode(ev), partition, headers: { [HEADER.tryCount]: '3', [HEADER.dueAt]: String(dueAt) } }],
      });
    await send(held, 0, now + 60_000);
    await send(free, 1, now);
    await waitFor('the due record on the other partition', async () => (await delivery(free.applicationId))?.status === 'delivered', 10_000);
    expect(await delivery(held.applicationId)).toBeNull();
  });

  it('a 429 with Retry-After: 5 defers the delivery, not sooner than 5 s, without using a try', async () => {
    const event = p.event();
    p.sandbox.addFault({ kind: 'rate_limit', retryAfterSeconds: 5, platform: 'greenhouse', tenant: p.tenant, method: 'POST', path: '/v1/candidates', times: 1 });
    const published = Date.now();
    await p.publish(event);
    const d = await waitFor('delivery after the 429', async () => ((await delivery(event.applicationId))?.status === 'delivered' ? delivery(event.applicationId) : undefined), 20_000);
    expect(d!.deliveredAt!.getTime() - published).toBeGreaterThanOrEqual(5_000);
    expect(d!.tryCount).toBe(1); // the delivering call; the throttled one is not a try
    // A 5 s wait is spent in process: no hop at all, and certainly no failure hop.
    for (const tier of p.config.topics.retryTiers) {
      const hops = (await readTopic(p.kafka, tier.topic)).filter((r) => r.key?.toString() === event.applicationId);
      for (const hop of hops) {
        expect(hop.headers[HEADER.deferredFor]).toBe('rate_limited');
        expect(hop.headers[HEADER.tryCount]).toBe('0');
      }
    }
  });

  it('a replayed event that was already delivered is acknowledged without calling the ATS', async () => {
    const event = p.event();
    await p.publish(event);
    await waitFor('delivery', async () => (await delivery(event.applicationId))?.status === 'delivered');
    const before = p.sandbox.state.stats.requests;
    await p.publish(event);
    await p.publish({ ...event, eventId: crypto.randomUUID() });
    const marker = p.event();
    await p.publish(marker);
    await waitFor('a later delivery', async () => (await delivery(marker.applicationId))?.status === 'delivered');
    expect(candidatesFor(event.candidate.email)).toHaveLength(1);
    // Only the marker's own calls reached the sandbox (search + create + nothing for the replays).
    expect(p.sandbox.state.stats.requests - before).toBeLessThanOrEqual(3);
  });
});
