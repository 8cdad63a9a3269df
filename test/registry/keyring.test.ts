import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/config.ts';
import { CryptoError, generateKey, Keyring, pack, unpack } from '../../registry/keyring.ts';
import { inspect } from 'node:util';
import { keyringSpec } from './support.ts';

describe('keyring (ATS_RELAY_ENCRYPTION_KEYS)', () => {
  it.each([
    ['missing', undefined, /ATS_RELAY_ENCRYPTION_KEYS: is required/],
    ['empty', '  ', /is required/],
    ['no key id', generateKey(), /must be "<keyId>:<base64 key>"/],
    ['short key', `k1:${Buffer.alloc(16).toString('base64')}`, /key "k1" must be exactly 32 bytes.*got 16/],
    ['not base64', 'k1:not*base64', /key "k1" must be exactly 32 bytes/],
    ['duplicate id', `k1:${generateKey()},k1:${generateKey()}`, /key id "k1" appears twice/],
  ])('rejects a %s keyring with a ConfigError naming the variable', (_case, spec, message) => {
    let error: unknown;
    try {
      new Keyring(spec);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe('ATS_RELAY_ENCRYPTION_KEYS');
    expect((error as Error).message).toMatch(message);
  });

  it('never shows key material in its error messages or when printed', () => {
    const key = generateKey();
    const bad = `k1:${key.slice(0, 20)}`;
    expect(() => new Keyring(bad)).toThrow(ConfigError);
    try {
      new Keyring(bad);
    } catch (err) {
      expect((err as Error).message).not.toContain(key.slice(0, 20));
    }
    const ring = new Keyring(`k1:${key}`);
    expect(inspect(ring)).not.toContain(key);
    expect(JSON.stringify(ring)).not.toContain(key);
  });

  it('encrypts with the first key and decrypts with any key of the ring', () => {
    const spec = keyringSpec('k2', 'k1');
    const ring = new Keyring(spec);
    expect(ring.primaryKeyId).toBe('k2');
    const sealed = ring.encrypt('{"apiKey":"secret-value"}', 'integration:1');
    expect(sealed.keyId).toBe('k2');
    expect(sealed.ciphertext.toString('utf8')).not.toContain('secret-value');
    const restored = unpack(sealed.keyId, pack(sealed));
    expect(ring.decrypt(restored, 'integration:1').toString()).toBe('{"apiKey":"secret-value"}');

    // Older key still decrypts after a new one is prepended.
    const older = new Keyring(spec.split(',')[1]!).encrypt('old', 'ctx');
    expect(ring.decrypt(older, 'ctx').toString()).toBe('old');
  });

  it('uses a fresh IV per encryption', () => {
    const ring = new Keyring(keyringSpec('k1'));
    const a = ring.encrypt('same', 'ctx');
    const b = ring.encrypt('same', 'ctx');
    expect(a.iv.equals(b.iv)).toBe(false);
    expect(a.ciphertext.equals(b.ciphertext)).toBe(false);
  });

  it('refuses an unknown key id, a different key under the same id, altered data and another context', () => {
    const ring = new Keyring(keyringSpec('k1'));
    const sealed = ring.encrypt('secret', 'integration:a');
    const expectCode = (fn: () => unknown, code: string): void => {
      try {
        fn();
        expect.unreachable('decrypt should fail');
      } catch (err) {
        expect(err).toBeInstanceOf(CryptoError);
        expect((err as CryptoError).code).toBe(code);
        expect((err as Error).message).toContain('ATS_RELAY_ENCRYPTION_KEYS');
      }
    };
    expectCode(() => new Keyring(keyringSpec('k9')).decrypt(sealed, 'integration:a'), 'unknown_key_id');
    expectCode(() => new Keyring(keyringSpec('k1')).decrypt(sealed, 'integration:a'), 'decrypt_failed');
    const flipped = Buffer.from(sealed.ciphertext);
    flipped[0] = flipped[0]! ^ 1;
    expectCode(() => ring.decrypt({ ...sealed, ciphertext: flipped }, 'integration:a'), 'decrypt_failed');
    expectCode(() => ring.decrypt(sealed, 'integration:b'), 'decrypt_failed');
  });
});
