import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/config.ts';
import { CryptoError, Keyring } from '../../registry/keyring.ts';
import { createPool } from '../../lib/db.ts';
import { createDeliveryClaims } from '../../consumers/dispatcher/delivery-claims.ts';
import { createDeliveryStore } from '../../consumers/dispatcher/delivery-store.ts';
import { createIntegrationRepository } from '../../registry/repository.ts';
import { RegistryError } from '../../registry/errors.ts';
import { companyId, isolatedDatabase, keyringSpec, registryHarness, sampleIntegration } from './support.ts';

const h = registryHarness();
afterAll(() => h.close());

async function storedRow(id: string): Promise<{ credentials_ciphertext: Buffer | null; credentials_key_id: string | null; version: number; deleted_at: Date | null }> {
  const { rows } = await h.pool.query('SELECT credentials_ciphertext, credentials_key_id, version, deleted_at FROM integrations WHERE id = $1', [id]);
  return rows[0];
}

describe('integration repository (real PostgreSQL)', () => {
  it('creates, reads, lists, updates and deletes an integration', async () => {
    const company = companyId();
    const input = sampleIntegration('lever');
    const created = await h.repo.createIntegration(company, input);
    expect(created).toMatchObject({ companyId: company, platform: 'lever', name: input.name, settings: input.settings, credentials: input.credentials, enabled: true, version: 1 });
    expect(created.credentialsKeyId).toBe(h.keyring.primaryKeyId);

    expect(await h.repo.getIntegration(created.id)).toEqual(created);
    const other = await h.repo.createIntegration(company, sampleIntegration('workable'));
    expect((await h.repo.listIntegrations({ companyId: company })).map((i) => i.id)).toEqual([created.id, other.id]);

    const updated = await h.repo.updateIntegration(created.id, 1, { name: 'renamed', enabled: false, credentials: { apiKey: 'new-lever-key-0001' } });
    expect(updated).toMatchObject({ name: 'renamed', enabled: false, version: 2, credentials: { apiKey: 'new-lever-key-0001' }, settings: input.settings });
    expect(updated.updatedAt.getTime()).toBeGreaterThanOrEqual(created.updatedAt.getTime());

    expect(await h.repo.deleteIntegration(created.id)).toBe(true);
    expect(await h.repo.getIntegration(created.id)).toBeNull();
    expect(await h.repo.deleteIntegration(created.id)).toBe(false);
    // The row stays for the delivery log, its secrets do not.
    const row = await storedRow(created.id);
    expect(row.deleted_at).not.toBeNull();
    expect(row.credentials_ciphertext).toBeNull();
    expect((await h.repo.listIntegrations({ companyId: company })).map((i) => i.id)).toEqual([other.id]);
  });

  it('stores credentials as AES-GCM ciphertext that is not the plaintext and decrypts only with the right key', async () => {
    const input = sampleIntegration('generic');
    const created = await h.repo.createIntegration(companyId(), input);
    const row = await storedRow(created.id);
    expect(row.credentials_key_id).toBe(h.keyring.primaryKeyId);
    const bytes = row.credentials_ciphertext!;
    for (const secret of Object.values(input.credentials)) {
      expect(bytes.includes(Buffer.from(secret))).toBe(false);
      expect(bytes.toString('latin1')).not.toContain(secret);
    }
    // Same key ids, different key material: reading fails loudly, never returns garbage.
    const wrongKeys = new Keyring(h.keyring.keyIds.map((id) => keyringSpec(id)).join(','));
    const wrongRepo = createIntegrationRepository({ pool: h.pool, keyring: wrongKeys });
    await expect(wrongRepo.getIntegration(created.id)).rejects.toMatchObject({ code: 'decrypt_failed', message: expect.stringContaining(created.id) });
    // A keyring without the key id.
    const otherRepo = createIntegrationRepository({ pool: h.pool, keyring: new Keyring(keyringSpec('elsewhere')) });
    await expect(otherRepo.getIntegration(created.id)).rejects.toBeInstanceOf(CryptoError);
  });

  it('binds each ciphertext to its integration: copied to another row it does not decrypt', async () => {
    const a = await h.repo.createIntegration(companyId(), sampleIntegration('ashby'));
    const b = await h.repo.createIntegration(companyId(), sampleIntegration('ashby'));
    await h.pool.query(
      'UPDATE integrations SET credentials_ciphertext = src.credentials_ciphertext FROM integrations src WHERE integrations.id = $1 AND src.id = $2',
      [b.id, a.id],
    );
    await expect(h.repo.getIntegration(b.id)).rejects.toMatchObject({ code: 'decrypt_failed' });
    // Leave no unreadable row behind in the shared test database.
    await h.pool.query('DELETE FROM integrations WHERE id = $1', [b.id]);
  });

  it('rejects a stale version with a conflict and bumps the version on every write', async () => {
    const created = await h.repo.createIntegration(companyId(), sampleIntegration('greenhouse'));
    await h.repo.updateIntegration(created.id, 1, { name: 'first' });
    const err = await h.repo.updateIntegration(created.id, 1, { name: 'second' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err).toMatchObject({ code: 'version_conflict', status: 409, context: { expectedVersion: 1, currentVersion: 2 } });
    expect((await h.repo.getIntegration(created.id))!.name).toBe('first');
    await expect(h.repo.updateIntegration('00000000-0000-4000-8000-000000000000', 1, { name: 'x' })).rejects.toMatchObject({ code: 'not_found', status: 404 });
    await expect(h.repo.updateIntegration('not-a-uuid', 1, { name: 'x' })).rejects.toMatchObject({ code: 'not_found' });
  });

  it('never loses a write under concurrent updates: exactly one writer per version wins', async () => {
    const created = await h.repo.createIntegration(companyId(), sampleIntegration('lever'));
    const writers = Array.from({ length: 8 }, (_, n) => h.repo.updateIntegration(created.id, 1, { name: `writer-${n}` }));
    const results = await Promise.allSettled(writers);
    const won = results.flatMap((r, n) => (r.status === 'fulfilled' ? [n] : []));
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'version_conflict' });
    const final = await h.repo.getIntegration(created.id);
    expect(final).toMatchObject({ name: `writer-${won[0]}`, version: 2 });
  });

  it('keeps tenants apart: a company scope sees, updates and deletes only its own integrations', async () => {
    const mine = companyId();
    const theirs = await h.repo.createIntegration(companyId(), sampleIntegration('workable'));
    expect(await h.repo.getIntegration(theirs.id, { companyId: mine })).toBeNull();
    await expect(h.repo.updateIntegration(theirs.id, 1, { name: 'hijack' }, { companyId: mine })).rejects.toMatchObject({ code: 'not_found' });
    expect(await h.repo.deleteIntegration(theirs.id, { companyId: mine })).toBe(false);
    await expect(h.repo.putJobMapping(theirs.id, 'job-1', 'x', { companyId: mine })).rejects.toMatchObject({ code: 'not_found' });
    expect(await h.repo.getIntegration(theirs.id)).toMatchObject({ name: theirs.name, version: 1 });
  });

  it('maps jobs: insert, re-map, look up, list and remove', async () => {
    const i = await h.repo.createIntegration(companyId(), sampleIntegration('workable'));
    expect((await h.repo.putJobMapping(i.id, 'job-1', 'AB12CD')).created).toBe(true);
    expect((await h.repo.putJobMapping(i.id, 'job-1', 'EF34GH')).created).toBe(false);
    await h.repo.putJobMapping(i.id, 'job-2', '77');
    expect(await h.repo.findJobMapping(i.id, 'job-1')).toBe('EF34GH');
    expect(await h.repo.findJobMapping(i.id, 'job-3')).toBeNull();
    expect((await h.repo.listJobMappings(i.id)).map((m) => [m.jobId, m.externalJobId])).toEqual([['job-1', 'EF34GH'], ['job-2', '77']]);
    expect(await h.repo.deleteJobMapping(i.id, 'job-2')).toBe(true);
    expect(await h.repo.deleteJobMapping(i.id, 'job-2')).toBe(false);
  });

  describe('delivery log', () => {
    it('records outcomes per (integration, application), counts tries and never downgrades a delivered row', async () => {
      const i = await h.repo.createIntegration(companyId(), sampleIntegration('greenhouse'));
      const base = { integrationId: i.id, applicationId: 'app-1', eventId: 'evt-1' };
      const pending = await h.deliveries.recordDeliveryOutcome({ ...base, status: 'pending' });
      expect(pending.delivery).toMatchObject({ status: 'pending', tryCount: 0, firstAttemptAt: null });
      const failed = await h.deliveries.recordDeliveryOutcome({ ...base, status: 'retrying', error: { code: 'unavailable', message: 'HTTP 503 from Greenhouse', status: 503 } });
      expect(failed.delivery).toMatchObject({ status: 'retrying', tryCount: 1, errorCode: 'unavailable', errorStatus: 503 });
      expect(failed.delivery.firstAttemptAt).not.toBeNull();
      const ok = await h.deliveries.recordDeliveryOutcome({ ...base, eventId: 'evt-1b', status: 'delivered', externalCandidateId: 'c-9', externalApplicationId: 'a-9' });
      expect(ok).toMatchObject({ applied: true, delivery: { status: 'delivered', tryCount: 2, errorCode: null, externalCandidateId: 'c-9', eventId: 'evt-1b' } });
      expect(ok.delivery.firstAttemptAt).toEqual(failed.delivery.firstAttemptAt);

      const late = await h.deliveries.recordDeliveryOutcome({ ...base, status: 'retrying', error: { code: 'timeout', message: 'late duplicate' } });
      expect(late).toMatchObject({ applied: false, delivery: { status: 'delivered', tryCount: 2 } });
      expect(await h.deliveries.findDelivery(i.id, 'app-1')).toEqual(ok.delivery);

      const after = await h.repo.getIntegration(i.id);
      expect(after!.lastDeliveryAt).not.toBeNull();
      expect(after!.lastError).toBe('unavailable: HTTP 503 from Greenhouse');
      expect(after!.version).toBe(1);
    });

    it("answers the dispatcher's first look in one statement: routed or not, and the delivery row, per record in order", async () => {
      const i = await h.repo.createIntegration(companyId(), sampleIntegration('greenhouse'));
      const claims = createDeliveryClaims(h.pool);
      const group = `g-${randomUUID()}`;
      const at = (offset: string) => ({ group, topic: 'ats.applications', partition: 2, offset });
      const delivered = await h.deliveries.recordDeliveryOutcome({ integrationId: i.id, applicationId: 'app-d', eventId: 'e-d', status: 'delivered' });
      await claims.recordRoute({ ...at('7'), integrationId: i.id, applicationId: 'app-r', routedTo: 'retry-30s' });
      const answers = await h.deliveries.findDeliveriesAndRoutes([
        { ...at('7'), integrationId: i.id, applicationId: 'app-r' },
        { ...at('8'), integrationId: i.id, applicationId: 'app-d' },
        { ...at('9'), integrationId: i.id, applicationId: 'app-new' },
        { ...at('7'), integrationId: 'not-a-uuid', applicationId: 'app-d' },
        { ...at('7'), group: `${group}-other`, integrationId: i.id, applicationId: 'app-new' },
      ]);
      expect(answers).toEqual([
        { routed: true, delivery: null },
        { routed: false, delivery: delivered.delivery },
        { routed: false, delivery: null },
        { routed: true, delivery: null },
        { routed: false, delivery: null },
      ]);
      expect(await h.deliveries.findDeliveriesAndRoutes([])).toEqual([]);
    });

    it("releases the attempt's lease in the outcome's statement, and only its own holder's", async () => {
      const i = await h.repo.createIntegration(companyId(), sampleIntegration('greenhouse'));
      const claims = createDeliveryClaims(h.pool);
      const leaseRow = async (applicationId: string): Promise<string | undefined> =>
        (await h.pool.query<{ holder: string }>('SELECT holder FROM delivery_leases WHERE integration_id = $1 AND application_id = $2', [i.id, applicationId])).rows[0]?.holder;

      const lease = await claims.lease(i.id, 'app-l1');
      expect(lease.acquired).toBe(true);
      expect(await leaseRow('app-l1')).toBe(lease.holder);
      const statements: string[] = [];
      const counted = { query: (text: string, values?: unknown[]) => (statements.push(text), h.pool.query(text, values)) } as unknown as typeof h.pool;
      const [result] = await createDeliveryStore(counted).recordDeliveryOutcomes([
        { integrationId: i.id, applicationId: 'app-l1', eventId: 'evt-l1', status: 'delivered', externalCandidateId: 'c-1', releaseLease: lease.holder },
      ]);
      expect(statements).toHaveLength(1);
      expect(result).toMatchObject({ applied: true, delivery: { status: 'delivered', externalCandidateId: 'c-1' } });
      expect(await leaseRow('app-l1')).toBeUndefined();
      lease.releasedElsewhere();
      await lease.release(); // nothing left to do: no statement, no error
      expect((await claims.lease(i.id, 'app-l1')).acquired).toBe(true);

      // Our lease expired and another process holds the application now: its lease stays.
      await h.pool.query("INSERT INTO delivery_leases (integration_id, application_id, holder, expires_at) VALUES ($1, 'app-l2', 'someone-else', now() + interval '30 seconds')", [i.id]);
      await h.deliveries.recordDeliveryOutcomes([{ integrationId: i.id, applicationId: 'app-l2', eventId: 'evt-l2', status: 'delivered', releaseLease: 'our-expired-holder' }]);
      expect(await leaseRow('app-l2')).toBe('someone-else');
      // A delivered row is not changed again, but the attempt is over: its lease goes all the same.
      await h.pool.query("UPDATE delivery_leases SET holder = 'late-copy' WHERE integration_id = $1 AND application_id = 'app-l2'", [i.id]);
      const late = await h.deliveries.recordDeliveryOutcomes([{ integrationId: i.id, applicationId: 'app-l2', eventId: 'evt-l2', status: 'retrying', releaseLease: 'late-copy' }]);
      expect(late[0]).toMatchObject({ applied: false, delivery: null });
      expect(await leaseRow('app-l2')).toBeUndefined();

      // The dispatcher's form: the same statement, nothing read back; the same effect.
      const l3 = await claims.lease(i.id, 'app-l3');
      statements.length = 0;
      await createDeliveryStore(counted).writeDeliveryOutcomes([
        { integrationId: i.id, applicationId: 'app-l3', eventId: 'evt-l3', status: 'delivered', externalCandidateId: 'c-3', releaseLease: l3.holder },
      ]);
      expect(statements).toHaveLength(1);
      expect(await leaseRow('app-l3')).toBeUndefined();
      expect(await h.deliveries.findDelivery(i.id, 'app-l3')).toMatchObject({ status: 'delivered', externalCandidateId: 'c-3', tryCount: 1 });
      await h.deliveries.writeDeliveryOutcomes([{ integrationId: i.id, applicationId: 'app-l3', eventId: 'evt-l3b', status: 'retrying', error: { code: 'unavailable', message: 'late' } }]);
      expect(await h.deliveries.findDelivery(i.id, 'app-l3')).toMatchObject({ status: 'delivered', eventId: 'evt-l3', tryCount: 1 });
      await h.pool.query('DELETE FROM delivery_leases WHERE integration_id = $1', [i.id]);
    });

    it('pages newest first with a cursor and filters by status', async () => {
      const i = await h.repo.createIntegration(companyId(), sampleIntegration('lever'));
      for (let n = 0; n < 7; n += 1) {
        await h.deliveries.recordDeliveryOutcome({ integrationId: i.id, applicationId: `app-${n}`, eventId: `evt-${n}`, status: n % 3 === 0 ? 'dead_lettered' : 'delivered' });
      }
      const seen: string[] = [];
      let cursor: string | undefined;
      for (let page = 0; page < 5; page += 1) {
        const res = await h.deliveries.listDeliveries(i.id, { limit: 3, cursor });
        seen.push(...res.items.map((d) => d.applicationId));
        if (!res.nextCursor) break;
        cursor = res.nextCursor;
      }
      expect(seen).toEqual(['app-6', 'app-5', 'app-4', 'app-3', 'app-2', 'app-1', 'app-0']);
      const dead = await h.deliveries.listDeliveries(i.id, { status: 'dead_lettered' });
      expect(dead.items.map((d) => d.applicationId)).toEqual(['app-6', 'app-3', 'app-0']);
      expect(dead.nextCursor).toBeNull();
      await expect(h.deliveries.listDeliveries(i.id, { cursor: 'garbage' })).rejects.toMatchObject({ code: 'invalid_request', fields: [{ field: 'cursor' }] });
    });

    it("finds a candidate's deliveries by e-mail, keeping only a hash of the address", async () => {
      const i = await h.repo.createIntegration(companyId(), sampleIntegration('workable'));
      const base = { integrationId: i.id, eventId: 'evt-e' };
      await h.deliveries.recordDeliveryOutcome({ ...base, applicationId: 'app-ada-1', status: 'retrying', candidateEmail: 'Ada.Lovelace@Example.com', error: { code: 'unavailable', message: 'HTTP 503' } });
      await h.deliveries.recordDeliveryOutcome({ ...base, applicationId: 'app-ada-2', status: 'delivered', candidateEmail: 'ada.lovelace@example.com' });
      await h.deliveries.recordDeliveryOutcome({ ...base, applicationId: 'app-bob', status: 'delivered', candidateEmail: 'bob@example.com' });
      // A later outcome without the address keeps the one already known.
      await h.deliveries.recordDeliveryOutcome({ ...base, applicationId: 'app-ada-1', status: 'delivered' });

      const ada = await h.deliveries.listDeliveries(i.id, { candidateEmail: '  ADA.lovelace@example.com ' });
      expect(ada.items.map((d) => d.applicationId).sort()).toEqual(['app-ada-1', 'app-ada-2']);
      expect((await h.deliveries.listDeliveries(i.id, { candidateEmail: 'nobody@example.com' })).items).toEqual([]);
      const { rows } = await h.pool.query<{ row: string }>('SELECT d::text AS row FROM deliveries d WHERE integration_id = $1', [i.id]);
      for (const r of rows) expect(r.row.toLowerCase()).not.toContain('lovelace');
    });
  });

  it('stores API tokens hashed and authenticates them until revoked', async () => {
    const company = companyId();
    const created = await h.repo.createApiToken({ name: 'backend', scope: { kind: 'company', companyId: company } });
    expect(created.token).toMatch(/^atsr_[A-Za-z0-9_-]{43}$/);
    const { rows } = await h.pool.query<{ token_hash: Buffer; scope: string }>('SELECT token_hash, scope FROM api_tokens WHERE id = $1', [created.id]);
    expect(rows[0]!.scope).toBe(`company:${company}`);
    expect(rows[0]!.token_hash.toString('latin1')).not.toContain(created.token);
    expect(await h.repo.authenticateToken(created.token)).toMatchObject({ id: created.id, scope: { kind: 'company', companyId: company } });
    expect(await h.repo.authenticateToken(`${created.token}x`)).toBeNull();
    expect(await h.repo.revokeApiToken(created.id)).toBe(true);
    expect(await h.repo.authenticateToken(created.token)).toBeNull();
  });
});

describe('key rotation and the start-up check (own database)', () => {
  it('re-encrypts every credential with the newest key, and each stays readable', async () => {
    const db = await isolatedDatabase();
    const pool = createPool({ url: db.url });
    try {
      const oldSpec = keyringSpec('k1');
      const oldRepo = createIntegrationRepository({ pool, keyring: new Keyring(oldSpec) });
      const inputs = (['greenhouse', 'lever', 'workable', 'ashby', 'generic'] as const).map((p) => sampleIntegration(p));
      const created = [];
      for (const input of inputs) created.push(await oldRepo.createIntegration(companyId(), input));
      await oldRepo.deleteIntegration(created[4]!.id);

      const newSpec = `${keyringSpec('k2')},${oldSpec}`;
      const rotating = createIntegrationRepository({ pool, keyring: new Keyring(newSpec) });
      // Before rotation the new ring reads the old ciphertexts (k1 still in the ring).
      await rotating.assertCredentialsReadable();
      expect(await rotating.rotateKeys()).toEqual({ rotated: 4, keyId: 'k2' });
      expect(await rotating.rotateKeys()).toEqual({ rotated: 0, keyId: 'k2' });

      const { rows } = await pool.query<{ credentials_key_id: string | null }>('SELECT DISTINCT credentials_key_id FROM integrations WHERE deleted_at IS NULL');
      expect(rows.map((r) => r.credentials_key_id)).toEqual(['k2']);

      // k1 can now be dropped: the newest key alone reads everything, with the same plaintext.
      const onlyNew = createIntegrationRepository({ pool, keyring: new Keyring(newSpec.split(',')[0]!) });
      await onlyNew.assertCredentialsReadable();
      for (const [n, c] of created.slice(0, 4).entries()) {
        expect((await onlyNew.getIntegration(c.id))!.credentials).toEqual(inputs[n]!.credentials);
        expect((await onlyNew.getIntegration(c.id))!.version).toBe(c.version);
      }
      // And the old key alone no longer does: the start-up check says so, naming the variable.
      const err = await oldRepo.assertCredentialsReadable().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable).toBe('ATS_RELAY_ENCRYPTION_KEYS');
      expect((err as Error).message).toContain('"k2"');
    } finally {
      await pool.end();
      await db.drop();
    }
  });

  it('fails the start-up check when a key id matches but its key is wrong', async () => {
    const db = await isolatedDatabase();
    const pool = createPool({ url: db.url });
    try {
      await createIntegrationRepository({ pool, keyring: new Keyring(keyringSpec('k1')) }).createIntegration(companyId(), sampleIntegration('ashby'));
      const err = await createIntegrationRepository({ pool, keyring: new Keyring(keyringSpec('k1')) }).assertCredentialsReadable().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(/ATS_RELAY_ENCRYPTION_KEYS: .*do not decrypt with key "k1"/);
    } finally {
      await pool.end();
      await db.drop();
    }
  });
});
