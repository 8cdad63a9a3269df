/**
 * Each integration's inbound webhook secret: generated (or, for Lever, whose UI hands out the
 * signature token, set from the vendor's value), sealed with the credentials keyring (the
 * integration id in the AAD, so a sealed secret copied to another row does not open), shown
 * once when set, rotatable. Workable signs with the account's API token (the `token` credential),
 * so it needs none.
 *
 * Lever issues one signature token per webhook, and a webhook is registered per event type
 * (../shared/docs/ats-inbound.md §2.2), so a Lever integration can also hold a token per event. The
 * event '' is the integration-wide secret: every other vendor's, and the one a Lever event without
 * its own token is checked with (older Lever accounts have a single account-wide token).
 *
 * The HMAC key is the secret string as shown (`whsec_…` included), which is what a customer pastes
 * into Greenhouse's "Secret key" or Ashby's "Secret token".
 */
import { randomBytes } from 'node:crypto';
import { pack, unpack, type Keyring } from '../../registry/keyring.ts';
import { inTransaction, type Pool } from '../../lib/db.ts';
import { ValidationError } from '../../registry/errors.ts';
import type { Integration, Platform } from '../../registry/integration.ts';

/** Lever's documented webhook event names (ats-inbound.md §2.2): the only events a token can be stored for. */
export const LEVER_WEBHOOK_EVENTS = [
  'applicationCreated',
  'candidateHired',
  'candidateStageChange',
  'candidateArchiveChange',
  'candidateDeleted',
  'interviewCreated',
  'interviewUpdated',
  'interviewDeleted',
  'contactCreated',
  'contactUpdated',
] as const;
export type LeverWebhookEvent = (typeof LEVER_WEBHOOK_EVENTS)[number];

export function isLeverWebhookEvent(v: unknown): v is LeverWebhookEvent {
  return typeof v === 'string' && (LEVER_WEBHOOK_EVENTS as readonly string[]).includes(v);
}

/**
 * Why `event` cannot be given a token of its own on this platform, or null when it can. One wording
 * for the API's 400 and the CLI's usage error.
 */
export function webhookEventProblem(platform: Platform, event: string): string | null {
  if (platform !== 'lever') return `only Lever signs each webhook event with its own token; ${platform} uses the one integration-wide secret (omit event)`;
  if (!isLeverWebhookEvent(event)) return `must be one of Lever's webhook events: ${LEVER_WEBHOOK_EVENTS.join(', ')}`;
  return null;
}

/**
 * The '' row keeps the AAD it always had, so secrets sealed before per-event tokens still open. A
 * per-event row binds the event too: a token copied onto another event's row does not open, so it
 * cannot be made to verify an event it was not issued for. Event names are letters only (checked
 * on the way in), so the ':' cannot be confused.
 */
const aad = (integrationId: string, event: string): string => (event ? `webhook-secret:${integrationId}:${event}` : `webhook-secret:${integrationId}`);

/** What verifies a platform's webhooks, in words for the API and the console. */
export function webhookSigning(platform: Platform): string {
  if (platform === 'workable') return 'the account API token (the integration\'s "token" credential)';
  if (platform === 'lever') return "the event's signature token, else the integration-wide secret";
  return 'the webhook secret';
}

export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}

export function webhookUrl(publicBaseUrl: string, integrationId: string): string {
  return `${publicBaseUrl}/integrations/${encodeURIComponent(integrationId)}/webhook`;
}

export interface SecretDates {
  createdAt: Date;
  rotatedAt: Date;
}

export interface WebhookSecretInfo {
  /** The integration-wide secret; null when none is set. */
  shared: SecretDates | null;
  /** The events with a token of their own (Lever only), by name. */
  events: Array<{ event: string } & SecretDates>;
}

/** Whether anything can verify this integration's webhooks: Workable's API token, the integration-wide secret or (Lever) an event's token. */
export function webhookVerifiable(platform: Platform, info: WebhookSecretInfo): boolean {
  return platform === 'workable' || info.shared !== null || info.events.length > 0;
}

export interface WebhookSecrets {
  /**
   * Store a new secret (the given one, or a generated one) and return it: the only time it is shown.
   * `event` (a Lever event name) stores that event's token; omitted, the integration-wide secret.
   * The caller checks the event is allowed for the platform (webhookEventProblem).
   */
  rotate(integrationId: string, secret?: string, event?: string): Promise<string>;
  /**
   * The key that verifies this integration's webhook; null when none is set. For Lever, `event`
   * (the body's `event`, unverified) picks that event's token where one is stored, else the
   * integration-wide one. Picking by an unverified name is safe: a forged name still needs the
   * token of the event it names.
   */
  signingKey(integration: Integration, event?: string): Promise<string | null>;
  info(integrationId: string): Promise<WebhookSecretInfo>;
  /**
   * Re-seal every secret not sealed with the keyring's newest key (`rotate-keys`, beside the
   * credentials): once the old key leaves ATS_RELAY_ENCRYPTION_KEYS, a secret left under it would
   * no longer open and every webhook of that integration would be refused.
   */
  reseal(): Promise<number>;
}

export function createWebhookSecrets(deps: { pool: Pool; keyring: Keyring }): WebhookSecrets {
  return {
    async rotate(integrationId, secret, event = '') {
      // The callers check first (they know the platform); this keeps a bad name out of the table regardless.
      if (event && !isLeverWebhookEvent(event)) throw new ValidationError([{ field: 'event', message: webhookEventProblem('lever', event)! }]);
      const value = secret ?? generateWebhookSecret();
      const sealed = deps.keyring.encrypt(value, aad(integrationId, event));
      await deps.pool.query(
        `INSERT INTO webhook_secrets (integration_id, event, secret_ciphertext, secret_key_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (integration_id, event) DO UPDATE SET secret_ciphertext = EXCLUDED.secret_ciphertext,
           secret_key_id = EXCLUDED.secret_key_id, rotated_at = now()`,
        [integrationId, event, pack(sealed), sealed.keyId],
      );
      return value;
    },

    async signingKey(integration, event) {
      if (integration.platform === 'workable') return integration.credentials.token ?? null;
      const wanted = integration.platform === 'lever' && isLeverWebhookEvent(event) ? event : '';
      // The event's own row sorts first ('' is the smallest text); without one, the integration-wide row.
      const { rows } = await deps.pool.query<{ event: string; secret_ciphertext: Buffer; secret_key_id: string }>(
        `SELECT event, secret_ciphertext, secret_key_id FROM webhook_secrets WHERE integration_id = $1 AND event IN ('', $2)
         ORDER BY event DESC LIMIT 1`,
        [integration.id, wanted],
      );
      const row = rows[0];
      return row ? deps.keyring.decrypt(unpack(row.secret_key_id, row.secret_ciphertext), aad(integration.id, row.event)).toString('utf8') : null;
    },

    async reseal() {
      const keyId = deps.keyring.primaryKeyId;
      let resealed = 0;
      for (;;) {
        // One row per transaction, locked while it is re-sealed; SKIP LOCKED lets two rotators share the work.
        const done = await inTransaction(deps.pool, async (client) => {
          const { rows } = await client.query<{ integration_id: string; event: string; secret_ciphertext: Buffer; secret_key_id: string }>(
            `SELECT integration_id, event, secret_ciphertext, secret_key_id FROM webhook_secrets WHERE secret_key_id <> $1
             ORDER BY integration_id, event LIMIT 1 FOR UPDATE SKIP LOCKED`,
            [keyId],
          );
          const row = rows[0];
          if (!row) return true;
          const context = aad(row.integration_id, row.event);
          const sealed = deps.keyring.encrypt(deps.keyring.decrypt(unpack(row.secret_key_id, row.secret_ciphertext), context).toString('utf8'), context);
          await client.query('UPDATE webhook_secrets SET secret_ciphertext = $3, secret_key_id = $4 WHERE integration_id = $1 AND event = $2', [row.integration_id, row.event, pack(sealed), sealed.keyId]);
          return false;
        });
        if (done) return resealed;
        resealed += 1;
      }
    },

    async info(integrationId) {
      const { rows } = await deps.pool.query<{ event: string; created_at: Date; rotated_at: Date }>(
        'SELECT event, created_at, rotated_at FROM webhook_secrets WHERE integration_id = $1 ORDER BY event',
        [integrationId],
      );
      const dates = (r: (typeof rows)[number]): SecretDates => ({ createdAt: r.created_at, rotatedAt: r.rotated_at });
      const shared = rows.find((r) => r.event === '');
      return { shared: shared ? dates(shared) : null, events: rows.filter((r) => r.event !== '').map((r) => ({ event: r.event, ...dates(r) })) };
    },
  };
}
