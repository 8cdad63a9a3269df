/**
 * Each integration's inbound webhook secret: generated (or, for Lever, whose UI hands out the
 * signature token, set from the vendor's value), sealed with the credentials keyring (the
 * integration id in the AAD, so a sealed secret copied to another row does not open), shown
 * once when set, rotatable. Workable signs with the account's API token (the `token` credential),
 * so it needs none.
 *
 * The HMAC key is the secret string as shown (`whsec_…` included), which is what a customer pastes
 * into Greenhouse's "Secret key" or Ashby's "Secret token".
 */
import { randomBytes } from 'node:crypto';
import { pack, unpack, type Keyring } from '../../registry/keyring.ts';
import type { Pool } from '../../lib/db.ts';
import type { Integration } from '../../registry/integration.ts';

const aad = (integrationId: string): string => `webhook-secret:${integrationId}`;

export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}

export function webhookUrl(publicBaseUrl: string, integrationId: string): string {
  return `${publicBaseUrl}/integrations/${encodeURIComponent(integrationId)}/webhook`;
}

export interface WebhookSecrets {
  /** Store a new secret (the given one, or a generated one) and return it: the only time it is shown. */
  rotate(integrationId: string, secret?: string): Promise<string>;
  /** The key that verifies this integration's webhooks; null when none is set. */
  signingKey(integration: Integration): Promise<string | null>;
  info(integrationId: string): Promise<{ createdAt: Date; rotatedAt: Date } | null>;
}

export function createWebhookSecrets(deps: { pool: Pool; keyring: Keyring }): WebhookSecrets {
  return {
    async rotate(integrationId, secret) {
      const value = secret ?? generateWebhookSecret();
      const sealed = deps.keyring.encrypt(value, aad(integrationId));
      await deps.pool.query(
        `INSERT INTO webhook_secrets (integration_id, secret_ciphertext, secret_key_id) VALUES ($1, $2, $3)
         ON CONFLICT (integration_id) DO UPDATE SET secret_ciphertext = EXCLUDED.secret_ciphertext,
           secret_key_id = EXCLUDED.secret_key_id, rotated_at = now()`,
        [integrationId, pack(sealed), sealed.keyId],
      );
      return value;
    },

    async signingKey(integration) {
      if (integration.platform === 'workable') return integration.credentials.token ?? null;
      const { rows } = await deps.pool.query<{ secret_ciphertext: Buffer; secret_key_id: string }>(
        'SELECT secret_ciphertext, secret_key_id FROM webhook_secrets WHERE integration_id = $1',
        [integration.id],
      );
      const row = rows[0];
      return row ? deps.keyring.decrypt(unpack(row.secret_key_id, row.secret_ciphertext), aad(integration.id)).toString('utf8') : null;
    },

    async info(integrationId) {
      const { rows } = await deps.pool.query<{ created_at: Date; rotated_at: Date }>('SELECT created_at, rotated_at FROM webhook_secrets WHERE integration_id = $1', [integrationId]);
      return rows[0] ? { createdAt: rows[0].created_at, rotatedAt: rows[0].rotated_at } : null;
    },
  };
}
