/**
 * The integration registry's one entry point: integrations, job mappings, API tokens and key
 * rotation over one pool and keyring, each aggregate in its own module (integrations.ts,
 * job-mappings.ts, api-tokens.ts, key-rotation.ts). The API, the operators' CLI, the dispatcher's
 * cache and the dev tooling go through it. The delivery log is the dispatcher's
 * (consumers/dispatcher/delivery-store.ts).
 *
 * Tenant isolation: reads and writes take an optional `scope` (scope.ts).
 */
import type { Pool } from '../lib/db.ts';
import { createApiTokenStore, type ApiTokenStore } from './api-tokens.ts';
import { createChangeListeners, createIntegrationStore, type IntegrationStore } from './integrations.ts';
import { createJobMappingStore, type JobMappingStore } from './job-mappings.ts';
import { createKeyRotation, type KeyRotation } from './key-rotation.ts';
import type { Keyring } from './keyring.ts';
import { createCredentialSeal } from './sealed-credentials.ts';

export interface IntegrationRepository extends IntegrationStore, JobMappingStore, ApiTokenStore, KeyRotation {
  /** Local change listener (this process's writes); returns an unsubscribe function. */
  onChange(listener: (integrationId: string) => void): () => void;
}

export interface RepositoryOptions {
  pool: Pool;
  keyring: Keyring;
}

export function createIntegrationRepository({ pool, keyring }: RepositoryOptions): IntegrationRepository {
  const changes = createChangeListeners();
  const credentials = createCredentialSeal(keyring);
  return {
    ...createIntegrationStore({ pool, credentials, changed: changes.emit }),
    ...createJobMappingStore({ pool, changed: changes.emit }),
    ...createApiTokenStore({ pool }),
    ...createKeyRotation({ pool, keyring, credentials }),
    onChange: changes.on,
  };
}
