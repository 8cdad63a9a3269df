/**
 * Inbound webhooks end to end on the real stack: the sandbox signs and POSTs each vendor's webhook
 * at the API, the inbox makes it durable, the outbox relay publishes ApplicationStatusChanged, and
 * an independent avsc decoder reads `ats.application-status` back.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keyring, pack } from '../../registry/keyring.ts';
import type { Platform } from '../../registry/integration.ts';
import { createWebhookSecrets } from '../../producers/webhooks/secrets.ts';
import { sampleIntegration } from '../registry/support.ts';
import { waitFor } from '../support/wait.ts';
import { inboundHarness, webhookReceivers, type InboundHarness, type Receiver, type WebhookReceivers } from './support.ts';

let h: InboundHarness;
let receiver: WebhookReceivers['receiver'];
let delivered: WebhookReceivers['delivered'];
let spec: WebhookReceivers['spec'];
// Every line the API and the relay log, to check no secret ever reaches them.
const logStream = new PassThrough();
const logged: string[] = [];
logStream.on('data', (chunk: Buffer) => logged.push(chunk.toString('utf8')));
beforeAll(async () => {
  h = await inboundHarness({}, { logDestination: logStream });
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

async function outboxRows(applicationId: string): Promise<number> {
  const { rows } = await h.pool.query<{ n: string }>('SELECT count(*) AS n FROM outbox WHERE topic = $1 AND key = $2', [h.config.inbound.statusTopic, applicationId]);
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

  /** How each vendor's retries are recognised: its own event id, or (no stable id in the signed body) a hash of that body. */
  const dedupeBy: Record<Platform, 'id' | 'sha256'> = { greenhouse: 'sha256', lever: 'id', workable: 'sha256', ashby: 'id', generic: 'id' };

  it.each(platforms)('%s: the same webhook delivered twice (a vendor retry) produces one event', async (platform) => {
    const r = await receiver(platform);
    const app = await delivered(r);
    const results = await h.sandbox.fireWebhooks([spec(r, app, { faults: { duplicate: true } })]);
    expect(results.map((x) => x.status)).toEqual([200, 200]);
    await eventsFor(app.applicationId, 1);
    // Give a second event every chance to show up before counting.
    await expect.poll(() => h.outboxPending(), { timeout: 10_000 }).toBe(0);
    expect(await eventsFor(app.applicationId, 1)).toHaveLength(1);
    expect(await inboxRows(r.integration.id)).toBe(1);
    const { rows } = await h.pool.query<{ dedupe_key: string }>('SELECT dedupe_key FROM inbound_webhooks WHERE integration_id = $1', [r.integration.id]);
    expect(rows[0]!.dedupe_key.startsWith(`${dedupeBy[platform]}:`)).toBe(true);
  });

  it.each(platforms)('%s: a wrong signature is a bare 401 and produces nothing; the same change correctly signed then gives one event', async (platform) => {
    const r = await receiver(platform);
    const app = await delivered(r);
    const [refused] = await h.sandbox.fireWebhooks([spec(r, app, { faults: { badSignature: true } })]);
    // No detail about why.
    expect(refused).toEqual({ status: 401, body: '{"error":"unauthorized"}' });
    expect(await inboxRows(r.integration.id)).toBe(0);
    expect(await outboxRows(app.applicationId)).toBe(0);
    // Had the refused webhook produced anything, it would sit beside this one: exactly one event means it did not.
    const [accepted] = await h.sandbox.fireWebhooks([spec(r, app)]);
    expect(accepted!.status).toBe(200);
    await eventsFor(app.applicationId, 1);
    await expect.poll(() => h.outboxPending(), { timeout: 10_000 }).toBe(0);
    expect(await eventsFor(app.applicationId, 1)).toEqual([expect.objectContaining({ status: 'interview', platform })]);
    expect(await inboxRows(r.integration.id)).toBe(1);
    expect(await outboxRows(app.applicationId)).toBe(1);
  });

  it('refuses a stale timestamp, an oversized body, an unknown or disabled integration, and produces nothing', async () => {
    const gh = await receiver('greenhouse');
    const lever = await receiver('lever');
    const generic = await receiver('generic');
    const ghApp = await delivered(gh);
    const leverApp = await delivered(lever);
    const genericApp = await delivered(generic);
    const refused = await h.sandbox.fireWebhooks([spec(lever, leverApp, { faults: { staleTimestamp: true } }), spec(generic, genericApp, { faults: { staleTimestamp: true } })]);
    expect(refused.map((x) => x.status)).toEqual([401, 401]);
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

describe('Lever: a signature token per webhook (one per event type)', () => {
  const api = (method: 'GET' | 'POST', url: string, payload?: Record<string, unknown>) =>
    h.app.inject({ method, url, headers: { authorization: `Bearer ${h.adminToken}` }, ...(payload ? { payload } : {}) });
  /** Lever's tokens are random 48-character strings. */
  const leverToken = (): string => randomBytes(24).toString('hex');
  const setToken = async (r: Receiver, event: string, token: string): Promise<void> => {
    const res = await api('POST', `/integrations/${r.integration.id}/webhook-secret`, { secret: token, event });
    expect(res.statusCode, res.body).toBe(200);
    // The caller pasted it: not echoed.
    expect(res.body).not.toContain(token);
    expect(res.json()).toMatchObject({ event, tokenSet: true });
  };
  /** A Lever integration as a customer with per-webhook tokens has it: no integration-wide secret. */
  const tokensOnly = async (): Promise<Receiver> => {
    const integration = await h.createIntegration(sampleIntegration('lever'));
    return { integration, secret: 'no-integration-wide-secret', url: `${h.apiUrl}/integrations/${integration.id}/webhook` };
  };
  const seen: string[] = [];
  /** A Lever integration whose stage-change and hire webhooks each have their own token (no integration-wide one). */
  const withTwoEventTokens = async () => {
    const r = await tokensOnly();
    const stageToken = leverToken();
    const hiredToken = leverToken();
    seen.push(stageToken, hiredToken);
    await setToken(r, 'candidateStageChange', stageToken);
    await setToken(r, 'candidateHired', hiredToken);
    return { r, stageToken, hiredToken };
  };

  it('two events, each signed with its own token, are both accepted and become events; GET names the events, never the tokens', async () => {
    const { r, stageToken, hiredToken } = await withTwoEventTokens();
    const moved = await delivered(r);
    const hired = await delivered(r);
    const leverTokens = { candidateStageChange: stageToken, candidateHired: hiredToken };
    const results = await h.sandbox.fireWebhooks([spec(r, moved, { leverTokens }), spec(r, hired, { kind: 'hire', leverTokens })]);
    expect(results.map((x) => x.status)).toEqual([200, 200]);
    expect(await eventsFor(moved.applicationId, 1)).toEqual([expect.objectContaining({ status: 'interview', vendorEvent: 'candidateStageChange', platform: 'lever' })]);
    expect(await eventsFor(hired.applicationId, 1)).toEqual([expect.objectContaining({ status: 'hired', vendorEvent: 'candidateHired', platform: 'lever' })]);

    const info = await api('GET', `/integrations/${r.integration.id}/webhook`);
    expect(info.statusCode).toBe(200);
    expect(info.json()).toMatchObject({
      secretSet: true,
      secretRotatedAt: null,
      eventTokens: [
        { event: 'candidateHired', rotatedAt: expect.any(String) },
        { event: 'candidateStageChange', rotatedAt: expect.any(String) },
      ],
    });
    for (const token of [stageToken, hiredToken]) expect(info.body).not.toContain(token);
  });

  it("an event signed with another event's token, or without any token of its own or integration-wide, is a bare 401 and stores nothing", async () => {
    const { r, stageToken } = await withTwoEventTokens();
    const app = await delivered(r);
    const refused = await h.sandbox.fireWebhooks([
      // A hire signed with the stage-change webhook's token.
      spec(r, app, { kind: 'hire', leverTokens: { candidateHired: stageToken } }),
      // An archive change: no token of its own, no integration-wide secret.
      spec(r, app, { kind: 'rejection', leverTokens: { candidateArchiveChange: stageToken } }),
    ]);
    expect(refused).toEqual([
      { status: 401, body: '{"error":"unauthorized"}' },
      { status: 401, body: '{"error":"unauthorized"}' },
    ]);
    expect(await inboxRows(r.integration.id)).toBe(0);
    expect(await outboxRows(app.applicationId)).toBe(0);
    // The operator's log says which event's token did not verify.
    const refusal = await waitFor('the refusal in the log', () => logged.find((l) => l.includes(r.integration.id) && l.includes('webhook refused') && l.includes('"event":"candidateHired"')));
    expect(JSON.parse(refusal)).toMatchObject({ reason: 'bad_signature', event: 'candidateHired' });
  });

  it('an event without a token of its own is checked with the integration-wide secret; one with its own token no longer is', async () => {
    const r = await receiver('lever');
    const stageToken = leverToken();
    seen.push(r.secret, stageToken);
    await setToken(r, 'candidateStageChange', stageToken);
    const rejected = await delivered(r);
    const moved = await delivered(r);
    const results = await h.sandbox.fireWebhooks([
      spec(r, rejected, { kind: 'rejection' }),
      spec(r, moved),
      spec(r, moved, { leverTokens: { candidateStageChange: stageToken } }),
    ]);
    expect(results.map((x) => x.status)).toEqual([200, 401, 200]);
    expect(await eventsFor(rejected.applicationId, 1)).toEqual([expect.objectContaining({ status: 'rejected', vendorEvent: 'candidateArchiveChange' })]);
    expect(await eventsFor(moved.applicationId, 1)).toEqual([expect.objectContaining({ status: 'interview', vendorEvent: 'candidateStageChange' })]);
    expect(await inboxRows(r.integration.id)).toBe(2);
    const info = (await api('GET', `/integrations/${r.integration.id}/webhook`)).json<{ secretRotatedAt: string | null; eventTokens: Array<{ event: string }> }>();
    expect(info.secretRotatedAt).not.toBeNull();
    expect(info.eventTokens.map((e) => e.event)).toEqual(['candidateStageChange']);
  });

  it("a secret sealed before per-event tokens still opens; a sealed token copied onto another event's row does not", async () => {
    const keyring = new Keyring(h.config.crypto.encryptionKeys);
    const secrets = createWebhookSecrets({ pool: h.pool, keyring });
    const integration = await h.createIntegration(sampleIntegration('lever'));
    // Sealed the way 014's rows were: the integration id alone in the AAD, no event column written.
    const old = 'whsec_sealed-before-per-event-tokens';
    const sealed = keyring.encrypt(old, `webhook-secret:${integration.id}`);
    await h.pool.query('INSERT INTO webhook_secrets (integration_id, secret_ciphertext, secret_key_id) VALUES ($1, $2, $3)', [integration.id, pack(sealed), sealed.keyId]);
    expect(await secrets.signingKey(integration, 'candidateHired')).toBe(old);
    expect(await secrets.signingKey(integration)).toBe(old);

    const stageToken = leverToken();
    await secrets.rotate(integration.id, stageToken, 'candidateStageChange');
    expect(await secrets.signingKey(integration, 'candidateStageChange')).toBe(stageToken);
    // Unknown or missing event names fall back to the integration-wide secret.
    expect(await secrets.signingKey(integration, 'somethingNew')).toBe(old);
    expect(await secrets.signingKey(integration, undefined)).toBe(old);
    await h.pool.query(
      `INSERT INTO webhook_secrets (integration_id, event, secret_ciphertext, secret_key_id)
       SELECT integration_id, 'candidateHired', secret_ciphertext, secret_key_id FROM webhook_secrets WHERE integration_id = $1 AND event = 'candidateStageChange'`,
      [integration.id],
    );
    await expect(secrets.signingKey(integration, 'candidateHired')).rejects.toThrow();
    // Other vendors keep one secret, whatever event name is passed.
    const gh = await h.createIntegration(sampleIntegration('greenhouse'));
    const ghSecret = await secrets.rotate(gh.id);
    expect(await secrets.signingKey(gh, 'candidateHired')).toBe(ghSecret);
  });

  it('the API takes `event` for Lever only, and only Lever\'s documented event names, with the token itself', async () => {
    const gh = await receiver('greenhouse');
    const lever = await tokensOnly();
    const token = leverToken();
    seen.push(gh.secret, token);
    const post = (r: Receiver, payload: Record<string, unknown>) => api('POST', `/integrations/${r.integration.id}/webhook-secret`, payload);

    const notLever = await post(gh, { secret: token, event: 'candidateHired' });
    expect(notLever.statusCode).toBe(400);
    expect(notLever.json()).toMatchObject({ error: 'invalid_request', fields: [{ field: 'event', message: expect.stringContaining('only Lever') }] });
    const unknown = await post(lever, { secret: token, event: 'candidate_moved' });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json()).toMatchObject({ fields: [{ field: 'event', message: expect.stringContaining('candidateStageChange') }] });
    const noToken = await post(lever, { event: 'candidateHired' });
    expect(noToken.statusCode).toBe(400);
    expect(noToken.json()).toMatchObject({ fields: [{ field: 'secret' }] });
    for (const res of [notLever, unknown, noToken]) expect(res.body).not.toContain(token);

    // Nothing was stored by the refusals; Greenhouse's answer has no per-event part.
    expect((await api('GET', `/integrations/${lever.integration.id}/webhook`)).json()).toMatchObject({ secretSet: false, eventTokens: [] });
    const ghInfo = await api('GET', `/integrations/${gh.integration.id}/webhook`);
    expect(ghInfo.json()).not.toHaveProperty('eventTokens');
    expect(ghInfo.body).not.toContain(gh.secret);
  });

  it('no secret or token ever reaches the logs', async () => {
    expect(seen.length).toBeGreaterThan(0);
    // The rotations were logged (with the event), so the log did capture this file's requests.
    await waitFor('the rotation log lines', () => logged.some((l) => l.includes('webhook secret rotated') && l.includes('"event":"candidateStageChange"')));
    const text = logged.join('');
    for (const secret of seen) expect(text).not.toContain(secret);
  });
});
