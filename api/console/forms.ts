/**
 * The integration form, generated from the platform's settings and credentials schemas
 * (registry/validation.ts): one input per property, required fields marked, enums as
 * selects, and each server-side FieldError shown next to the input it names. The form has
 * `novalidate`: the server's validation is the only one, so browser and API say the same words.
 *
 * Secrets are never rendered back: credential inputs are always empty; on edit they show the
 * masked value as a hint, and an empty input keeps the stored secret.
 */
import type { Platform } from '../../registry/integration.ts';
import type { FieldError, JsonSchema } from '../../registry/json-schema.ts';
import { credentialRequirements, credentialsSchema, settingsSchemas } from '../../registry/validation.ts';
import { html, type Html } from './html.ts';

export const PLATFORM_LABELS: Record<Platform, string> = {
  greenhouse: 'Greenhouse',
  lever: 'Lever',
  workable: 'Workable',
  ashby: 'Ashby',
  generic: 'Generic REST endpoint',
};

export function platformLogo(p: Platform): Html {
  return html`<span class="logo ${p}" aria-hidden="true">${PLATFORM_LABELS[p].slice(0, 1)}</span>`;
}

type FormBody = Record<string, string | string[] | undefined>;

const one = (body: FormBody, key: string): string | undefined => {
  const v = body[key];
  return Array.isArray(v) ? v[v.length - 1] : v;
};

const typeOf = (s: JsonSchema): string | undefined => (Array.isArray(s.type) ? s.type[0] : (s.type as string | undefined));

/** A form value as the schema wants it: numbers for integer fields, JSON for object fields. */
function coerce(schema: JsonSchema, raw: string): unknown {
  const t = typeOf(schema);
  if ((t === 'integer' || t === 'number') && /^-?\d+(\.\d+)?$/.test(raw.trim())) return Number(raw.trim());
  if (t === 'object') {
    try {
      return JSON.parse(raw) as unknown;
    } catch {
      return raw; // the validator answers "must be an object" at this field
    }
  }
  return raw;
}

export interface ParsedForm {
  name: string | undefined;
  apiBaseUrl: string | null | undefined;
  enabled: boolean;
  allowMissingResume: boolean;
  /** Only the settings that were filled in; `empty` lists those left blank. */
  settings: Record<string, unknown>;
  emptySettings: string[];
  /** Only the secrets that were typed in. */
  credentials: Record<string, string>;
  /** What to show again in the inputs after an error (never secrets). */
  echo: Record<string, string>;
}

export function parseIntegrationForm(platform: Platform, body: FormBody): ParsedForm {
  const echo: Record<string, string> = {};
  const settings: Record<string, unknown> = {};
  const emptySettings: string[] = [];
  for (const [key, schema] of Object.entries(settingsSchemas[platform].properties ?? {})) {
    const raw = one(body, `settings.${key}`) ?? '';
    echo[`settings.${key}`] = raw;
    if (raw.trim() === '') emptySettings.push(key);
    else settings[key] = coerce(schema, raw.trim());
  }
  const credentials: Record<string, string> = {};
  for (const key of Object.keys(credentialsSchema(platform).properties ?? {})) {
    const raw = one(body, `credentials.${key}`) ?? '';
    if (raw !== '') credentials[key] = raw;
  }
  const name = one(body, 'name');
  const base = one(body, 'apiBaseUrl');
  echo.name = name ?? '';
  echo.apiBaseUrl = base ?? '';
  return {
    name: name === undefined ? undefined : name.trim(),
    apiBaseUrl: base === undefined ? undefined : base.trim() === '' ? null : base.trim(),
    enabled: one(body, 'enabled') === 'on',
    allowMissingResume: one(body, 'allowMissingResume') === 'on',
    settings,
    emptySettings,
    credentials,
    echo,
  };
}

export interface FieldsOptions {
  platform: Platform;
  /** Current values: stored ones on edit, the submitted ones after an error. */
  values: Record<string, string>;
  errors: readonly FieldError[];
  /** On edit: the masked stored credentials, shown as hints. */
  masked?: Record<string, string>;
  enabled: boolean;
  allowMissingResume: boolean;
}

const idFor = (field: string): string => `f-${field.replace(/[^A-Za-z0-9_-]/g, '-')}`;

function errorsAt(errors: readonly FieldError[], field: string): FieldError[] {
  return errors.filter((e) => e.field === field);
}

function fieldBlock(o: { field: string; label: string; required: boolean; hint?: string | Html; input: (attrs: Html) => Html; errors: readonly FieldError[] }): Html {
  const id = idFor(o.field);
  const errs = errorsAt(o.errors, o.field);
  const described = [o.hint ? `${id}-hint` : '', errs.length ? `${id}-error` : ''].filter(Boolean).join(' ');
  const attrs = html`id="${id}" name="${o.field}"${o.required ? html` aria-required="true"` : ''}${errs.length ? html` aria-invalid="true"` : ''}${described ? html` aria-describedby="${described}"` : ''}`;
  return html`<div class="field" data-field="${o.field}">
    <label for="${id}">${o.label}${o.required ? html` <span class="req" title="required">*</span>` : ''}</label>
    ${o.input(attrs)}
    ${o.hint ? html`<p class="hint" id="${id}-hint">${o.hint}</p>` : ''}
    ${errs.length ? html`<p class="field-error" id="${id}-error" role="alert">${errs.map((e) => e.message).join('; ')}</p>` : ''}
  </div>`;
}

function schemaInput(field: string, schema: JsonSchema, value: string): (attrs: Html) => Html {
  const t = typeOf(schema);
  if (schema.enum) {
    return (attrs) => html`<select ${attrs}><option value="">—</option>${schema.enum!.map((e) => html`<option value="${String(e)}"${String(e) === value ? html` selected` : ''}>${String(e)}</option>`)}</select>`;
  }
  if (t === 'object') return (attrs) => html`<textarea ${attrs} rows="4">${value}</textarea>`;
  const type = t === 'integer' || t === 'number' ? 'number' : 'text';
  return (attrs) => html`<input ${attrs} type="${type}" value="${value}" autocomplete="off">`;
}

/** When a secret is required, in words: "required", "required when apiVersion = v3". */
function credentialNeed(platform: Platform, key: string): { required: boolean; hint: string | undefined } {
  const rules = credentialRequirements(platform).filter((r) => r.required.includes(key));
  if (rules.some((r) => !r.when)) return { required: true, hint: undefined };
  if (rules.length === 0) return { required: false, hint: undefined };
  const when = rules.map((r) => Object.entries(r.when!).map(([k, v]) => `${k} = ${v}`).join(', ')).join(' or ');
  return { required: false, hint: `required when ${when}` };
}

export function integrationFields(o: FieldsOptions): Html {
  const settingsSchema = settingsSchemas[o.platform];
  const requiredSettings = new Set(settingsSchema.required ?? []);
  const general = html`
    ${fieldBlock({ field: 'name', label: 'Name', required: true, errors: o.errors, input: (a) => html`<input ${a} type="text" value="${o.values.name ?? ''}" autocomplete="off">` })}
    ${fieldBlock({
      field: 'apiBaseUrl',
      label: 'API base URL',
      required: false,
      hint: 'Leave empty for the vendor’s own API; set it for a sandbox, an EU host or an on-prem endpoint.',
      errors: o.errors,
      input: (a) => html`<input ${a} type="text" inputmode="url" value="${o.values.apiBaseUrl ?? ''}" autocomplete="off">`,
    })}`;
  const settings = Object.entries(settingsSchema.properties ?? {}).map(([key, schema]) =>
    fieldBlock({
      field: `settings.${key}`,
      label: key,
      required: requiredSettings.has(key),
      hint: schema.description ?? (typeOf(schema) === 'object' ? 'JSON object' : undefined),
      errors: o.errors,
      input: schemaInput(`settings.${key}`, schema, o.values[`settings.${key}`] ?? ''),
    }),
  );
  const credentials = Object.keys(credentialsSchema(o.platform).properties ?? {}).map((key) => {
    const need = credentialNeed(o.platform, key);
    const stored = o.masked?.[key];
    const hint = [need.hint, stored ? `stored: ${stored} — leave empty to keep it, type a new value to replace it` : o.masked ? 'not set' : undefined].filter(Boolean).join('; ');
    return fieldBlock({
      field: `credentials.${key}`,
      label: key,
      required: need.required && !stored,
      hint: hint || undefined,
      errors: o.errors,
      input: (a) => html`<input ${a} type="password" value="" autocomplete="new-password">`,
    });
  });
  const unplaced = o.errors.filter((e) => !/^(name|apiBaseUrl|settings\.[^.]+|credentials\.[^.]+)$/.test(e.field));
  return html`
    ${unplaced.length ? html`<div class="notice error" role="alert">${unplaced.map((e) => html`<div>${e.field || 'form'} ${e.message}</div>`)}</div>` : ''}
    <fieldset class="card"><legend>General</legend>${general}
      <label><input type="checkbox" name="enabled"${o.enabled ? html` checked` : ''}> Enabled (deliveries flow)</label>
      <label><input type="checkbox" name="allowMissingResume"${o.allowMissingResume ? html` checked` : ''}> Deliver without the resume when it is missing or too large</label>
    </fieldset>
    <fieldset class="card"><legend>Settings</legend>${settings}</fieldset>
    <fieldset class="card"><legend>Credentials</legend><p class="hint">Stored encrypted; never shown again.</p>${credentials}</fieldset>`;
}
