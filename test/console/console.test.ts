/**
 * The web console in a real headless Chromium, against the real stack: a company admin connects
 * Greenhouse (a field error shown at the field, fixed, connection tested against the ATS sandbox,
 * saved) and sees published applications delivered; a company session cannot open another
 * company's integration or any operator page; a POST without the CSRF token is refused; an
 * operator watches the pipeline, finds a failing company's dead letters grouped by code, fixes the
 * credentials, redrives (dry run → confirm → progress → history) and reads a record in the topic
 * inspector; an integration its ATS throttles shows as throttled (since when, how many deferred, next
 * attempt) apart from failures, and the alerts page lists it and the digests e-mailed.
 * Screenshots of the main pages go to docs/console/.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../api/server.ts';
import { createConnectors, type Connectors } from '../../connectors/index.ts';
import { createAlertConsumer } from '../../consumers/alerts/index.ts';
import { createDeliveryConsumer, type DeliveryConsumer } from '../../consumers/dispatcher/index.ts';
import { listThrottled } from '../../consumers/dispatcher/throttle-log.ts';
import type { ApplicationSubmitted } from '../../lib/application.ts';
import type { Config } from '../../lib/config.ts';
import { Keyring } from '../../registry/keyring.ts';
import { createPool, type Pool } from '../../lib/db.ts';
import { createDeliveryStore, type DeliveryStore } from '../../consumers/dispatcher/delivery-store.ts';
import { createIntegrationRepository, type IntegrationRepository } from '../../registry/repository.ts';
import type { IntegrationRecord } from '../../registry/integrations.ts';
import { ACKS_ALL } from '../../lib/kafka/index.ts';
import { startSandbox, type Sandbox } from '../../sandbox/server.ts';
import { chromiumArgs, ensureChromium } from '../../dev/stack/chromium.ts';
import { testConfig, uniqueName } from '../support/config.ts';
import { sampleEvent } from '../support/events.ts';
import { startPipelineBase, type PipelineBase } from '../support/pipeline-base.ts';
import { waitFor as waitUntil } from '../support/wait.ts';

const SHOTS = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../docs/console');
const GREENHOUSE_USER = '4080';

let config: Config;
let base: PipelineBase;
let pool: Pool;
let repo: IntegrationRepository;
let deliveries: DeliveryStore;
let sandbox: Sandbox;
let connectors: Connectors;
let dispatcher: DeliveryConsumer;
let api: FastifyInstance;
let url: string;
let browser: Browser;

const acme = uniqueName('acme');
const globex = uniqueName('globex');
const initech = uniqueName('initech');
let acmeTenant: { tenant: string; apiKey: string; jobId: string };
let initechTenant: { tenant: string; apiKey: string; jobId: string };
let globexIntegration: IntegrationRecord;
let initechIntegration: IntegrationRecord;
let companyToken: string;
let adminToken: string;
const tokenNames = [uniqueName('console-acme'), uniqueName('console-ops')];

function tenant(name: string): { tenant: string; apiKey: string; jobId: string } {
  const jobId = String(100_000 + Math.floor(Math.random() * 800_000));
  const apiKey = `key-${uniqueName('gh')}`;
  sandbox.addTenant({ platform: 'greenhouse', tenant: name, credentials: { apiKey }, users: [GREENHOUSE_USER], jobs: [jobId], rateLimit: null });
  return { tenant: name, apiKey, jobId };
}

/** Pages and the dispatcher behind them are slower than the pipeline alone: a longer default. */
const waitFor = <T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 45_000): Promise<T> => waitUntil(what, fn, timeoutMs, 200);

async function publish(events: ApplicationSubmitted[], topic = config.topics.applications): Promise<void> {
  await base.producer.send({ topic, acks: ACKS_ALL, messages: await Promise.all(events.map(async (e) => ({ key: e.applicationId, value: await base.codec.encode(e) }))) });
}

async function signIn(context: BrowserContext, token: string): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${url}/console/`);
  await expect.poll(() => page.url()).toContain('/console/sign-in');
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(/\/console\/integrations$/);
  return page;
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: false });
}

beforeAll(async () => {
  const executablePath = await ensureChromium((line) => console.log(line));
  config = testConfig({
    TOPIC_APPLICATIONS: uniqueName('console'),
    TOPIC_PARTITIONS: '3',
    RETRY_TIERS: 'retry-a:1000,retry-b:1500',
    CIRCUIT_FAILURE_THRESHOLD: '1000',
    ATS_REQUEST_TIMEOUT_MS: '5000',
    ATS_RATE_LIMITS: 'greenhouse=none',
    SHUTDOWN_TIMEOUT_MS: '15000',
  });
  base = await startPipelineBase(config);
  pool = createPool(config.database, { max: 6 });
  const keyring = new Keyring(config.crypto.encryptionKeys);
  repo = createIntegrationRepository({ pool, keyring });
  deliveries = createDeliveryStore(pool);
  sandbox = await startSandbox({ port: 0 });
  acmeTenant = tenant(uniqueName('acme-gh'));
  initechTenant = tenant(uniqueName('initech-gh'));
  const globexTenant = tenant(uniqueName('globex-gh'));
  const greenhouse = (t: { tenant: string; apiKey: string }, apiKey: string) => ({
    platform: 'greenhouse' as const,
    name: 'Greenhouse',
    settings: { apiVersion: 'v1' as const, onBehalfOf: GREENHOUSE_USER },
    credentials: { apiKey },
    apiBaseUrl: sandbox.urlFor('greenhouse', t.tenant),
    enabled: true,
    allowMissingResume: true,
  });
  globexIntegration = await repo.createIntegration(globex, greenhouse(globexTenant, globexTenant.apiKey));
  // Initech stored a wrong API key: its applications are dead-lettered with auth_failed.
  initechIntegration = await repo.createIntegration(initech, greenhouse(initechTenant, 'wrong-key-1234567890'));
  companyToken = (await repo.createApiToken({ name: tokenNames[0]!, scope: { kind: 'company', companyId: acme } })).token;
  adminToken = (await repo.createApiToken({ name: tokenNames[1]!, scope: { kind: 'admin' } })).token;

  dispatcher = createDeliveryConsumer({ config, logger: base.logger, role: { role: 'dispatcher' }, options: { groupId: uniqueName('dispatcher') } });
  await dispatcher.start();
  connectors = createConnectors({ requestTimeoutMs: config.ats.requestTimeoutMs, allowPrivateNetworks: true, resumeMaxBytes: config.ats.resumeMaxBytes });
  api = buildApi({ config, pool, keyring, log: base.logger, repository: repo, connectors });
  url = (await api.listen({ port: 0, host: '127.0.0.1' })).replace('0.0.0.0', '127.0.0.1');

  await mkdir(SHOTS, { recursive: true });
  browser = await chromium.launch({ executablePath, args: chromiumArgs(), headless: true });
  await waitFor('dispatcher to join', async () => dispatcher.ready, 30_000);
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await api?.close();
  await dispatcher?.close();
  await connectors?.close();
  await base?.close();
  await sandbox?.close();
  if (pool) {
    await pool.query('DELETE FROM integrations WHERE company_id = ANY($1)', [[acme, globex, initech]]);
    await pool.query('DELETE FROM api_tokens WHERE name = ANY($1)', [tokenNames]);
    await pool.end();
  }
});

describe('web console', () => {
  let acmeIntegrationId: string;

  it('a company admin connects Greenhouse (field error, fix, test, save) and sees applications delivered', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await signIn(context, companyToken);
    await expect.poll(() => page.getByText('No integrations yet').isVisible()).toBe(true);

    await page.getByRole('link', { name: 'Add an integration' }).click();
    await page.getByLabel('Platform').selectOption('greenhouse');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByLabel('Name').fill('Acme Greenhouse');
    await page.getByLabel('API base URL').fill(sandbox.urlFor('greenhouse', acmeTenant.tenant));
    await page.getByLabel('apiVersion').selectOption('v1');
    await page.getByLabel('onBehalfOf').fill('not-a-user-id');
    await page.getByLabel('apiKey').fill(acmeTenant.apiKey);
    await page.getByLabel('Deliver without the resume').check(); // the sample events carry none
    await page.getByRole('button', { name: 'Save integration' }).click();

    // The server's field-level error, next to the field.
    const fieldError = page.locator('[data-field="settings.onBehalfOf"] .field-error');
    await expect.poll(() => fieldError.textContent()).toContain('Greenhouse user id');
    expect(await page.getByLabel('onBehalfOf').getAttribute('aria-invalid')).toBe('true');
    expect(await page.evaluate('document.activeElement && document.activeElement.name')).toBe('settings.onBehalfOf'); // focus on the first error
    expect(await page.getByLabel('apiKey').inputValue()).toBe(''); // secrets are never sent back
    expect(await page.content()).not.toContain(acmeTenant.apiKey);
    await shot(page, 'new-integration-error');

    await page.getByLabel('onBehalfOf').fill(GREENHOUSE_USER);
    await page.getByLabel('apiKey').fill(acmeTenant.apiKey);
    await page.getByRole('button', { name: 'Test connection' }).click();
    await expect.poll(() => page.locator('#test-result').textContent(), { timeout: 20_000 }).toContain('Connection OK');
    await shot(page, 'new-integration-tested');
    await page.getByRole('button', { name: 'Save integration' }).click();
    await page.waitForURL(/\/console\/integrations\/[0-9a-f-]{36}$/);
    acmeIntegrationId = page.url().split('/').pop()!;
    const saved = await repo.getIntegration(acmeIntegrationId);
    expect(saved?.companyId).toBe(acme);
    expect(saved?.credentials.apiKey).toBe(acmeTenant.apiKey);

    const events = Array.from({ length: 3 }, () => sampleEvent({ companyId: acme, integrationId: acmeIntegrationId, platform: 'greenhouse', atsJobId: acmeTenant.jobId }));
    await publish(events);
    await waitFor('three deliveries', async () => (await deliveries.listDeliveries(acmeIntegrationId, { status: 'delivered' })).items.length === 3);

    await page.getByRole('link', { name: 'Deliveries' }).click();
    for (const e of events) await expect.poll(() => page.locator(`tr[data-application="${e.applicationId}"]`).textContent()).toContain('delivered');
    await shot(page, 'deliveries');
    await page.getByRole('link', { name: 'Overview' }).click();
    expect(await page.locator('figure.chart svg rect[fill="#2e8b57"]').count()).toBeGreaterThan(0);
    await shot(page, 'integration-overview');
    await page.getByRole('link', { name: 'Integrations', exact: true }).click();
    await expect.poll(() => page.locator(`[data-integration="${acmeIntegrationId}"]`).textContent()).toContain('100 %');
    await shot(page, 'integrations');

    const phone = await context.newPage();
    await phone.setViewportSize({ width: 390, height: 844 });
    await phone.goto(`${url}/console/integrations`);
    expect(await phone.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await shot(phone, 'integrations-phone');
    await context.close();
  });

  it('a company session gets 404 for another company and for operator pages, and a POST without CSRF token is refused', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await signIn(context, companyToken);
    for (const p of [`/console/integrations/${globexIntegration.id}`, `/console/integrations/${globexIntegration.id}/deliveries`, '/console/pipeline', '/console/dead-letters', '/console/topics', '/console/redrives']) {
      const res = await page.goto(`${url}${p}`);
      expect(res?.status(), p).toBe(404);
      expect(await page.content()).not.toContain(globexIntegration.name + ' ');
    }
    expect(await page.locator('nav[aria-label=Main]').textContent()).not.toContain('Pipeline');

    // The session cookie is HttpOnly and SameSite=Strict, with an expiry.
    const cookie = (await context.cookies()).find((c) => c.name === 'atsr_console')!;
    expect(cookie.httpOnly).toBe(true);
    expect(cookie.sameSite).toBe('Strict');
    expect(cookie.expires).toBeGreaterThan(Date.now() / 1000);

    // A state-changing POST with the session cookie but without the token: 403, nothing changed.
    const before = await repo.getIntegration(acmeIntegrationId);
    const res = await context.request.post(`${url}/console/integrations/${acmeIntegrationId}/enabled`, { form: { version: String(before!.version), enabled: 'false' }, maxRedirects: 0 });
    expect(res.status()).toBe(403);
    expect((await repo.getIntegration(acmeIntegrationId))?.enabled).toBe(true);

    // Through the page's own form it works (token included), and signing out ends the session.
    await page.goto(`${url}/console/integrations/${acmeIntegrationId}`);
    await page.getByRole('button', { name: 'Disable' }).click();
    await expect.poll(async () => (await repo.getIntegration(acmeIntegrationId))?.enabled).toBe(false);
    await page.getByRole('button', { name: 'Enable' }).click();
    await expect.poll(async () => (await repo.getIntegration(acmeIntegrationId))?.enabled).toBe(true);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/sign-in/);
    await page.goto(`${url}/console/integrations`);
    expect(page.url()).toContain('/console/sign-in');
    await context.close();
  });

  it('an operator sees the pipeline, redrives a failing company’s dead letters after the fix, and inspects a record', async () => {
    const failing = Array.from({ length: 2 }, () => sampleEvent({ companyId: initech, integrationId: initechIntegration.id, platform: 'greenhouse', atsJobId: initechTenant.jobId }));
    await publish(failing);
    await waitFor('dead letters', async () => (await deliveries.findDeliveries(failing.map((e) => ({ integrationId: initechIntegration.id, applicationId: e.applicationId })))).filter((d) => d.status === 'dead_lettered').length === 2);
    // Something no codec can read, on a tier nobody consumes here: the inspector shows it as hex.
    await base.producer.send({ topic: config.topics.retryTiers[0]!.topic, acks: ACKS_ALL, messages: [{ key: 'garbage', value: Buffer.from('not avro at all'), partition: 0 }] });

    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await signIn(context, adminToken);

    await page.getByRole('link', { name: 'Pipeline' }).click();
    const group = page.locator(`[data-group="${dispatcher.groupId}"]`);
    await expect.poll(() => group.isVisible(), { timeout: 20_000 }).toBe(true);
    expect(await group.textContent()).toContain('Lag');
    expect(await group.locator('[data-total-lag]').getAttribute('data-total-lag')).toMatch(/^\d+$/);
    expect(await page.locator(`[data-topic="${config.topics.dlq}"]`).textContent()).toContain('dlq');
    await shot(page, 'pipeline');

    await page.goto(`${url}/console/dead-letters`);
    const day = new Date().toISOString().slice(0, 10);
    const row = page.locator(`tr[data-group="${initech}/greenhouse/auth_failed/${day}"]`);
    await expect.poll(() => row.textContent()).toContain('auth_failed');
    expect(await row.locator('td.num').textContent()).toBe('2');
    await shot(page, 'dead-letters');

    // Fix the cause: the right API key, through the Settings tab (masked, replaced by a new value).
    await page.goto(`${url}/console/integrations/${initechIntegration.id}/settings`);
    expect(await page.content()).not.toContain('wrong-key-1234567890');
    expect(await page.locator('[data-field="credentials.apiKey"] .hint').textContent()).toContain('••••7890');
    await page.getByLabel('apiKey').fill(initechTenant.apiKey);
    await page.getByRole('button', { name: 'Save changes' }).click();
    await expect.poll(() => page.getByText('Saved (version').isVisible()).toBe(true);
    expect((await repo.getIntegration(initechIntegration.id))?.credentials.apiKey).toBe(initechTenant.apiKey);

    await page.goto(`${url}/console/dead-letters`);
    await row.getByRole('button', { name: 'Redrive…' }).click();
    await page.waitForURL(/dry-run/);
    await expect.poll(() => page.locator('[data-would-send]').getAttribute('data-would-send'), { timeout: 30_000 }).toBe('2');
    await shot(page, 'redrive-dry-run');
    await page.getByRole('button', { name: /Confirm: send 2 records/ }).click();
    await page.waitForURL(/\/console\/redrives\/[0-9a-f-]{36}$/);
    const runId = page.url().split('/').pop()!;
    await expect.poll(async () => {
      await page.reload();
      return page.locator('[data-run-status]').getAttribute('data-run-status');
    }, { timeout: 45_000 }).toBe('succeeded');
    expect(await page.locator('[data-sent]').getAttribute('data-sent')).toBe('2');
    await waitFor('redriven records delivered', async () => (await deliveries.findDeliveries(failing.map((e) => ({ integrationId: initechIntegration.id, applicationId: e.applicationId })))).filter((d) => d.status === 'delivered').length === 2);

    await page.getByRole('link', { name: 'Redrive history' }).first().click();
    const run = page.locator(`tr[data-run="${runId}"]`);
    expect(await run.textContent()).toContain(`${tokenNames[1]} (console)`);
    expect(await run.textContent()).toContain('succeeded');
    await shot(page, 'redrive-history');

    await page.goto(`${url}/console/integrations/${initechIntegration.id}/deliveries?status=delivered`);
    for (const e of failing) expect(await page.locator(`tr[data-application="${e.applicationId}"]`).textContent()).toContain('delivered');

    // The topic inspector decodes a dead letter and shows its headers.
    await page.goto(`${url}/console/topics?${new URLSearchParams({ topic: config.topics.dlq, partition: '0' }).toString()}`);
    const dead = await waitFor('a dead letter on some partition', async () => {
      for (let p = 0; p < 3; p++) {
        await page.goto(`${url}/console/topics?${new URLSearchParams({ topic: config.topics.dlq, partition: String(p), limit: '5' }).toString()}`);
        const card = page.locator('article[data-offset]', { hasText: initech }).first();
        if (await card.count()) return card;
      }
      return undefined;
    });
    expect(await dead.locator('[data-decoded]').textContent()).toContain(initech);
    const headers = await dead.locator('table[data-headers]').textContent();
    expect(headers).toContain('ats-error-code');
    expect(headers).toContain('auth_failed');
    expect(headers).toContain('latest error code');
    await shot(page, 'topic-inspector');

    await page.goto(`${url}/console/topics?${new URLSearchParams({ topic: config.topics.retryTiers[0]!.topic, partition: '0' }).toString()}`);
    expect(await page.locator('[data-hex]').first().textContent()).toContain('6e 6f 74 20 61 76 72 6f'); // "not avro"
    expect(await page.getByText('Not decodable').first().isVisible()).toBe(true);

    await page.goto(`${url}/console/alerts`);
    expect(await page.locator('article h2').first().textContent()).toContain('auth_failed');
    await context.close();
  });

  it('an integration its ATS throttles shows as throttled, apart from failures, on its card, its page and the alerts page, next to the digests e-mailed', async () => {
    // The ATS allows one request per two minutes: the dispatcher defers every application (parked on a
    // tier nobody consumes here, so the episode lasts) and records the episode.
    const busy = uniqueName('globex-busy');
    const apiKey = `key-${uniqueName('gh')}`;
    const jobId = String(100_000 + Math.floor(Math.random() * 800_000));
    sandbox.addTenant({ platform: 'greenhouse', tenant: busy, credentials: { apiKey }, users: [GREENHOUSE_USER], jobs: [jobId], rateLimit: { limit: 1, windowMs: 120_000 } });
    const throttledIntegration = await repo.createIntegration(globex, {
      platform: 'greenhouse',
      name: 'Globex Greenhouse (busy)',
      settings: { apiVersion: 'v1', onBehalfOf: GREENHOUSE_USER },
      credentials: { apiKey },
      apiBaseUrl: sandbox.urlFor('greenhouse', busy),
      enabled: true,
      allowMissingResume: true,
    });
    await publish(Array.from({ length: 4 }, () => sampleEvent({ companyId: globex, integrationId: throttledIntegration.id, platform: 'greenhouse', atsJobId: jobId })));
    const episode = await waitFor('the throttling episode recorded', async () => {
      const [t] = await listThrottled(pool, { integrationIds: [throttledIntegration.id] });
      return t && t.deferrals >= 4 ? t : undefined;
    });
    // An alert consumer e-mails the DLQ's dead letters (Initech's, above) and records the digest.
    const alertGroup = uniqueName('alerts');
    const alerts = createAlertConsumer({ config, logger: base.logger, options: { groupId: alertGroup, windowMs: 1_000, initialBackoffMs: 300, maxBackoffMs: 1_000 } });
    await alerts.start();
    const digest = await waitFor('a digest recorded as sent', async () => {
      const { rows } = await pool.query<{ id: string; records: number }>('SELECT id, records FROM alert_digests WHERE consumer_group = $1 AND sent_at IS NOT NULL', [alertGroup]);
      return rows[0];
    });
    await alerts.close();

    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await signIn(context, adminToken);
    const card = page.locator(`[data-integration="${throttledIntegration.id}"]`);
    const note = card.locator(`[data-throttled="${throttledIntegration.id}"]`);
    await expect.poll(() => note.textContent()).toMatch(/throttled\s+since \d{4}-\d\d-\d\dT[\d:]+Z \(\d+ (s|min|h) ago\), \d+ deferred, next attempt (in \d+ s|due now)/);
    expect(Number(await note.getAttribute('data-deferrals'))).toBeGreaterThanOrEqual(4);
    // Apart from failures: nothing retrying or dead-lettered, no error recorded.
    expect(await card.locator('.figures').textContent()).toMatch(/0\s*retrying\s*0\s*dead-lettered/);
    expect(await card.textContent()).toContain('no errors recorded');
    // Other integrations are not marked.
    expect(await page.locator(`[data-integration="${globexIntegration.id}"] [data-throttled]`).count()).toBe(0);

    await card.getByRole('link', { name: 'Globex Greenhouse (busy)' }).click();
    const section = page.locator('[data-throttling]');
    await expect.poll(() => section.isVisible()).toBe(true);
    expect(await section.textContent()).toContain('Throttled is not failed');
    expect(await section.locator('[data-throttled] time').first().getAttribute('datetime')).toBe(new Date(episode.throttledSince).toISOString().replace(/\.\d{3}Z$/, 'Z'));
    await shot(page, 'integration-throttled');

    await page.getByRole('link', { name: 'Alerts' }).click();
    const listed = page.locator(`[data-throttled-card="${throttledIntegration.id}"]`);
    await expect.poll(() => listed.textContent()).toContain('Globex Greenhouse (busy)');
    expect(await listed.textContent()).toContain(`company ${globex}`);
    expect(Number(await listed.locator('[data-throttled]').getAttribute('data-deferrals'))).toBeGreaterThanOrEqual(episode.deferrals);
    const sent = page.locator(`tr[data-digest="${digest.id}"]`);
    expect(await sent.textContent()).toContain('sent');
    expect(await sent.locator('td.num').first().textContent()).toBe(String(digest.records));
    await context.close();
  });
});
