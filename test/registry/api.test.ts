import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApi, type ConnectionTester } from '../../api/server.ts';
import { createConnectors } from '../../connectors/index.ts';
import { startSandbox } from '../../sandbox/server.ts';
import { RelayError } from '../../lib/errors.ts';
import type { LeverSettings } from '../../registry/integration.ts';
import { createLogger } from '../../lib/logger.ts';
import { createPool } from '../../lib/db.ts';
import { freePort } from '../../dev/stack/processes.ts';
import { companyId, registryHarness, RUN_TAG, sampleIntegration } from './support.ts';

const h = registryHarness();
const logStream = new PassThrough();
const logged: string[] = [];
logStream.on('data', (chunk: Buffer) => logged.push(chunk.toString('utf8')));
const log = createLogger({ level: 'debug', destination: logStream });
const app = buildApi({ config: h.config, pool: h.pool, keyring: h.keyring, log });

afterAll(async () => {
  await app.close();
  await h.close();
});

const admin = (await h.repo.createApiToken({ name: `${RUN_TAG} admin`, scope: { kind: 'admin' } })).token;
async function companyToken(company: string): Promise<string> {
  return (await h.repo.createApiToken({ name: 'api-test company', scope: { kind: 'company', companyId: company } })).token;
}

interface Call {
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  url: string;
  token?: string | undefined;
  body?: unknown;
}

// Response bodies are read field by field in assertions; typing every shape would add nothing.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function call({ method, url, token = admin, body }: Call): Promise<{ status: number; body: any; raw: string; headers: Record<string, unknown> }> {
  const res = await app.inject({
    method,
    url,
    headers: token ? { authorization: `Bearer ${token}` } : {},
    ...(body === undefined ? {} : { payload: body as object }),
  });
  return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined, raw: res.body, headers: res.headers };
}

async function createVia(company: string, platform: Parameters<typeof sampleIntegration>[0] = 'greenhouse', token = admin) {
  const input = sampleIntegration(platform);
  const res = await call({ method: 'POST', url: `/companies/${company}/integrations`, token, body: input });
  expect(res.status, res.raw).toBe(201);
  return { input, created: res.body };
}

describe('integrations HTTP API', () => {
  it('answers the probes without a token', async () => {
    expect(await call({ method: 'GET', url: '/healthz', token: '' })).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await call({ method: 'GET', url: '/readyz', token: '' })).toMatchObject({ status: 200, body: { status: 'ready' } });
  });

  it('answers not ready while its database is unreachable, and stays alive', async () => {
    // A real pool pointed at a port nothing listens on: every query is refused by the OS.
    const unreachable = createPool({ url: `postgres://postgres@127.0.0.1:${await freePort()}/ats_relay` }, { max: 1 });
    const cut = buildApi({ config: h.config, pool: unreachable, keyring: h.keyring, log });
    try {
      const ready = await cut.inject({ method: 'GET', url: '/readyz' });
      expect(ready.statusCode).toBe(503);
      expect(JSON.parse(ready.body)).toEqual({ status: 'unavailable', message: 'database unreachable' });
      expect((await cut.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    } finally {
      await cut.close();
      await unreachable.end();
    }
  });

  it('requires a valid bearer token everywhere else', async () => {
    for (const token of ['', 'atsr_not-a-real-token']) {
      const res = await call({ method: 'GET', url: `/companies/${companyId()}/integrations`, token });
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('unauthorized');
      expect(res.headers['www-authenticate']).toBe('Bearer');
    }
  });

  it('round-trips create, read, list, patch and delete, with credentials masked', async () => {
    const company = companyId();
    const { input, created } = await createVia(company, 'lever');
    expect(created).toMatchObject({ companyId: company, platform: 'lever', name: input.name, settings: input.settings, enabled: true, version: 1, apiBaseUrl: null });
    expect(created.credentials).toEqual({ apiKey: `••••${input.credentials.apiKey!.slice(-4)}` });

    const got = await call({ method: 'GET', url: `/integrations/${created.id}` });
    expect(got.status).toBe(200);
    expect(got.body).toEqual(created);
    expect(got.raw).not.toContain(input.credentials.apiKey);

    const list = await call({ method: 'GET', url: `/companies/${company}/integrations` });
    expect(list.body.items.map((i: { id: string }) => i.id)).toEqual([created.id]);

    const patched = await call({ method: 'PATCH', url: `/integrations/${created.id}`, body: { version: 1, name: 'Lever (EU)', settings: { origin: 'sourced' }, apiBaseUrl: 'https://api.eu.lever.co/v1', allowMissingResume: true } });
    expect(patched.status, patched.raw).toBe(200);
    expect(patched.body).toMatchObject({ name: 'Lever (EU)', version: 2, settings: { performAs: (input.settings as LeverSettings).performAs, origin: 'sourced' }, apiBaseUrl: 'https://api.eu.lever.co/v1', allowMissingResume: true });
    expect((await h.repo.getIntegration(created.id))!.credentials).toEqual(input.credentials);

    const newKey = 'lever-rotated-key-98765';
    const rekeyed = await call({ method: 'PATCH', url: `/integrations/${created.id}`, body: { version: 2, credentials: { apiKey: newKey } } });
    expect(rekeyed.body.credentials).toEqual({ apiKey: '••••8765' });
    expect((await h.repo.getIntegration(created.id))!.credentials).toEqual({ apiKey: newKey });

    expect((await call({ method: 'DELETE', url: `/integrations/${created.id}` })).status).toBe(204);
    expect((await call({ method: 'GET', url: `/integrations/${created.id}` })).status).toBe(404);
    expect((await call({ method: 'DELETE', url: `/integrations/${created.id}` })).status).toBe(404);
  });

  it('answers 400 listing each bad field', async () => {
    const url = `/companies/${companyId()}/integrations`;
    const unknown = await call({ method: 'POST', url, body: { platform: 'taleo', name: 'x', settings: {}, credentials: {} } });
    expect(unknown).toMatchObject({ status: 400, body: { error: 'invalid_request', fields: [{ field: 'platform', message: 'must be one of: greenhouse, lever, workable, ashby, generic' }] } });

    const missing = await call({ method: 'POST', url, body: { platform: 'greenhouse', name: 'x', settings: { apiVersion: 'v1' }, credentials: { apiKey: 'k' } } });
    expect(missing.status).toBe(400);
    expect(missing.body.fields).toEqual([{ field: 'settings.onBehalfOf', message: 'is required' }]);

    const malformed = await call({ method: 'POST', url, body: { platform: 'generic', name: 42, settings: { url: 'not a url', method: 'GET', authStyle: 'header', fieldMapping: { a: 1 } }, credentials: { signingSecret: 's' } } });
    expect(malformed.status).toBe(400);
    expect(malformed.body.fields).toEqual(
      expect.arrayContaining([
        { field: 'name', message: 'must be a string' },
        { field: 'settings.url', message: 'must be an absolute http(s) URL' },
        { field: 'settings.method', message: 'must be one of: POST, PUT' },
        { field: 'settings.fieldMapping.a', message: 'must be a string' },
        { field: 'credentials.apiKey', message: 'is required' },
      ]),
    );
    expect(malformed.body.fields).toHaveLength(5);

    const notJson = await app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, payload: '{"platform":' });
    expect(notJson.statusCode).toBe(400);
    expect(notJson.json()).toMatchObject({ error: 'bad_request' });

    const { created } = await createVia(companyId(), 'workable');
    const badPatch = await call({ method: 'PATCH', url: `/integrations/${created.id}`, body: { version: 'one', platform: 'lever', settings: { subdomain: 'UPPER' } } });
    expect(badPatch.status).toBe(400);
    expect(badPatch.body.fields).toEqual([
      { field: 'version', message: 'must be an integer' },
      { field: 'platform', message: 'is not allowed' },
    ]);
    const badMerge = await call({ method: 'PATCH', url: `/integrations/${created.id}`, body: { version: 1, settings: { subdomain: 'UPPER' } } });
    expect(badMerge.body.fields).toEqual([{ field: 'settings.subdomain', message: expect.stringContaining('subdomain') }]);

    const badQuery = await call({ method: 'GET', url: `/integrations/${created.id}/deliveries?status=lost&limit=0` });
    expect(badQuery.status).toBe(400);
    expect(badQuery.body.fields).toEqual([
      { field: 'status', message: 'must be one of: pending, delivered, retrying, dead_lettered' },
      { field: 'limit', message: 'must be at least 1' },
    ]);
  });

  it('answers 404 for unknown ids, whatever their shape', async () => {
    for (const id of ['00000000-0000-4000-8000-000000000000', 'no-such-integration']) {
      expect((await call({ method: 'GET', url: `/integrations/${id}` })).status).toBe(404);
      expect((await call({ method: 'PATCH', url: `/integrations/${id}`, body: { version: 1, name: 'x' } })).status).toBe(404);
      expect((await call({ method: 'PUT', url: `/integrations/${id}/jobs/job-1`, body: { externalJobId: '1' } })).status).toBe(404);
      expect((await call({ method: 'GET', url: `/integrations/${id}/deliveries` })).body).toMatchObject({ error: 'not_found' });
    }
  });

  it('answers 409 to a PATCH with a stale version', async () => {
    const { created } = await createVia(companyId(), 'ashby');
    expect((await call({ method: 'PATCH', url: `/integrations/${created.id}`, body: { version: 1, name: 'first' } })).status).toBe(200);
    const stale = await call({ method: 'PATCH', url: `/integrations/${created.id}`, body: { version: 1, name: 'second' } });
    expect(stale).toMatchObject({ status: 409, body: { error: 'version_conflict' } });
    expect(stale.body.message).toContain('version 2');
  });

  it('lets exactly one of several concurrent PATCHes with the same version win; the rest get 409', async () => {
    const { created } = await createVia(companyId(), 'greenhouse');
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, n) => call({ method: 'PATCH', url: `/integrations/${created.id}`, body: { version: 1, name: `writer-${n}`, settings: { sourceId: n + 1 } } })),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 409, 409, 409, 409, 409]);
    const winner = results.find((r) => r.status === 200)!.body;
    const final = (await call({ method: 'GET', url: `/integrations/${created.id}` })).body;
    expect(final).toMatchObject({ version: 2, name: winner.name, settings: { sourceId: winner.settings.sourceId } });
  });

  describe('tenant isolation', () => {
    it('a company token reads, updates and deletes only its own company', async () => {
      const mine = companyId();
      const theirs = companyId();
      const token = await companyToken(mine);
      const { created: own } = await createVia(mine, 'lever', token);
      const { created: foreign, input: foreignInput } = await createVia(theirs, 'workable');

      expect((await call({ method: 'GET', url: `/integrations/${own.id}`, token })).status).toBe(200);
      expect((await call({ method: 'GET', url: `/companies/${mine}/integrations`, token })).body.items).toHaveLength(1);

      const attempts: Call[] = [
        { method: 'GET', url: `/integrations/${foreign.id}` },
        { method: 'PATCH', url: `/integrations/${foreign.id}`, body: { version: 1, name: 'hijacked' } },
        { method: 'DELETE', url: `/integrations/${foreign.id}` },
        { method: 'PUT', url: `/integrations/${foreign.id}/jobs/job-1`, body: { externalJobId: 'x' } },
        { method: 'DELETE', url: `/integrations/${foreign.id}/jobs/job-1` },
        { method: 'GET', url: `/integrations/${foreign.id}/jobs` },
        { method: 'GET', url: `/integrations/${foreign.id}/deliveries` },
        { method: 'POST', url: `/integrations/${foreign.id}/test` },
        { method: 'GET', url: `/companies/${theirs}/integrations` },
        { method: 'POST', url: `/companies/${theirs}/integrations`, body: sampleIntegration('ashby') },
      ];
      for (const attempt of attempts) {
        const res = await call({ ...attempt, token });
        expect(res.status, `${attempt.method} ${attempt.url}`).toBe(404);
        expect(res.raw).not.toContain(foreignInput.name);
        expect(res.raw).not.toContain('"subdomain"');
      }
      // Untouched, as the admin sees it.
      expect((await call({ method: 'GET', url: `/integrations/${foreign.id}` })).body).toMatchObject({ name: foreignInput.name, version: 1 });
      expect((await call({ method: 'GET', url: `/companies/${theirs}/integrations` })).body.items).toHaveLength(1);
    });
  });

  it('maps jobs with PUT (201 then 200) and DELETE (204 then 404)', async () => {
    const { created } = await createVia(companyId(), 'workable');
    const url = `/integrations/${created.id}/jobs/job-42`;
    expect(await call({ method: 'PUT', url, body: { externalJobId: 'A1B2C3' } })).toMatchObject({ status: 201, body: { jobId: 'job-42', externalJobId: 'A1B2C3' } });
    expect(await call({ method: 'PUT', url, body: { externalJobId: 'D4E5F6' } })).toMatchObject({ status: 200, body: { externalJobId: 'D4E5F6' } });
    expect(await h.repo.findJobMapping(created.id, 'job-42')).toBe('D4E5F6');
    expect((await call({ method: 'GET', url: `/integrations/${created.id}/jobs` })).body.items).toMatchObject([{ jobId: 'job-42', externalJobId: 'D4E5F6' }]);
    expect((await call({ method: 'PUT', url, body: {} })).body.fields).toEqual([{ field: 'externalJobId', message: 'is required' }]);
    expect((await call({ method: 'DELETE', url })).status).toBe(204);
    expect((await call({ method: 'DELETE', url })).status).toBe(404);
  });

  it('serves the delivery log newest first with cursor paging and a status filter', async () => {
    const { created } = await createVia(companyId(), 'greenhouse');
    for (let n = 0; n < 5; n += 1) {
      await h.deliveries.recordDeliveryOutcome({
        integrationId: created.id,
        applicationId: `app-${n}`,
        eventId: `evt-${n}`,
        status: n === 2 ? 'dead_lettered' : 'delivered',
        ...(n === 2 && { error: { code: 'job_not_found', message: 'job closed', status: 422 } }),
      });
    }
    const first = await call({ method: 'GET', url: `/integrations/${created.id}/deliveries?limit=2` });
    expect(first.body.items.map((d: { applicationId: string }) => d.applicationId)).toEqual(['app-4', 'app-3']);
    const second = await call({ method: 'GET', url: `/integrations/${created.id}/deliveries?limit=2&cursor=${first.body.nextCursor}` });
    expect(second.body.items.map((d: { applicationId: string }) => d.applicationId)).toEqual(['app-2', 'app-1']);
    expect(second.body.items[0]).toMatchObject({ status: 'dead_lettered', tryCount: 1, error: { code: 'job_not_found', status: 422 } });
    const third = await call({ method: 'GET', url: `/integrations/${created.id}/deliveries?limit=2&cursor=${second.body.nextCursor}` });
    expect(third.body).toMatchObject({ items: [{ applicationId: 'app-0' }], nextCursor: null });
    const dead = await call({ method: 'GET', url: `/integrations/${created.id}/deliveries?status=dead_lettered` });
    expect(dead.body.items).toHaveLength(1);
    expect((await call({ method: 'GET', url: `/integrations/${created.id}/deliveries?cursor=bogus` })).body).toMatchObject({ error: 'invalid_request', fields: [{ field: 'cursor' }] });
  });

  it('answers 501 on a connection test until connectors are wired, then reports the result', async () => {
    const { created, input } = await createVia(companyId(), 'lever');
    expect(await call({ method: 'POST', url: `/integrations/${created.id}/test` })).toMatchObject({ status: 501, body: { error: 'not_implemented' } });

    const seen: string[] = [];
    const connectors: ConnectionTester = {
      async testConnection(integration) {
        seen.push(integration.credentials.apiKey!);
        if (integration.name === 'bad') throw new RelayError('auth_failed', 'Lever answered 401', { retriable: false, status: 401 });
      },
    };
    const wired = buildApi({ config: h.config, pool: h.pool, keyring: h.keyring, log, connectors });
    try {
      const ok = await wired.inject({ method: 'POST', url: `/integrations/${created.id}/test`, headers: { authorization: `Bearer ${admin}` } });
      expect(ok.json()).toMatchObject({ ok: true, platform: 'lever' });
      expect(seen).toEqual([input.credentials.apiKey]);
      await h.repo.updateIntegration(created.id, 1, { name: 'bad' });
      const bad = await wired.inject({ method: 'POST', url: `/integrations/${created.id}/test`, headers: { authorization: `Bearer ${admin}` } });
      expect(bad.json()).toMatchObject({ ok: false, error: { code: 'auth_failed', status: 401, retriable: false } });
    } finally {
      await wired.close();
    }
  });

  it('never writes credentials to its logs', async () => {
    const { input, created } = await createVia(companyId(), 'generic');
    await call({ method: 'PATCH', url: `/integrations/${created.id}`, body: { version: 1, credentials: { ...input.credentials, token: 'generic-token-second-secret' } } });
    await new Promise((r) => setTimeout(r, 50));
    const text = logged.join('');
    expect(text).toContain(created.id);
    for (const secret of [...Object.values(input.credentials), 'generic-token-second-secret', admin]) expect(text).not.toContain(secret);
  });
});

describe('connection test through the real connectors', () => {
  it('passes with working credentials and reports the ATS error otherwise (sandbox)', async () => {
    const sb = await startSandbox({ port: 0 });
    const connectors = createConnectors({ requestTimeoutMs: 5_000, allowPrivateNetworks: true, resumeMaxBytes: h.config.ats.resumeMaxBytes });
    const wired = buildApi({ config: h.config, pool: h.pool, keyring: h.keyring, log, connectors });
    try {
      sb.addTenant({ platform: 'lever', tenant: 'acme', credentials: { apiKey: 'lv-key-1' }, users: ['u-1'], jobs: ['p-1'] });
      const company = companyId();
      const body = { platform: 'lever', name: 'Lever sandbox', apiBaseUrl: sb.urlFor('lever', 'acme'), settings: { performAs: 'u-1' }, credentials: { apiKey: 'lv-key-1' } };
      const headers = { authorization: `Bearer ${admin}` };
      const created = (await wired.inject({ method: 'POST', url: `/companies/${company}/integrations`, headers, payload: body })).json<{ id: string }>();
      const ok = await wired.inject({ method: 'POST', url: `/integrations/${created.id}/test`, headers });
      expect(ok.json()).toMatchObject({ ok: true, platform: 'lever' });

      await wired.inject({ method: 'PATCH', url: `/integrations/${created.id}`, headers, payload: { version: 1, credentials: { apiKey: 'wrong-key-000000' } } });
      const bad = await wired.inject({ method: 'POST', url: `/integrations/${created.id}/test`, headers });
      expect(bad.json()).toMatchObject({ ok: false, error: { status: 401, retriable: false } });
      expect(bad.body).not.toContain('wrong-key-000000');
    } finally {
      await wired.close();
      await connectors.close();
      await sb.close();
    }
  });
});
