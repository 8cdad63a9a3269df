/**
 * Key rotation: re-seal every integration's credentials with the keyring's primary key, and the
 * start-up check that every key id in use is still in the keyring.
 */
import { ConfigError } from '../lib/config.ts';
import { inTransaction, type Pool } from '../lib/db.ts';
import type { IntegrationRow } from './integrations.ts';
import { CryptoError, KEYRING_VARIABLE, type Keyring } from './keyring.ts';
import type { CredentialSeal } from './sealed-credentials.ts';

export interface KeyRotation {
  /** Re-encrypt every credential not sealed with the keyring's primary key. */
  rotateKeys(): Promise<{ rotated: number; keyId: string }>;
  /**
   * Start-up check: every key id in use is in the keyring and decrypts a sample row. Throws a
   * ConfigError naming ATS_RELAY_ENCRYPTION_KEYS otherwise.
   */
  assertCredentialsReadable(): Promise<void>;
}

export function createKeyRotation({ pool, keyring, credentials }: { pool: Pool; keyring: Keyring; credentials: CredentialSeal }): KeyRotation {
  return {
    async rotateKeys() {
      const keyId = keyring.primaryKeyId;
      let rotated = 0;
      for (;;) {
        // One row per transaction, locked while it is re-sealed; SKIP LOCKED lets two rotators share the work.
        const done = await inTransaction(pool, async (client) => {
          const { rows } = await client.query<IntegrationRow>(
            `SELECT id, credentials_ciphertext, credentials_key_id FROM integrations
             WHERE credentials_key_id <> $1 AND credentials_ciphertext IS NOT NULL
             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`,
            [keyId],
          );
          const row = rows[0];
          if (!row) return true;
          const { blob } = credentials.seal(row.id, credentials.open(row));
          await client.query('UPDATE integrations SET credentials_ciphertext = $2, credentials_key_id = $3 WHERE id = $1', [row.id, blob, keyId]);
          return false;
        });
        if (done) return { rotated, keyId };
        rotated += 1;
      }
    },

    async assertCredentialsReadable() {
      const { rows } = await pool.query<Pick<IntegrationRow, 'id' | 'credentials_ciphertext' | 'credentials_key_id'>>(
        `SELECT DISTINCT ON (credentials_key_id) id, credentials_ciphertext, credentials_key_id FROM integrations
         WHERE credentials_ciphertext IS NOT NULL ORDER BY credentials_key_id, created_at`,
      );
      for (const row of rows) {
        try {
          credentials.open(row);
        } catch (err) {
          if (err instanceof CryptoError) throw new ConfigError(KEYRING_VARIABLE, err.message);
          throw err;
        }
      }
    },
  };
}
