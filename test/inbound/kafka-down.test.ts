/**
 * Webhooks while Kafka is down, for real: the API and the outbox relay run against a private broker
 * (dev/stack/private-broker.ts; the shared one is never touched), the broker is SIGKILLed, signed
 * webhooks of every vendor arrive and are accepted (made durable in PostgreSQL first), the relay
 * fails to publish them, the broker comes back — and each status event is on
 * `ats.application-status` exactly once, read back with a plain Avro decoder.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Platform } from '../../registry/integration.ts';
import { startPrivateBroker, type PrivateBroker } from '../../dev/stack/private-broker.ts';
import { testConfig } from '../support/config.ts';
import { inboundHarness, webhookReceivers, type DeliveredIds, type InboundHarness, type Receiver } from './support.ts';

let broker: PrivateBroker;
let h: InboundHarness;
beforeAll(async () => {
  broker = await startPrivateBroker(testConfig(), { name: 'webhooks' });
  h = await inboundHarness({ KAFKA_BROKERS: broker.brokers.join(',') });
  await h.startRelay();
}, 240_000);
afterAll(async () => {
  await h?.close();
  await broker?.close();
}, 60_000);

it('Kafka SIGKILLed: signed webhooks of every vendor are accepted, and each status event is published exactly once after it is back', async () => {
  const { receiver, delivered, spec } = webhookReceivers(h);
  const topic = h.config.inbound.statusTopic;
  const platforms: Platform[] = ['greenhouse', 'lever', 'workable', 'ashby', 'generic'];
  const receivers: Receiver[] = [];
  for (const p of platforms) receivers.push(await receiver(p));

  // Before the outage the relay publishes (its producer is connected to the broker about to die).
  const before = await delivered(receivers[0]!);
  expect((await h.sandbox.fireWebhooks([spec(receivers[0]!, before)])).map((r) => r.status)).toEqual([200]);
  await expect.poll(async () => (await h.read(topic)).filter((e) => e.key === before.applicationId).length, { timeout: 30_000, interval: 300 }).toBe(1);

  await broker.kill();
  const apps: Array<{ r: Receiver; ids: DeliveredIds }> = [];
  for (const r of receivers) for (let i = 0; i < 2; i++) apps.push({ r, ids: await delivered(r) });
  // One vendor retries its delivery while Kafka is down: still one event.
  const results = await h.sandbox.fireWebhooks(apps.map(({ r, ids }, i) => spec(r, ids, i === 0 ? { faults: { duplicate: true } } : {})));
  expect(results.map((r) => r.status)).toEqual(Array<number>(apps.length + 1).fill(200));
  const keys = apps.map((a) => a.ids.applicationId);
  const pending = async (): Promise<Array<{ key: string; attempts: number; sent: boolean }>> =>
    (await h.pool.query<{ key: string; attempts: number; sent: boolean }>('SELECT key, attempts, sent_at IS NOT NULL AS sent FROM outbox WHERE topic = $1 AND key = ANY($2::text[])', [topic, keys])).rows;
  // Accepted means durable: one outbox row per application, none sent.
  expect((await pending()).map((r) => r.key).sort()).toEqual([...keys].sort());
  // The relay really met the outage: a send failed and the claim was rolled back (rows still pending).
  await expect.poll(async () => (await pending()).some((r) => r.attempts > 0), { timeout: 90_000, interval: 500 }).toBe(true);
  expect((await pending()).every((r) => !r.sent)).toBe(true);
  // …and says so: its /readyz answers not ready while its batches fail.
  await expect.poll(() => h.relayStats()?.failing, { timeout: 30_000, interval: 200 }).toBe(true);

  await broker.restart();
  await expect.poll(async () => (await pending()).every((r) => r.sent), { timeout: 120_000, interval: 500 }).toBe(true);
  expect(h.relayStats()?.failing).toBe(false);
  const events = (await h.read(topic)).filter((e) => keys.includes(e.key));
  expect(events.map((e) => e.key).sort()).toEqual([...keys].sort());
  for (const { r, ids } of apps) {
    expect(events.find((e) => e.key === ids.applicationId)!.value).toMatchObject({
      applicationId: ids.applicationId,
      integrationId: r.integration.id,
      platform: r.integration.platform,
      status: 'interview',
      externalApplicationId: ids.externalApplicationId,
    });
  }
}, 360_000);
