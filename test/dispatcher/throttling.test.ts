/**
 * Throttling is not failure: a burst for one Greenhouse integration with a scaled-down budget
 * (20 requests / 2 s at the sandbox and in our limiter, like 50 / 10 s scaled), alongside steady
 * traffic to a second integration. Every application is delivered exactly once, none is
 * dead-lettered, no try is used, and the second integration's latency stays near its unthrottled
 * figure. A low circuit threshold would open the circuit if 429s counted as failures.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { DeliveryConsumer } from '../../consumers/dispatcher/index.ts';
import { listThrottled } from '../../consumers/dispatcher/throttle-log.ts';
import type { ApplicationSubmitted } from '../../lib/application.ts';
import { HEADER } from '../../lib/headers.ts';
import type { IntegrationRecord } from '../../registry/integrations.ts';
import { sampleEvent } from '../support/events.ts';
import { uniqueName } from '../support/config.ts';
import { GREENHOUSE_USER, readTopic, startDeliveryConsumers, startPipeline, waitFor, type Pipeline } from './support.ts';

let p: Pipeline;
let burst: IntegrationRecord;
let burstTenant: string;
const consumers: DeliveryConsumer[] = [];

beforeAll(async () => {
  p = await startPipeline({ TOPIC_PARTITIONS: '3', DISPATCHER_MAX_IN_FLIGHT: '64', CIRCUIT_FAILURE_THRESHOLD: '3', ATS_RATE_LIMITS: 'greenhouse=20/2s' });
  burstTenant = uniqueName('campaign');
  const apiKey = `key-${randomUUID()}`;
  p.sandbox.addTenant({ platform: 'greenhouse', tenant: burstTenant, credentials: { apiKey }, users: [GREENHOUSE_USER], jobs: [p.jobId], rateLimit: { limit: 20, windowMs: 2_000 } });
  burst = await p.repo.createIntegration(p.integration.companyId, {
    platform: 'greenhouse',
    name: 'Greenhouse (throttled)',
    settings: { apiVersion: 'v1', onBehalfOf: GREENHOUSE_USER },
    credentials: { apiKey },
    apiBaseUrl: p.sandbox.urlFor('greenhouse', burstTenant),
    enabled: true,
    allowMissingResume: true,
  });
  consumers.push(...(await startDeliveryConsumers(p)));
});

afterAll(async () => {
  await Promise.all(consumers.map((c) => c.close()));
  await p?.close();
});

async function deliveredAt(integrationId: string, ids: string[]): Promise<Map<string, { at: number; tries: number }>> {
  const { rows } = await p.pool.query<{ application_id: string; delivered_at: Date; try_count: number }>(
    "SELECT application_id, delivered_at, try_count FROM deliveries WHERE integration_id = $1 AND application_id = ANY($2) AND status = 'delivered'",
    [integrationId, ids],
  );
  return new Map(rows.map((r) => [r.application_id, { at: r.delivered_at.getTime(), tries: r.try_count }]));
}

/** Steady traffic to the unthrottled integration: `perSecond` for `seconds`; returns publish times. */
async function steady(perSecond: number, seconds: number): Promise<Map<string, number>> {
  const sent = new Map<string, number>();
  const start = Date.now();
  for (let i = 0; i < perSecond * seconds; i++) {
    const due = start + (i * 1000) / perSecond;
    await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
    const event = p.event();
    sent.set(event.applicationId, Date.now());
    await p.publish(event);
  }
  return sent;
}

async function latencies(sent: Map<string, number>): Promise<number[]> {
  const ids = [...sent.keys()];
  const done = await waitFor('steady deliveries', async () => {
    const d = await deliveredAt(p.integration.id, ids);
    return d.size === ids.length ? d : undefined;
  }, 60_000);
  return ids.map((id) => done.get(id)!.at - sent.get(id)!).sort((a, b) => a - b);
}

const pct = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;

it('a burst for one throttled integration: all delivered once, none dead-lettered, no try used; the other integration keeps its latency', async () => {
  // The steady integration has the same scaled budget (10 requests/s) and a delivery with a resume takes three
  // requests: 2.5 applications/s is 75 % of it. At 4/s it was throttled by its own traffic, which is what made
  // its p99 look 3.5× worse "during the burst" — the burst was never the cause.
  // Unthrottled baseline for the steady integration, after a warm-up (connections, JIT, first fetches).
  await latencies(await steady(2.5, 2));
  // 100 samples a phase, so a p99 is the second-slowest delivery rather than the single slowest: with 40 or 60,
  // one neighbour's start-up on the shared box decided the figure (CI saw 161 ms against a limit of 158).
  // 40 s still ends inside the burst (~55 s at the scaled budget), which the mid-burst check below needs.
  const baseline = await latencies(await steady(2.5, 40));

  const N = 200; // the example: 200 applications (400–600 requests) at a scaled 10/s, published at once
  const events: ApplicationSubmitted[] = Array.from({ length: N }, () =>
    sampleEvent({ companyId: burst.companyId, integrationId: burst.id, platform: 'greenhouse', atsJobId: p.jobId }),
  );
  const burstIds = events.map((e) => e.applicationId);
  const t0 = Date.now();
  await Promise.all(events.map((e) => p.publish(e)));
  const duringSent = await steady(2.5, 40);
  const during = await latencies(duringSent);
  // Mid-burst, the episode is on record (what the console, digests and alerts read), the steady integration is not throttled.
  const [episode, ...others] = await listThrottled(p.pool, { integrationIds: [burst.id, p.integration.id] });
  expect(others).toEqual([]);
  expect(episode).toMatchObject({ integrationId: burst.id, integrationName: 'Greenhouse (throttled)', companyId: burst.companyId, platform: 'greenhouse' });
  expect(episode!.deferrals).toBeGreaterThan(0);
  expect(episode!.throttledSince).toBeGreaterThanOrEqual(t0 - 1_000);
  expect(episode!.lastDeferralAt).toBeGreaterThanOrEqual(episode!.throttledSince);
  expect(episode!.nextAttemptAt).toBeDefined();

  const delivered = await waitFor('the burst delivered', async () => {
    const d = await deliveredAt(burst.id, burstIds);
    return d.size === N ? d : undefined;
  }, 150_000);
  const burstSeconds = (Math.max(...[...delivered.values()].map((d) => d.at)) - t0) / 1000;
  // Delivering again after its last deferral ended the episode (kept, with its count, for the record).
  await waitFor('the throttling episode over', async () => (await listThrottled(p.pool, { integrationIds: [burst.id] })).length === 0, 15_000);
  const { rows: ended } = await p.pool.query<{ deferrals: string; ended_at: Date }>('SELECT deferrals::text, ended_at FROM integration_throttling WHERE integration_id = $1', [burst.id]);
  expect(Number(ended[0]!.deferrals)).toBeGreaterThanOrEqual(episode!.deferrals);
  expect(ended[0]!.ended_at.getTime()).toBeGreaterThan(episode!.lastDeferralAt);

  // Exactly once at the ATS.
  const perApplication = new Map<string, number>();
  for (const c of p.sandbox.candidates('greenhouse', burstTenant)) {
    const email = JSON.stringify(c.email_addresses ?? []);
    const id = burstIds.find((i) => email.includes(i));
    if (id) perApplication.set(id, (perApplication.get(id) ?? 0) + 1);
  }
  expect(perApplication.size).toBe(N);
  expect([...perApplication.values()].every((n) => n === 1)).toBe(true);
  expect(p.sandbox.applications('greenhouse', burstTenant)).toHaveLength(N);
  // One counted try each (the delivering call), and the sandbox did throttle us.
  expect([...delivered.values()].every((d) => d.tries === 1)).toBe(true);
  expect(p.sandbox.state.stats.byStatus['429'] ?? 0).toBeGreaterThan(0);

  // Nothing dead-lettered; every hop of the burst is a deferral with try count 0.
  const dlq = (await readTopic(p.kafka, p.config.topics.dlq)).filter((r) => burstIds.includes(r.key?.toString() ?? ''));
  expect(dlq).toHaveLength(0);
  let parked = 0;
  for (const tier of p.config.topics.retryTiers) {
    const hops = await readTopic(p.kafka, tier.topic);
    for (const hop of hops.filter((r) => burstIds.includes(r.key?.toString() ?? ''))) {
      expect(hop.headers[HEADER.tryCount]).toBe('0');
      expect(hop.headers[HEADER.deferredFor]).toBe('rate_limited');
      parked++;
    }
    // The steady integration's records, published during the burst, never left the dispatcher: no hop of any kind.
    expect(hops.filter((r) => duringSent.has(r.key?.toString() ?? ''))).toEqual([]);
  }

  const summary = {
    burst: { applications: N, seconds: burstSeconds, parkedHops: parked, sandbox429s: p.sandbox.state.stats.byStatus['429'] ?? 0 },
    steady: {
      baselineP50: pct(baseline, 0.5), baselineP99: pct(baseline, 0.99),
      duringP50: pct(during, 0.5), duringP99: pct(during, 0.99), samples: [baseline.length, during.length],
    },
  };
  console.log(`throttling: ${JSON.stringify(summary)}`);
  // Its latency is that of an unthrottled integration. What this guards against costs seconds: a record held by
  // the burst's limiter waits for the 2 s window to reopen, a parked one ≥ 2 s. Tails under that are the shared
  // 2-core box, not the burst: a neighbouring test file's start-up moved a p99 (the second-slowest of 100) from
  // 21 to 179 ms once, and in another run made the baseline's 163 ms against 19 ms during the burst. So the p99
  // is held within 2× of its baseline + 100 ms or a fifth of the window, whichever is larger; the median within
  // 2× + 20 ms.
  expect(summary.steady.duringP99).toBeLessThanOrEqual(Math.max(2 * summary.steady.baselineP99 + 100, 400));
  expect(summary.steady.duringP50).toBeLessThanOrEqual(2 * summary.steady.baselineP50 + 20);
}, 300_000);
