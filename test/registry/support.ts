/**
 * Shared set-up for the registry tests: a pool and repository on the test database, throwaway
 * databases for tests that scan every row (key rotation, start-up checks), and sample input.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Config } from '../../lib/config.ts';
import { generateKey, Keyring } from '../../registry/keyring.ts';
import { createPool, type Pool } from '../../lib/db.ts';
import { createDeliveryStore, type DeliveryStore } from '../../consumers/dispatcher/delivery-store.ts';
import { createIntegrationRepository, type IntegrationRepository } from '../../registry/repository.ts';
import type { NewIntegrationInput } from '../../registry/validation.ts';
import { migrate } from '../../db/migrate.ts';
import { testConfig, uniqueName } from '../support/config.ts';

export interface RegistryHarness {
  config: Config;
  pool: Pool;
  keyring: Keyring;
  repo: IntegrationRepository;
  /** The delivery log (the dispatcher's; tests read and seed it). */
  deliveries: DeliveryStore;
  close(): Promise<void>;
}

/** Prefix of every company id (and token name) this test file creates, so it can clean up after itself. */
export const RUN_TAG = uniqueName('reg');

export function registryHarness(overrides: Record<string, string> = {}): RegistryHarness {
  const config = testConfig(overrides);
  const pool = createPool(config.database, { max: 12 });
  const keyring = new Keyring(config.crypto.encryptionKeys);
  const repo = createIntegrationRepository({ pool, keyring });
  return {
    config,
    pool,
    keyring,
    repo,
    deliveries: createDeliveryStore(pool),
    async close() {
      try {
        // Job mappings and deliveries go with their integration (ON DELETE CASCADE).
        await pool.query('DELETE FROM integrations WHERE company_id LIKE $1', [`${RUN_TAG}-%`]);
        await pool.query('DELETE FROM api_tokens WHERE name LIKE $1 OR scope LIKE $2', [`${RUN_TAG}%`, `company:${RUN_TAG}-%`]);
      } finally {
        await pool.end();
      }
    },
  };
}

/** A keyring spec of fresh keys, first one encrypting: keyringSpec('k2', 'k1'). */
export function keyringSpec(...ids: string[]): string {
  return ids.map((id) => `${id}:${generateKey()}`).join(',');
}

/** A migrated database of the test's own, for tests that look at every row. */
export async function isolatedDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const base = new URL(testConfig().database.url);
  const name = `ats_relay_t_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  const url = new URL(base);
  url.pathname = `/${name}`;
  await migrate(url.toString());
  return {
    url: url.toString(),
    async drop() {
      const admin = new URL(base);
      admin.pathname = '/postgres';
      const client = new pg.Client({ connectionString: admin.toString() });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

export function companyId(): string {
  return uniqueName(RUN_TAG);
}

/** A valid create body per platform, with secrets unique to the call (to search for them later). */
export function sampleIntegration(platform: NewIntegrationInput['platform'] = 'greenhouse'): NewIntegrationInput {
  const tag = randomUUID().replace(/-/g, '');
  const base = { name: `${platform} ${tag.slice(0, 6)}`, apiBaseUrl: null, enabled: true, allowMissingResume: false };
  switch (platform) {
    case 'greenhouse':
      return { ...base, platform, settings: { apiVersion: 'v3', onBehalfOf: '4080' }, credentials: { clientId: `cid-${tag}`, clientSecret: `gh-secret-${tag}` } };
    case 'lever':
      return { ...base, platform, settings: { performAs: 'a1b2c3d4-user' }, credentials: { apiKey: `lever-key-${tag}` } };
    case 'workable':
      return { ...base, platform, settings: { subdomain: 'acme' }, credentials: { token: `workable-token-${tag}` } };
    case 'ashby':
      return { ...base, platform, settings: {}, credentials: { apiKey: `ashby-key-${tag}` } };
    case 'generic':
      return {
        ...base,
        platform,
        settings: { url: 'https://hooks.example.com/applications', method: 'POST', authStyle: 'bearer', fieldMapping: { 'applicant.email': 'candidate.email' } },
        credentials: { token: `generic-token-${tag}`, signingSecret: `signing-${tag}` },
      };
  }
}
