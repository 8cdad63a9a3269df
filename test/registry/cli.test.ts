import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Keyring } from '../../registry/keyring.ts';
import { createPool } from '../../lib/db.ts';
import { createIntegrationRepository } from '../../registry/repository.ts';
import { createWebhookSecrets } from '../../producers/webhooks/secrets.ts';
import { testEnv } from '../support/config.ts';
import { runScript, type ScriptRun } from '../support/run-script.ts';
import { companyId, isolatedDatabase, keyringSpec, registryHarness, sampleIntegration } from './support.ts';

const h = registryHarness();
const tmp = await mkdtemp(path.join(tmpdir(), 'ats-relay-cli-'));
afterAll(async () => {
  await h.close();
  await rm(tmp, { recursive: true, force: true });
});

const cli = (args: string[], env?: Record<string, string>, input?: string): Promise<ScriptRun> => runScript('scripts/integrations.ts', args, env, input);
const idFrom = (out: string): string => /^id\s+([0-9a-f-]{36})$/m.exec(out)![1]!;

describe('npm run integrations', () => {
  it('prints help for the tool and for each command', async () => {
    const top = await cli(['--help']);
    expect(top.code).toBe(0);
    for (const command of ['add', 'list', 'show', 'update', 'disable', 'map-job', 'rotate-keys', 'create-token']) expect(top.stdout).toContain(command);
    const add = await cli(['add', '--help']);
    expect(add.stdout).toMatch(/^Usage: npm run integrations -- add --company/);
    expect((await cli(['frobnicate'])).code).toBe(2);
  });

  it('adds, lists, shows, updates, maps jobs and disables, printing secrets masked', async () => {
    const company = companyId();
    const input = sampleIntegration('greenhouse');
    const credsFile = path.join(tmp, 'creds.json');
    await writeFile(credsFile, JSON.stringify(input.credentials));

    const add = await cli(['add', '--company', company, '--platform', 'greenhouse', '--name', 'Greenhouse prod', '--settings', JSON.stringify(input.settings), '--credentials-file', credsFile]);
    expect(add.code, add.stderr).toBe(0);
    const id = idFrom(add.stdout);
    expect(add.stdout).toContain(`••••${input.credentials.clientSecret!.slice(-4)}`);
    for (const secret of Object.values(input.credentials)) expect(add.stdout + add.stderr).not.toContain(secret);
    expect((await h.repo.getIntegration(id))!.credentials).toEqual(input.credentials);

    const list = await cli(['list', '--company', company]);
    expect(list.stdout).toMatch(/^ID\s+COMPANY\s+PLATFORM\s+NAME\s+ENABLED/);
    expect(list.stdout).toContain(id);
    expect(list.stdout).toContain('1 integration');

    const update = await cli(['update', id, '--settings', '{"sourceId": 12}', '--name', 'Greenhouse (main)']);
    expect(update.code, update.stderr).toBe(0);
    expect(await h.repo.getIntegration(id)).toMatchObject({ name: 'Greenhouse (main)', version: 2, settings: { ...input.settings, sourceId: 12 } });

    const stale = await cli(['update', id, '--name', 'stale', '--version', '1']);
    expect(stale.code).toBe(3);
    expect(stale.stderr).toContain('changed by someone else');

    expect((await cli(['map-job', id, 'job-7', '4455'])).stdout).toContain('mapped job job-7 → 4455');
    const show = await cli(['show', id]);
    expect(show.stdout).toMatch(/job-7\s+4455/);
    expect((await cli(['map-job', id, 'job-7', '--remove'])).code).toBe(0);
    expect(await h.repo.findJobMapping(id, 'job-7')).toBeNull();

    const disable = await cli(['disable', id]);
    expect(disable.stdout).toContain('disabled');
    expect((await h.repo.getIntegration(id))!.enabled).toBe(false);

    const json = JSON.parse((await cli(['show', id, '--json'])).stdout) as { credentials: Record<string, string>; enabled: boolean };
    expect(json.enabled).toBe(false);
    expect(Object.values(json.credentials).every((v) => v.startsWith('••••'))).toBe(true);
  });

  it('validates like the API and reads credentials from stdin', async () => {
    const bad = await cli(['add', '--company', companyId(), '--platform', 'lever', '--name', 'x', '--settings', '{"origin":"magic"}', '--credentials', '{}']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('settings.origin must be one of: applied, sourced, referred, agency, internal, university');
    expect(bad.stderr).toContain('settings.performAs is required');
    expect(bad.stderr).toContain('credentials.apiKey is required');

    const viaStdin = await cli(['add', '--company', companyId(), '--platform', 'ashby', '--name', 'Ashby', '--settings', '{}', '--credentials-file', '-'], {}, '{"apiKey":"ashby-from-stdin-0001"}');
    expect(viaStdin.code, viaStdin.stderr).toBe(0);
    expect((await h.repo.getIntegration(idFrom(viaStdin.stdout)))!.credentials).toEqual({ apiKey: 'ashby-from-stdin-0001' });
  });

  it('creates API tokens shown once, stored hashed, scoped to a company', async () => {
    const company = companyId();
    const out = await cli(['create-token', '--company', company, '--name', 'backend']);
    expect(out.code, out.stderr).toBe(0);
    const token = /^token\s+(atsr_\S+)$/m.exec(out.stdout)![1]!;
    expect(await h.repo.authenticateToken(token)).toMatchObject({ scope: { kind: 'company', companyId: company } });
    expect((await cli(['create-token', '--name', 'x'])).code).toBe(2);
  });

  it("webhook --event stores one Lever webhook's token (Lever issues one per event), not echoed; refused off Lever", async () => {
    const help = await cli(['webhook', '--help']);
    expect(help.stdout).toContain('--event <name>');
    expect(help.stdout).toContain('candidateArchiveChange');

    const lever = await h.repo.createIntegration(companyId(), sampleIntegration('lever'));
    const token = 'lever-token-candidate-hired-0123456789abcdef0123456789ab';
    const stored = await cli(['webhook', lever.id, '--rotate', '--secret-file', '-', '--event', 'candidateHired'], {}, `${token}\n`);
    expect(stored.code, stored.stderr).toBe(0);
    expect(stored.stdout).toMatch(/^event\s+candidateHired$/m);
    expect(stored.stdout).not.toContain(token);
    const secrets = createWebhookSecrets({ pool: h.pool, keyring: h.keyring });
    expect(await secrets.signingKey(lever, 'candidateHired')).toBe(token);
    // No integration-wide secret: another event has nothing to be checked with.
    expect(await secrets.signingKey(lever, 'candidateStageChange')).toBeNull();

    const shown = await cli(['webhook', lever.id]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/^token for candidateHired\s+set \d{4}-/m);
    expect(shown.stdout).not.toContain(token);

    const noFile = await cli(['webhook', lever.id, '--rotate', '--event', 'candidateHired']);
    expect(noFile.code).toBe(2);
    expect(noFile.stderr).toContain('--event goes with --rotate --secret-file');
    const unknown = await cli(['webhook', lever.id, '--rotate', '--secret-file', '-', '--event', 'candidate_moved'], {}, token);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("must be one of Lever's webhook events");
    const gh = await h.repo.createIntegration(companyId(), sampleIntegration('greenhouse'));
    const notLever = await cli(['webhook', gh.id, '--rotate', '--secret-file', '-', '--event', 'candidateHired'], {}, token);
    expect(notLever.code).toBe(2);
    expect(notLever.stderr).toContain('only Lever');
    expect((await secrets.info(gh.id)).shared).toBeNull();
  });

  it('exits 2 naming ATS_RELAY_ENCRYPTION_KEYS when the keyring is missing or malformed', async () => {
    for (const value of ['', 'k1:tooshort']) {
      // An empty STACK_HOME: no local-stack dev keyring to fall back on, as on a server.
      const res = await cli(['list'], { ATS_RELAY_ENCRYPTION_KEYS: value, STACK_HOME: mkdtempSync(path.join(tmpdir(), 'no-stack-')) });
      expect(res.code).toBe(2);
      expect(res.stderr).toContain('ATS_RELAY_ENCRYPTION_KEYS');
    }
  });

  it('rotate-keys re-encrypts credentials and webhook secrets to the newest key', async () => {
    const db = await isolatedDatabase();
    const pool = createPool({ url: db.url });
    try {
      const oldSpec = keyringSpec('k1');
      const repo = createIntegrationRepository({ pool, keyring: new Keyring(oldSpec) });
      const a = await repo.createIntegration(companyId(), sampleIntegration('lever'));
      // Webhook secrets are sealed with the same ring: left under k1 they would stop opening once k1 is removed.
      const oldSecrets = createWebhookSecrets({ pool, keyring: new Keyring(oldSpec) });
      const shared = await oldSecrets.rotate(a.id);
      const hired = await oldSecrets.rotate(a.id, 'lever-token-for-hired-0123456789', 'candidateHired');
      const newSpec = `${keyringSpec('k2')},${oldSpec}`;
      const res = await cli(['rotate-keys'], { DATABASE_URL: db.url, ATS_RELAY_ENCRYPTION_KEYS: newSpec });
      expect(res.code, res.stderr).toBe(0);
      expect(res.stdout).toContain('re-encrypted 1 integration and 2 webhook secrets with key k2');
      const onlyNew = new Keyring(newSpec.split(',')[0]!);
      const after = createIntegrationRepository({ pool, keyring: onlyNew });
      const integration = (await after.getIntegration(a.id))!;
      expect(integration.credentials).toEqual(a.credentials);
      const newSecrets = createWebhookSecrets({ pool, keyring: onlyNew });
      expect(await newSecrets.signingKey(integration)).toBe(shared);
      expect(await newSecrets.signingKey(integration, 'candidateHired')).toBe(hired);
      expect(await newSecrets.reseal()).toBe(0);
    } finally {
      await pool.end();
      await db.drop();
    }
  });
});

describe('npm run api', () => {
  it('serves on the configured port and shuts down gracefully on SIGTERM', async () => {
    // Own database: the start-up check reads every stored credential, and the shared test database
    // keeps rows sealed with earlier runs' throwaway keys.
    const db = await isolatedDatabase();
    const pool = createPool({ url: db.url });
    const keys = keyringSpec('k1');
    const repo = createIntegrationRepository({ pool, keyring: new Keyring(keys) });
    await repo.createIntegration(companyId(), sampleIntegration('lever'));
    const child = spawn(process.execPath, ['--import', 'tsx', 'api/cli.ts', '--port', '0', '--host', '127.0.0.1'], {
      env: { ...testEnv(), LOG_LEVEL: 'info', DATABASE_URL: db.url, ATS_RELAY_ENCRYPTION_KEYS: keys },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      const address = await new Promise<string>((resolve, reject) => {
        let buf = '';
        child.stdout.on('data', (d: Buffer) => {
          buf += d.toString();
          const m = /"address":"(http:\/\/[^"]+)".*"msg":"api listening"/.exec(buf);
          if (m) resolve(m[1]!);
        });
        void exited.then((code) => reject(new Error(`api exited early (${code}): ${stderr}`)));
      });
      const health = await fetch(`${address}/healthz`);
      expect(health.status).toBe(200);
      const token = (await repo.createApiToken({ name: 'api-process', scope: { kind: 'admin' } })).token;
      const company = companyId();
      const created = await fetch(`${address}/companies/${company}/integrations`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(sampleIntegration('workable')),
      });
      expect(created.status).toBe(201);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await pool.end();
      await db.drop();
    }
  });

  it('refuses to start when the keyring cannot read the stored credentials', async () => {
    const db = await isolatedDatabase();
    const pool = createPool({ url: db.url });
    try {
      await createIntegrationRepository({ pool, keyring: new Keyring(keyringSpec('k1')) }).createIntegration(companyId(), sampleIntegration('ashby'));
      const res = await runScript('api/cli.ts', ['--port', '0'], { DATABASE_URL: db.url, ATS_RELAY_ENCRYPTION_KEYS: keyringSpec('k1') });
      expect(res.code).toBe(2);
      expect(res.stderr).toMatch(/ATS_RELAY_ENCRYPTION_KEYS: .*do not decrypt with key "k1"/);
    } finally {
      await pool.end();
      await db.drop();
    }
  });
});
