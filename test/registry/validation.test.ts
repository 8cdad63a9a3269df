import { describe, expect, it } from 'vitest';
import { validateNewIntegration, validatePatch, type MergeBase } from '../../registry/validation.ts';
import { sampleIntegration } from './support.ts';

const errorsOf = (body: unknown): Array<{ field: string; message: string }> => {
  const r = validateNewIntegration(body);
  return r.ok ? [] : r.errors;
};

describe('integration validation (shared by the API and the CLI)', () => {
  it('accepts a valid integration of every platform and fills defaults', () => {
    for (const platform of ['greenhouse', 'lever', 'workable', 'ashby', 'generic'] as const) {
      const { enabled: _e, allowMissingResume: _a, apiBaseUrl: _u, ...body } = sampleIntegration(platform);
      const r = validateNewIntegration(body);
      expect(r, platform).toMatchObject({ ok: true, value: { platform, enabled: true, allowMissingResume: false, apiBaseUrl: null } });
    }
    const gh = validateNewIntegration({ platform: 'greenhouse', name: 'x', settings: { onBehalfOf: '1' }, credentials: { clientId: 'a', clientSecret: 'b' } });
    expect(gh.ok && gh.value.settings).toEqual({ apiVersion: 'v3', onBehalfOf: '1' });
  });

  it('lists every bad field at once', () => {
    expect(errorsOf({ platform: 'greenhouse', name: '', settings: { apiVersion: 'v2', sourceId: 'x', extra: 1 }, credentials: {}, enabled: 'yes', apiBaseUrl: 'ftp://x' })).toEqual(
      expect.arrayContaining([
        { field: 'name', message: 'must not be empty' },
        { field: 'apiBaseUrl', message: 'must be an absolute http(s) URL' },
        { field: 'enabled', message: 'must be true or false' },
        { field: 'settings.apiVersion', message: 'must be one of: v1, v3' },
        { field: 'settings.onBehalfOf', message: 'is required' },
        { field: 'settings.sourceId', message: 'must be an integer' },
        { field: 'settings.extra', message: 'is not allowed' },
      ]),
    );
  });

  it('names an unknown platform and skips its settings', () => {
    expect(errorsOf({ platform: 'taleo', name: 'x', settings: {}, credentials: {} })).toEqual([{ field: 'platform', message: 'must be one of: greenhouse, lever, workable, ashby, generic' }]);
  });

  it('requires the credentials the platform and its settings need', () => {
    expect(errorsOf({ platform: 'greenhouse', name: 'x', settings: { apiVersion: 'v1', onBehalfOf: '1' }, credentials: { clientId: 'a' } })).toEqual([
      { field: 'credentials.apiKey', message: 'is required' },
    ]);
    expect(errorsOf({ platform: 'generic', name: 'x', settings: { url: 'https://h.example', authStyle: 'basic' }, credentials: { username: 'u', nope: 'x' } })).toEqual(
      expect.arrayContaining([
        { field: 'credentials.nope', message: 'is not allowed' },
        { field: 'credentials.signingSecret', message: 'is required' },
        { field: 'credentials.password', message: 'is required' },
      ]),
    );
    expect(errorsOf({ platform: 'workable', name: 'x', settings: { subdomain: 'Not A Subdomain' }, credentials: { token: 't' } })).toEqual([
      { field: 'settings.subdomain', message: 'must be a Workable account subdomain (lower-case letters, digits, "-")' },
    ]);
  });

  it('rejects something that is not an object', () => {
    expect(errorsOf(undefined)).toEqual([{ field: '', message: 'must be an object' }]);
    expect(errorsOf([])).toEqual([{ field: '', message: 'must be an object' }]);
  });

  describe('PATCH', () => {
    const current: MergeBase = { ...sampleIntegration('greenhouse') };

    it('merges settings key by key and checks the result with the create rules', () => {
      const r = validatePatch(current, { version: 1, settings: { sourceId: 7 } });
      expect(r.ok && r.value.merged.settings).toEqual({ apiVersion: 'v3', onBehalfOf: '4080', sourceId: 7 });
      const removed = validatePatch(current, { version: 1, settings: { onBehalfOf: null } });
      expect(removed).toEqual({ ok: false, errors: [{ field: 'settings.onBehalfOf', message: 'is required' }] });
    });

    it('asks for the credentials a settings change makes necessary', () => {
      expect(validatePatch(current, { version: 1, settings: { apiVersion: 'v1' } })).toEqual({ ok: false, errors: [{ field: 'credentials.apiKey', message: 'is required' }] });
    });

    it('needs a version and refuses a platform change', () => {
      expect(validatePatch(current, { platform: 'lever' })).toEqual({
        ok: false,
        errors: [
          { field: 'version', message: 'is required' },
          { field: 'platform', message: 'is not allowed' },
        ],
      });
    });
  });
});
