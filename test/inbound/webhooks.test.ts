/**
 * Inbound webhooks end to end on the real stack: the sandbox signs and POSTs each vendor's webhook
 * at the API, the inbox makes it durable, the outbox relay publishes ApplicationStatusChanged, and
 * an independent avsc decoder reads `ats.application-status` back.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Platform } from '../../registry/integration.ts';
import { inboundHarness, webhookReceivers, type InboundHarness, type WebhookReceivers } from './support.ts';

let h: InboundHarness;
let receiver: WebhookReceivers['receiver'];
let delivered: WebhookReceivers['delivered'];
let spec: WebhookReceivers['spec'];
beforeAll(async () => {
  h = await inboundHarness();
  ({ receiver, delivered, spec } = webhookReceivers(h));
  await h.startRelay();
}, 60_000);
afterAll(async () => h?.close());

async function statusEvents(): Promise<Array<{ key: string; value: Record<string, unknown> }>> {
  return h.read(h.config.inbound.statusTopic);
}

async function eventsFor(applicationId: string, expected: number): Promise<Array<Record<string, unknown>>> {
  await expect.poll(async () => (await statusEvents()).filter((e) => e.key === applicationId).length, { timeout: 20_000, interval: 300 }).toBeGreaterThanOrEqual(expected);
  return (await statusEvents()).filter((e) => e.key === applicationId).map((e) => e.value);
}

async function inboxRows(integrationId: string): Promise<number> {
  const { rows } = await h.pool.query<{ n: string }>('SELECT count(*) AS n FROM inbound_webhooks WHERE integration_id = $1', [integrationId]);
  return Number(rows[0]!.n);
}

describe('inbound webhooks', () => {
  const platforms: Platform[] = ['greenhouse', 'lever', 'workable', 'ashby', 'generic'];

  it.each(platforms)('%s: a correctly signed stage change becomes exactly one status event with our application id', async (platform) => {
    const r = await receiver(platform);
    const app = await delivered(r);
    const [result] = await h.sandbox.fireWebhooks([spec(r, app)]);
    expect(result).toMatchObject({ status: 200 });
    const [event, ...more] = await eventsFor(app.applicationId, 1);
    expect(more).toHaveLength(0);
    expect(event).toMatchObject({
      applicationId: app.applicationId,
      integrationId: r.integration.id,
      companyId: h.company,
      platform,
      status: 'interview',
      externalApplicationId: app.externalApplicationId,
    });
  });

  it('normalises hires and rejections, keeping the raw stage and the reason', async () => {
    const r = await receiver('greenhouse');
    const hired = await delivered(r);
    const rejected = await delivered(r);
    const results = await h.sandbox.fireWebhooks([spec(r, hired, { kind: 'hire', stage: 'Offer' }), spec(r, rejected, { kind: 'rejection', stage: 'Phone Screen' })]);
    expect(results.map((x) => x.status)).toEqual([200, 200]);
    expect(await eventsFor(hired.applicationId, 1)).toEqual([expect.objectContaining({ status: 'hired', rawStage: 'Offer', vendorEvent: 'hire_candidate' })]);
    expect(await eventsFor(rejected.applicationId, 1)).toEqual([expect.objectContaining({ status: 'rejected', rawStage: 'Phone Screen', reason: 'Lacking skill(s)' })]);
  });

  it('the same webhook delivered twice (a vendor retry) produces one event', async () => {
    for (const platform of ['greenhouse', 'ashby', 'lever'] as const) {
      const r = await receiver(platform);
      const app = await delivered(r);
      const results = await h.sandbox.fireWebhooks([spec(r, app, { faults: { duplicate: true } })]);
      expect(results.map((x) => x.status)).toEqual([200, 200]);
      await eventsFor(app.applicationId, 1);
      // Give a second event every chance to show up before counting.
      await expect.poll(() => h.outboxPending(), { timeout: 10_000 }).toBe(0);
      expect(await eventsFor(app.applicationId, 1)).toHaveLength(1);
      expect(await inboxRows(r.integration.id)).toBe(1);
    }
  });

  it('refuses a wrong signature, a stale timestamp, an oversized body, an unknown or disabled integration, and produces nothing', async () => {
    const gh = await receiver('greenhouse');
    const lever = await receiver('lever');
    const generic = await receiver('generic');
    const ghApp = await delivered(gh);
    const leverApp = await delivered(lever);
    const genericApp = await delivered(generic);
    const refused = await h.sandbox.fireWebhooks([
      spec(gh, ghApp, { faults: { badSignature: true } }),
      spec(lever, leverApp, { faults: { badSignature: true } }),
      spec(lever, leverApp, { faults: { staleTimestamp: true } }),
      spec(generic, genericApp, { faults: { staleTimestamp: true } }),
    ]);
    expect(refused.map((x) => x.status)).toEqual([401, 401, 401, 401]);
    // No detail about why.
    expect(refused.every((x) => x.body === '{"error":"unauthorized"}')).toBe(true);

    const huge = JSON.stringify({ action: 'candidate_stage_change', padding: 'x'.repeat(h.config.inbound.webhookMaxBytes) });
    const tooBig = await fetch(gh.url, { method: 'POST', headers: { 'content-type': 'application/json', signature: 'sha256 00' }, body: huge });
    expect(tooBig.status).toBe(413);

    const unknown = await fetch(`${h.apiUrl}/integrations/${randomUUID()}/webhook`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(unknown.status).toBe(404);

    const disabled = await receiver('ashby');
    const disabledApp = await delivered(disabled);
    await h.repo.updateIntegration(disabled.integration.id, disabled.integration.version, { enabled: false });
    const [gone] = await h.sandbox.fireWebhooks([spec(disabled, disabledApp)]);
    expect(gone!.status).toBe(410);

    for (const r of [gh, lever, generic, disabled]) expect(await inboxRows(r.integration.id)).toBe(0);
    const { rows } = await h.pool.query<{ n: string }>('SELECT count(*) AS n FROM outbox WHERE topic = $1 AND key = ANY($2::text[])', [
      h.config.inbound.statusTopic,
      [ghApp.applicationId, leverApp.applicationId, genericApp.applicationId, disabledApp.applicationId],
    ]);
    expect(Number(rows[0]!.n)).toBe(0);
  });

  it('keeps a webhook about a candidate we never delivered for inspection, and publishes nothing', async () => {
    const r = await receiver('ashby');
    const stranger = { externalApplicationId: `never-${randomUUID()}`, externalCandidateId: `cand-${randomUUID()}` };
    const [result] = await h.sandbox.fireWebhooks([spec(r, stranger)]);
    expect(result!.status).toBe(200);
    const { rows } = await h.pool.query('SELECT vendor_event, external_application_id, status, payload FROM inbound_unmatched WHERE integration_id = $1', [r.integration.id]);
    expect(rows).toEqual([expect.objectContaining({ vendor_event: 'candidateStageChange', external_application_id: stranger.externalApplicationId, status: 'interview' })]);
    expect((rows[0] as { payload: { data: { application: { id: string } } } }).payload.data.application.id).toBe(stranger.externalApplicationId);
  });

  it('an older change delivered after a newer one is recorded but not published (out of order)', async () => {
    const r = await receiver('ashby');
    const app = await delivered(r);
    const t = Date.now();
    const results = await h.sandbox.fireWebhooks(
      [spec(r, app, { stage: 'Technical Interview', occurredAt: t - 60_000 }), spec(r, app, { stage: 'Offer', occurredAt: t - 1_000 })],
      { outOfOrder: true },
    );
    expect(results.map((x) => x.status)).toEqual([200, 200]);
    const events = await eventsFor(app.applicationId, 1);
    await expect.poll(() => h.outboxPending(), { timeout: 10_000 }).toBe(0);
    expect((await eventsFor(app.applicationId, 1)).map((e) => e.status)).toEqual(['offer']);
    expect(events[0]).toMatchObject({ rawStage: 'Offer' });
    const { rows } = await h.pool.query('SELECT outcome FROM inbound_webhooks WHERE integration_id = $1 ORDER BY id', [r.integration.id]);
    expect(rows.map((x: { outcome: string }) => x.outcome)).toEqual(['published', 'superseded']);
  });

  it('accepts webhooks while nothing can publish (no relay, as with Kafka down) and publishes them all once it is back', async () => {
    await h.stopRelay();
    let apps: Array<Awaited<ReturnType<typeof delivered>>> = [];
    try {
      const r = await receiver('lever');
      apps = await Promise.all([1, 2, 3].map(() => delivered(r)));
      const results = await h.sandbox.fireWebhooks(apps.map((a) => spec(r, a)));
      expect(results.map((x) => x.status)).toEqual([200, 200, 200]);
      expect(await h.outboxPending()).toBe(3);
    } finally {
      await h.startRelay();
    }
    await expect.poll(() => h.outboxPending(), { timeout: 20_000 }).toBe(0);
    for (const app of apps) expect(await eventsFor(app.applicationId, 1)).toEqual([expect.objectContaining({ status: 'interview', platform: 'lever' })]);
  });
});
