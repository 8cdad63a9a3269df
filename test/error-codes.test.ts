/**
 * The one error-code table: every code reads as a table row (snake_case, a one-line meaning and
 * action), errors take their `retriable` from it unless the failing code knows better, and each
 * family's codes are the ones its errors may carry.
 */
import { describe, expect, it } from 'vitest';
import { AtsError, ATS_ERROR_CODES } from '../connectors/index.ts';
import { codeForStatus } from '../connectors/ats-error.ts';
import { ALL_ERROR_CODES, codesRaisedBy, ERROR_CODES, isErrorCode, isRetriable } from '../lib/error-codes.ts';
import { RelayError } from '../lib/errors.ts';
import { ValidationError } from '../registry/errors.ts';
import { parseFilters } from '../scripts/redrive/filters.ts';

describe('lib/error-codes.ts', () => {
  it('gives every code a snake_case name, a family, and a one-line meaning and action', () => {
    for (const code of ALL_ERROR_CODES) {
      const row = ERROR_CODES[code];
      expect(code).toMatch(/^[a-z]+(_[a-z]+)*$/);
      expect(row.raisedBy.length, code).toBeGreaterThan(0);
      for (const text of [row.meaning, row.action]) {
        expect(text.trim().length, code).toBeGreaterThan(3);
        expect(text, code).not.toMatch(/\n/);
      }
    }
  });

  it('knows its own codes and nothing else (what a test or a header may name)', () => {
    expect(isErrorCode('auth_failed')).toBe(true);
    expect(isErrorCode('ats_auth')).toBe(false);
    expect(isErrorCode('toString')).toBe(false);
  });

  it('is where an error takes `retriable` from, unless the failing code sets it', () => {
    expect(new RelayError('kafka_unavailable', 'broker down').retriable).toBe(true);
    expect(new RelayError('kafka_rejected', 'too large').retriable).toBe(false);
    expect(new RelayError('not_found', 'vanished mid-write', { retriable: true }).retriable).toBe(true);
    for (const code of ATS_ERROR_CODES) expect(new AtsError(code, 'x').retriable, code).toBe(isRetriable(code));
  });

  it('lists as connector codes exactly what the status mapping can produce, plus the connectors\' own', () => {
    const fromStatus = new Set([400, 401, 403, 404, 408, 409, 418, 422, 425, 429, 500, 503].map(codeForStatus));
    for (const code of fromStatus) expect(ATS_ERROR_CODES, code).toContain(code);
    expect(ATS_ERROR_CODES).toEqual(codesRaisedBy('connector'));
    expect(ATS_ERROR_CODES).not.toContain('invalid_request');
  });

  it('gives one meaning per code: the registry\'s request validation is not the ATS\'s rejection', () => {
    const err = new ValidationError([{ field: 'platform', message: 'is required' }]);
    expect(err).toMatchObject({ code: 'invalid_request', status: 400, retriable: false });
    expect(ERROR_CODES.validation_failed.raisedBy).toEqual(['connector']);
    expect(ERROR_CODES.decode_failed.raisedBy).not.toContain('registry');
  });

  it('is what redrive --error-code accepts: a code that exists nowhere is a usage error', async () => {
    await expect(parseFilters({ 'error-code': ['ats_auth'] })).rejects.toThrow('--error-code: "ats_auth" is not an ats-relay error code');
    expect((await parseFilters({ 'error-code': ['auth_failed', 'decode_failed'] })).errorCodes).toEqual(['auth_failed', 'decode_failed']);
  });
});
