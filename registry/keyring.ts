/**
 * Credentials at rest: AES-256-GCM with a keyring of named 32-byte keys. The first key encrypts;
 * every key decrypts what was sealed with it, so keys can be rotated without downtime:
 * prepend the new key, run `npm run integrations -- rotate-keys`, then drop the old one.
 *
 * A sealed value is { keyId, iv, tag, ciphertext }; `pack` turns iv | tag | ciphertext into the one
 * bytea the registry stores next to its key id column.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { ConfigError } from '../lib/config.ts';
import type { CodeOf } from '../lib/error-codes.ts';
import { RelayError } from '../lib/errors.ts';

export const KEYRING_VARIABLE = 'ATS_RELAY_ENCRYPTION_KEYS';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;

export type CryptoErrorCode = CodeOf<'keyring'>;

export class CryptoError extends RelayError<CryptoErrorCode> {
  override name = 'CryptoError';
}

export interface Sealed {
  keyId: string;
  iv: Buffer;
  tag: Buffer;
  ciphertext: Buffer;
}

export class Keyring {
  /** Key id of the key that encrypts (the first in the variable). */
  readonly primaryKeyId: string;
  readonly keyIds: readonly string[];
  readonly #keys: ReadonlyMap<string, Buffer>;

  /**
   * Parses `k2:<base64>,k1:<base64>`. Throws a ConfigError naming ATS_RELAY_ENCRYPTION_KEYS when it is
   * missing or malformed; the message never contains key material.
   */
  constructor(spec: string | undefined) {
    if (spec === undefined || spec.trim() === '') {
      throw new ConfigError(KEYRING_VARIABLE, `is required to read or write ATS credentials; set it to "k1:<base64 of 32 random bytes>" (e.g. k1:$(openssl rand -base64 32))`);
    }
    const keys = new Map<string, Buffer>();
    const entries = spec.split(',').map((s) => s.trim()).filter(Boolean);
    entries.forEach((entry, index) => {
      const colon = entry.indexOf(':');
      const id = colon > 0 ? entry.slice(0, colon) : '';
      const material = colon > 0 ? entry.slice(colon + 1).trim() : '';
      if (!KEY_ID.test(id)) {
        throw new ConfigError(KEYRING_VARIABLE, `entry ${index + 1} must be "<keyId>:<base64 key>" with a key id of letters, digits, "-" or "_"`);
      }
      if (keys.has(id)) throw new ConfigError(KEYRING_VARIABLE, `key id "${id}" appears twice`);
      const key = /^[A-Za-z0-9+/]+={0,2}$/.test(material) ? Buffer.from(material, 'base64') : Buffer.alloc(0);
      if (key.length !== KEY_BYTES) {
        throw new ConfigError(KEYRING_VARIABLE, `key "${id}" must be exactly ${KEY_BYTES} bytes, base64-encoded (got ${key.length} bytes)`);
      }
      keys.set(id, key);
    });
    if (keys.size === 0) throw new ConfigError(KEYRING_VARIABLE, 'holds no keys');
    this.#keys = keys;
    this.keyIds = [...keys.keys()];
    this.primaryKeyId = this.keyIds[0]!;
  }

  has(keyId: string): boolean {
    return this.#keys.has(keyId);
  }

  /** Encrypt with the primary key. `aad` binds the ciphertext to its context (e.g. the integration id). */
  encrypt(plaintext: string | Buffer, aad: string): Sealed {
    const keyId = this.primaryKeyId;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#keys.get(keyId)!, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return { keyId, iv, tag: cipher.getAuthTag(), ciphertext };
  }

  decrypt(sealed: Sealed, aad: string): Buffer {
    const key = this.#keys.get(sealed.keyId);
    if (!key) {
      throw new CryptoError('unknown_key_id', `credentials were encrypted with key "${sealed.keyId}", which is not in ${KEYRING_VARIABLE} (keys: ${this.keyIds.join(', ')})`, {
        retriable: false,
        context: { keyId: sealed.keyId },
      });
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, sealed.iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(aad, 'utf8'));
      decipher.setAuthTag(sealed.tag);
      return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]);
    } catch (cause) {
      throw new CryptoError('decrypt_failed', `credentials do not decrypt with key "${sealed.keyId}": the key in ${KEYRING_VARIABLE} is not the one they were encrypted with, or the data was altered`, {
        retriable: false,
        cause,
        context: { keyId: sealed.keyId },
      });
    }
  }

  /** Never print key material, even by accident (`console.log(keyring)`, JSON logs). */
  toJSON(): Record<string, unknown> {
    return { primaryKeyId: this.primaryKeyId, keyIds: this.keyIds };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Keyring { primaryKeyId: '${this.primaryKeyId}', keyIds: [${this.keyIds.map((k) => `'${k}'`).join(', ')}] }`;
  }
}

/** iv | tag | ciphertext as one buffer (the key id is stored beside it). */
export function pack(sealed: Sealed): Buffer {
  return Buffer.concat([sealed.iv, sealed.tag, sealed.ciphertext]);
}

export function unpack(keyId: string, blob: Buffer): Sealed {
  if (blob.length < IV_BYTES + TAG_BYTES) {
    throw new CryptoError('decrypt_failed', `stored credentials are truncated (${blob.length} bytes)`, { retriable: false, context: { keyId } });
  }
  return {
    keyId,
    iv: blob.subarray(0, IV_BYTES),
    tag: blob.subarray(IV_BYTES, IV_BYTES + TAG_BYTES),
    ciphertext: blob.subarray(IV_BYTES + TAG_BYTES),
  };
}

/** A fresh key in the variable's format, e.g. for `k3:<this>`. */
export function generateKey(): string {
  return randomBytes(KEY_BYTES).toString('base64');
}
