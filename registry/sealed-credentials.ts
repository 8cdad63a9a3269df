/**
 * An integration's credentials at rest: JSON sealed with the keyring's primary key, bound to the
 * integration's id (AAD), so a ciphertext copied onto another row does not open. Integrations and
 * key rotation seal and open through this one pair.
 */
import { CryptoError, pack, unpack, type Keyring } from './keyring.ts';
import type { Credentials } from './integration.ts';

/** The columns that hold one integration's sealed credentials. */
export interface SealedColumns {
  id: string;
  credentials_ciphertext: Buffer | null;
  credentials_key_id: string | null;
}

export interface CredentialSeal {
  seal(integrationId: string, credentials: Credentials): { blob: Buffer; keyId: string };
  /** `{}` when nothing is stored (a deleted integration); a CryptoError naming the integration otherwise. */
  open(row: SealedColumns): Credentials;
}

const aadFor = (integrationId: string): string => `integration:${integrationId}`;

export function createCredentialSeal(keyring: Keyring): CredentialSeal {
  return {
    seal(integrationId, credentials) {
      const sealed = keyring.encrypt(JSON.stringify(credentials), aadFor(integrationId));
      return { blob: pack(sealed), keyId: sealed.keyId };
    },
    open(row) {
      if (!row.credentials_ciphertext || !row.credentials_key_id) return {};
      try {
        const plain = keyring.decrypt(unpack(row.credentials_key_id, row.credentials_ciphertext), aadFor(row.id));
        return JSON.parse(plain.toString('utf8')) as Credentials;
      } catch (err) {
        if (!(err instanceof CryptoError)) throw err;
        throw new CryptoError(err.code, `integration ${row.id}: ${err.message}`, { retriable: false, cause: err, context: { ...err.context, integrationId: row.id } });
      }
    },
  };
}
