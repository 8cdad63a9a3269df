/**
 * What a valid integration looks like, per platform, as plain JSON Schema objects. The API plugs
 * them into Fastify (with registry/json-schema.ts as the validator compiler) and the CLI
 * calls the same functions, so both reject the same input with the same field-level messages.
 */
import { PLATFORMS, type Credentials, type Platform, type PlatformSettings } from './integration.ts';
import { validate, type FieldError, type JsonSchema } from './json-schema.ts';

export type { FieldError, JsonSchema };

const idString = (description: string, maxLength = 128): JsonSchema => ({
  type: 'string',
  minLength: 1,
  maxLength,
  pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]*$',
  description,
});

const secret: JsonSchema = { type: 'string', minLength: 1, maxLength: 8192 };
const urlString: JsonSchema = { type: 'string', maxLength: 2048, format: 'uri' };

/** Our company id as the customer backend knows it. */
export const companyIdSchema = idString('letters, digits, ".", "_", ":" or "-", starting with a letter or digit');
/** Our job id (the job board's). */
export const jobIdSchema = idString('letters, digits, ".", "_", ":" or "-", starting with a letter or digit', 200);

export const settingsSchemas: Readonly<Record<Platform, JsonSchema>> = {
  greenhouse: {
    type: 'object',
    additionalProperties: false,
    required: ['apiVersion', 'onBehalfOf'],
    properties: {
      apiVersion: { type: 'string', enum: ['v1', 'v3'], default: 'v3' },
      onBehalfOf: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[0-9]+$', description: 'a Greenhouse user id (digits)' },
      sourceId: { type: 'integer', minimum: 1 },
    },
  },
  lever: {
    type: 'object',
    additionalProperties: false,
    required: ['performAs'],
    properties: {
      performAs: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9-]+$', description: 'a Lever user id' },
      origin: { type: 'string', enum: ['applied', 'sourced', 'referred', 'agency', 'internal', 'university'] },
    },
  },
  workable: {
    type: 'object',
    additionalProperties: false,
    required: ['subdomain'],
    properties: {
      subdomain: { type: 'string', minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([a-z0-9-]*[a-z0-9])?$', description: 'a Workable account subdomain (lower-case letters, digits, "-")' },
    },
  },
  ashby: {
    type: 'object',
    additionalProperties: false,
    properties: {
      sourceId: { type: 'string', minLength: 1, maxLength: 64 },
    },
  },
  generic: {
    type: 'object',
    additionalProperties: false,
    required: ['url', 'method', 'authStyle', 'fieldMapping'],
    properties: {
      url: urlString,
      method: { type: 'string', enum: ['POST', 'PUT'], default: 'POST' },
      authStyle: { type: 'string', enum: ['none', 'header', 'bearer', 'basic'] },
      headerName: { type: 'string', minLength: 1, maxLength: 128, pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", description: 'an HTTP header name' },
      fieldMapping: {
        type: 'object',
        default: {},
        additionalProperties: { type: 'string', minLength: 1, maxLength: 256 },
      },
    },
  },
};

/** Which secrets each platform (and, where it matters, which setting) needs. */
interface CredentialRule {
  platform: Platform;
  when?: Record<string, string>;
  required: string[];
}

const CREDENTIAL_FIELDS: Readonly<Record<Platform, string[]>> = {
  greenhouse: ['apiKey', 'clientId', 'clientSecret'],
  lever: ['apiKey'],
  workable: ['token'],
  ashby: ['apiKey'],
  generic: ['apiKey', 'token', 'username', 'password', 'signingSecret'],
};

const CREDENTIAL_RULES: CredentialRule[] = [
  { platform: 'greenhouse', when: { apiVersion: 'v1' }, required: ['apiKey'] },
  { platform: 'greenhouse', when: { apiVersion: 'v3' }, required: ['clientId', 'clientSecret'] },
  { platform: 'lever', required: ['apiKey'] },
  { platform: 'workable', required: ['token'] },
  { platform: 'ashby', required: ['apiKey'] },
  { platform: 'generic', required: ['signingSecret'] },
  { platform: 'generic', when: { authStyle: 'header' }, required: ['apiKey'] },
  { platform: 'generic', when: { authStyle: 'bearer' }, required: ['token'] },
  { platform: 'generic', when: { authStyle: 'basic' }, required: ['username', 'password'] },
];

/** Which credentials a platform requires, and under which settings (forms mark them from this). */
export function credentialRequirements(platform: Platform): Array<{ when?: Record<string, string>; required: string[] }> {
  return CREDENTIAL_RULES.filter((r) => r.platform === platform).map((r) => ({ ...(r.when && { when: r.when }), required: r.required }));
}

export function credentialsSchema(platform: Platform): JsonSchema {
  return {
    type: 'object',
    additionalProperties: false,
    properties: Object.fromEntries(CREDENTIAL_FIELDS[platform].map((f) => [f, secret])),
  };
}

const platformIs = (platform: Platform, settings?: Record<string, string>): JsonSchema => ({
  required: ['platform'],
  properties: {
    platform: { const: platform },
    ...(settings && {
      settings: {
        type: 'object',
        required: Object.keys(settings),
        properties: Object.fromEntries(Object.entries(settings).map(([k, v]) => [k, { const: v }])),
      },
    }),
  },
});

/** Rules that depend on the platform (and its settings), shared by create and by a merged PATCH. */
const platformRules: JsonSchema[] = [
  ...PLATFORMS.map((p) => ({
    if: platformIs(p),
    then: { required: ['settings', 'credentials'], properties: { settings: settingsSchemas[p], credentials: credentialsSchema(p) } },
  })),
  ...CREDENTIAL_RULES.map((r) => ({
    if: platformIs(r.platform, r.when),
    then: { properties: { credentials: { type: 'object' as const, required: r.required } } },
  })),
];

const commonProperties: Record<string, JsonSchema> = {
  name: { type: 'string', minLength: 1, maxLength: 200 },
  apiBaseUrl: { type: ['string', 'null'], maxLength: 2048, format: 'uri' },
  settings: { type: 'object' },
  credentials: { type: 'object' },
  enabled: { type: 'boolean' },
  allowMissingResume: { type: 'boolean' },
};

/** Body of POST /companies/:companyId/integrations (and `integrations add`). */
export const createIntegrationSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['platform', 'name', 'settings', 'credentials'],
  properties: {
    platform: { type: 'string', enum: PLATFORMS },
    ...commonProperties,
    apiBaseUrl: { ...commonProperties.apiBaseUrl, default: null },
    enabled: { type: 'boolean', default: true },
    allowMissingResume: { type: 'boolean', default: false },
  },
  allOf: platformRules,
};

/**
 * Body of PATCH /integrations/:id (and `integrations update`): every field optional except the
 * version the caller last read. The platform cannot change (create a new integration instead).
 * `settings` is merged key by key over the stored settings (null removes a key); `credentials`
 * replaces the stored credentials as a whole.
 */
export const patchIntegrationSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['version'],
  properties: {
    version: { type: 'integer', minimum: 1 },
    ...commonProperties,
  },
};

export interface NewIntegrationInput<P extends Platform = Platform> {
  platform: P;
  name: string;
  settings: PlatformSettings[P];
  credentials: Credentials;
  apiBaseUrl: string | null;
  enabled: boolean;
  allowMissingResume: boolean;
}

export interface IntegrationPatch {
  version: number;
  name?: string;
  apiBaseUrl?: string | null;
  settings?: Record<string, unknown>;
  credentials?: Credentials;
  enabled?: boolean;
  allowMissingResume?: boolean;
}

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

function result<T>(r: { value: unknown; errors: FieldError[] }): ValidationResult<T> {
  return r.errors.length ? { ok: false, errors: r.errors } : { ok: true, value: r.value as T };
}

export function validateNewIntegration(body: unknown): ValidationResult<NewIntegrationInput> {
  return result(validate(createIntegrationSchema, body));
}

export function validatePatchShape(body: unknown): ValidationResult<IntegrationPatch> {
  return result(validate(patchIntegrationSchema, body));
}

/** The stored fields a PATCH is merged over. */
export interface MergeBase {
  platform: Platform;
  name: string;
  settings: object;
  credentials: Credentials;
  apiBaseUrl: string | null;
  enabled: boolean;
  allowMissingResume: boolean;
}

/**
 * Merge a PATCH over the stored integration and validate the result with the same rules as a
 * create. Errors name the PATCH's fields (`settings.onBehalfOf`), so the caller can fix them.
 */
export function validatePatch(current: MergeBase, body: unknown): ValidationResult<{ patch: IntegrationPatch; merged: NewIntegrationInput }> {
  const shape = validatePatchShape(body);
  if (!shape.ok) return shape;
  const patch = shape.value;
  const settings: Record<string, unknown> = { ...(current.settings as Record<string, unknown>) };
  for (const [k, v] of Object.entries(patch.settings ?? {})) {
    if (v === null) delete settings[k];
    else settings[k] = v;
  }
  const merged = {
    platform: current.platform,
    name: patch.name ?? current.name,
    settings,
    credentials: patch.credentials ?? current.credentials,
    apiBaseUrl: patch.apiBaseUrl === undefined ? current.apiBaseUrl : patch.apiBaseUrl,
    enabled: patch.enabled ?? current.enabled,
    allowMissingResume: patch.allowMissingResume ?? current.allowMissingResume,
  };
  const checked = validate<NewIntegrationInput>(createIntegrationSchema, merged);
  if (checked.errors.length) return { ok: false, errors: checked.errors };
  return { ok: true, value: { patch, merged: checked.value } };
}

export function formatFieldErrors(errors: readonly FieldError[]): string {
  return errors.map((e) => `${e.field || '(body)'} ${e.message}`).join('; ');
}
