/**
 * The console's sign-in, session and CSRF rules, and the settings form's version conflict, through
 * Fastify's inject on the real API (PostgreSQL; no Kafka needed for these pages).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApi } from '../../api/server.ts';
import type { Config } from '../../lib/config.ts';
import { Keyring } from '../../registry/keyring.ts';
import { createLogger } from '../../lib/logger.ts';
import { createPool, type Pool } from '../../lib/db.ts';
import { createIntegrationRepository, type IntegrationRepository } from '../../registry/repository.ts';
import type { IntegrationRecord } from '../../registry/integrations.ts';
import { createWebhookSecrets } from '../../producers/webhooks/secrets.ts';
import { testConfig, uniqueName } from '../support/config.ts';
import { sampleIntegration } from '../registry/support.ts';

let config: Config;
let pool: Pool;
let repo: IntegrationRepository;
let app: FastifyInstance;
let integration: IntegrationRecord;
const company = uniqueName('console-co');
const tokenPrefix = uniqueName('console-session');
const SECRET = 'super-secret-api-key-0123456789';

/** Cookies as a browser keeps them for /console (name → value). */
class Jar {
  readonly cookies = new Map<string, string>();
  take(res: LightMyRequestResponse): void {
    for (const c of res.cookies as Array<{ name: string; value: string; expires?: Date }>) {
      if (c.value === '' || (c.expires && c.expires.getTime() < Date.now())) this.cookies.delete(c.name);
      else this.cookies.set(c.name, c.value);
    }
  }
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

async function get(jar: Jar, url: string): Promise<LightMyRequestResponse> {
  const res = await app.inject({ method: 'GET', url, headers: { cookie: jar.header() } });
  jar.take(res);
  return res;
}

async function post(jar: Jar, url: string, form: Record<string, string>): Promise<LightMyRequestResponse> {
  const res = await app.inject({ method: 'POST', url, headers: { cookie: jar.header(), 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams(form).toString() });
  jar.take(res);
  return res;
}

const csrfOf = (res: LightMyRequestResponse): string => /name="_csrf" value="([^"]+)"/.exec(res.body)![1]!;

async function signIn(token: string, next?: string): Promise<{ jar: Jar; res: LightMyRequestResponse }> {
  const jar = new Jar();
  const page = await get(jar, '/console/sign-in');
  const res = await post(jar, '/console/sign-in', { _csrf: csrfOf(page), token, ...(next ? { next } : {}) });
  return { jar, res };
}

beforeAll(async () => {
  config = testConfig();
  pool = createPool(config.database, { max: 4 });
  const keyring = new Keyring(config.crypto.encryptionKeys);
  repo = createIntegrationRepository({ pool, keyring });
  app = buildApi({ config, pool, keyring, log: createLogger({ level: 'warn', name: 'test' }), repository: repo });
  await app.ready();
  integration = await repo.createIntegration(company, {
    platform: 'greenhouse',
    name: 'Console GH',
    settings: { apiVersion: 'v1', onBehalfOf: '4080' },
    credentials: { apiKey: SECRET },
    apiBaseUrl: null,
    enabled: true,
    allowMissingResume: false,
  });
});

afterAll(async () => {
  await app?.close();
  await pool.query('DELETE FROM integrations WHERE company_id = $1', [company]);
  await pool.query('DELETE FROM api_tokens WHERE name LIKE $1', [`${tokenPrefix}%`]);
  await pool.end();
});

describe('console sessions', () => {
  it('redirects to sign-in, refuses a bad token and a sign-in without CSRF token, and sets a strict expiring cookie', async () => {
    const anon = await get(new Jar(), '/console/integrations');
    expect(anon.statusCode).toBe(303);
    expect(anon.headers.location).toBe('/console/sign-in?next=%2Fconsole%2Fintegrations');

    const bad = await signIn('atsr_not-a-token');
    expect(bad.res.statusCode).toBe(401);
    expect(bad.res.body).toContain('not valid');

    const { token } = await repo.createApiToken({ name: `${tokenPrefix}-a`, scope: { kind: 'company', companyId: company } });
    const jar = new Jar();
    await get(jar, '/console/sign-in');
    const noCsrf = await post(jar, '/console/sign-in', { token });
    expect(noCsrf.statusCode).toBe(403);
    expect(noCsrf.cookies.find((c) => c.name === 'atsr_console')).toBeUndefined();

    const ok = await signIn(token, '//evil.example/console');
    expect(ok.res.statusCode).toBe(303);
    expect(ok.res.headers.location).toBe('/console/integrations'); // no open redirect
    const setCookie = ([] as string[]).concat(ok.res.headers['set-cookie'] as string | string[]).find((c) => c.startsWith('atsr_console='))!;
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    expect(setCookie).toMatch(/Path=\/console/);
    expect(setCookie).toMatch(/Expires=/);
    const page = await get(ok.jar, '/console/integrations');
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('Console GH');
    expect(page.body).not.toContain(SECRET);
  });

  it('ends the session when its token is revoked or it expires, and on sign-out', async () => {
    const a = await repo.createApiToken({ name: `${tokenPrefix}-b`, scope: { kind: 'company', companyId: company } });
    const revoked = await signIn(a.token);
    expect((await get(revoked.jar, '/console/integrations')).statusCode).toBe(200);
    await repo.revokeApiToken(a.id);
    expect((await get(revoked.jar, '/console/integrations')).statusCode).toBe(303);

    const b = await repo.createApiToken({ name: `${tokenPrefix}-c`, scope: { kind: 'company', companyId: company } });
    const expiring = await signIn(b.token);
    await pool.query("UPDATE console_sessions SET expires_at = now() - interval '1 second' WHERE token_id = $1", [b.id]);
    expect((await get(expiring.jar, '/console/integrations')).statusCode).toBe(303);

    const out = await signIn(b.token);
    const page = await get(out.jar, '/console/integrations');
    const value = out.jar.cookies.get('atsr_console')!;
    expect((await post(out.jar, '/console/sign-out', { _csrf: csrfOf(page) })).statusCode).toBe(303);
    const stale = await app.inject({ method: 'GET', url: '/console/integrations', headers: { cookie: `atsr_console=${value}` } });
    expect(stale.statusCode).toBe(303); // the old cookie value no longer opens anything
  });

  it('saves settings with the PATCH rules: field errors, masked secrets, version conflicts', async () => {
    const { token } = await repo.createApiToken({ name: `${tokenPrefix}-d`, scope: { kind: 'admin' } });
    const { jar } = await signIn(token);
    const form = await get(jar, `/console/integrations/${integration.id}/settings`);
    expect(form.body).not.toContain(SECRET);
    expect(form.body).toContain('••••6789');
    const fields = { _csrf: csrfOf(form), version: String(integration.version), name: 'Renamed', apiBaseUrl: '', 'settings.apiVersion': 'v1', 'settings.onBehalfOf': '4080', 'settings.sourceId': '', 'credentials.apiKey': '', enabled: 'on' };

    const invalid = await post(jar, `/console/integrations/${integration.id}/settings`, { ...fields, 'settings.onBehalfOf': 'abc' });
    expect(invalid.statusCode).toBe(400);
    expect(invalid.body).toMatch(/id="f-settings-onBehalfOf-error"[^>]*>must be a Greenhouse user id/);

    // Someone else saves first: this form's version is stale.
    await repo.updateIntegration(integration.id, integration.version, { name: 'Changed elsewhere' });
    const conflict = await post(jar, `/console/integrations/${integration.id}/settings`, fields);
    expect(conflict.statusCode).toBe(409);
    expect(conflict.body).toContain('someone else changed');
    expect((await repo.getIntegration(integration.id))?.name).toBe('Changed elsewhere');

    const fresh = await repo.getIntegration(integration.id);
    const saved = await post(jar, `/console/integrations/${integration.id}/settings`, { ...fields, version: String(fresh!.version) });
    expect(saved.statusCode).toBe(303);
    const after = await repo.getIntegration(integration.id);
    expect(after?.name).toBe('Renamed');
    expect(after?.credentials.apiKey).toBe(SECRET); // an empty secret input keeps the stored secret
  });

  it('shows where the ATS sends status webhooks, generates a secret shown once, and leaves Lever tokens to Lever', async () => {
    const { token } = await repo.createApiToken({ name: `${tokenPrefix}-w`, scope: { kind: 'admin' } });
    const { jar } = await signIn(token);
    const url = `${config.inbound.publicBaseUrl}/integrations/${integration.id}/webhook`;
    const before = await get(jar, `/console/integrations/${integration.id}`);
    expect(before.statusCode).toBe(200);
    expect(before.body).toContain(url);
    expect(before.body).toContain('No secret set yet');

    // Without the form's CSRF token nothing is generated.
    expect((await post(jar, `/console/integrations/${integration.id}/webhook-secret`, {})).statusCode).toBe(403);
    const generated = await post(jar, `/console/integrations/${integration.id}/webhook-secret`, { _csrf: csrfOf(before) });
    expect(generated.statusCode).toBe(200);
    expect(generated.headers['cache-control']).toBe('no-store');
    const secret = /data-new-secret>([^<]+)</.exec(generated.body)?.[1];
    expect(secret).toMatch(/^whsec_/);
    const secrets = createWebhookSecrets({ pool, keyring: new Keyring(config.crypto.encryptionKeys) });
    expect(await secrets.signingKey((await repo.getIntegration(integration.id))!)).toBe(secret);
    const after = await get(jar, `/console/integrations/${integration.id}`);
    expect(after.body).not.toContain(secret!);
    expect(after.body).toContain('Replace the secret');

    const lever = await repo.createIntegration(company, sampleIntegration('lever'));
    const leverPage = await get(jar, `/console/integrations/${lever.id}`);
    expect(leverPage.body).toContain('a token per webhook');
    expect(leverPage.body).not.toContain(`/console/integrations/${lever.id}/webhook-secret`);
    expect((await post(jar, `/console/integrations/${lever.id}/webhook-secret`, { _csrf: csrfOf(leverPage) })).statusCode).toBe(400);
  });

  it('leaves the REST API to bearer tokens', async () => {
    expect((await app.inject({ method: 'GET', url: `/companies/${company}/integrations` })).statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/consolex' })).statusCode).toBe(401);
  });
});
