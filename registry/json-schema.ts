/**
 * A small JSON Schema validator for the subset the registry's schemas use, returning field-level
 * errors (`{ field: 'settings.onBehalfOf', message: 'is required' }`) and filling `default`s.
 * The API (as Fastify's validator compiler) and the CLI share it, so both answer with the same words.
 *
 * Supported keywords: type (one or a list), enum, const, properties, required, additionalProperties
 * (false or a schema), minLength, maxLength, pattern, format ('uri' = absolute http(s) URL), minimum,
 * maximum, default, allOf, if/then, description. Anything else is ignored.
 */

export type JsonType = 'object' | 'string' | 'integer' | 'number' | 'boolean' | 'null' | 'array';

export interface JsonSchema {
  type?: JsonType | readonly JsonType[];
  enum?: readonly unknown[];
  const?: unknown;
  properties?: Readonly<Record<string, JsonSchema>>;
  required?: readonly string[];
  additionalProperties?: boolean | JsonSchema;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: 'uri';
  minimum?: number;
  maximum?: number;
  default?: unknown;
  allOf?: readonly JsonSchema[];
  if?: JsonSchema;
  then?: JsonSchema;
  description?: string;
}

export interface FieldError {
  /** Dotted path of the offending field (`settings.onBehalfOf`); '' for the whole document. */
  field: string;
  message: string;
}

export interface Validated<T> {
  /** The input with defaults filled in (a copy; the input is not modified). */
  value: T;
  errors: FieldError[];
}

export function validate<T = unknown>(schema: JsonSchema, input: unknown, field = ''): Validated<T> {
  const errors: FieldError[] = [];
  const value = check(schema, structuredCloneJson(input), field, errors, true);
  return { value: value as T, errors: dedupe(errors) };
}

function structuredCloneJson(v: unknown): unknown {
  return v === undefined ? undefined : (JSON.parse(JSON.stringify(v)) as unknown);
}

function dedupe(errors: FieldError[]): FieldError[] {
  const seen = new Set<string>();
  return errors.filter((e) => {
    const k = `${e.field}\u0000${e.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

export function joinField(parent: string, key: string): string {
  const part = /^[A-Za-z_$][\w$-]*$/.test(key) ? key : JSON.stringify(key);
  if (!parent) return part;
  return part.startsWith('"') ? `${parent}[${part}]` : `${parent}.${part}`;
}

function typeOf(v: unknown): JsonType | 'undefined' {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  if (typeof v === 'string' || typeof v === 'boolean' || typeof v === 'object') return typeof v as JsonType;
  return 'undefined';
}

const ARTICLE: Record<JsonType, string> = {
  object: 'an object',
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  null: 'null',
  array: 'an array',
};

function typeMatches(actual: JsonType | 'undefined', wanted: JsonType): boolean {
  return actual === wanted || (wanted === 'number' && actual === 'integer');
}

/** An absolute http(s) URL with a host (integration base URLs, document links). */
export function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'https:' || u.protocol === 'http:') && u.hostname !== '';
  } catch {
    return false;
  }
}

/** Validate `value` against `schema`, push errors, and return the value with defaults applied. */
function check(schema: JsonSchema, value: unknown, field: string, errors: FieldError[], applyDefaults: boolean): unknown {
  if (schema.type !== undefined) {
    const wanted = typeof schema.type === 'string' ? [schema.type as JsonType] : (schema.type as readonly JsonType[]);
    const actual = typeOf(value);
    if (!wanted.some((w) => typeMatches(actual, w))) {
      errors.push({ field, message: `must be ${wanted.map((w) => ARTICLE[w]).join(' or ')}` });
      return value;
    }
  }
  if (schema.const !== undefined && value !== schema.const) {
    errors.push({ field, message: `must be ${JSON.stringify(schema.const)}` });
  }
  if (schema.enum && !schema.enum.includes(value)) {
    errors.push({ field, message: `must be one of: ${schema.enum.map((e) => String(e)).join(', ')}` });
  }
  if (typeof value === 'string') {
    if (schema.minLength !== undefined && value.length < schema.minLength) {
      errors.push({ field, message: schema.minLength === 1 ? 'must not be empty' : `must be at least ${schema.minLength} characters` });
    }
    if (schema.maxLength !== undefined && value.length > schema.maxLength) {
      errors.push({ field, message: `must be at most ${schema.maxLength} characters` });
    }
    if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(value)) {
      errors.push({ field, message: schema.description ? `must be ${schema.description}` : `must match ${schema.pattern}` });
    }
    if (schema.format === 'uri' && !isHttpUrl(value)) {
      errors.push({ field, message: 'must be an absolute http(s) URL' });
    }
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) errors.push({ field, message: `must be at least ${schema.minimum}` });
    if (schema.maximum !== undefined && value > schema.maximum) errors.push({ field, message: `must be at most ${schema.maximum}` });
  }
  if (typeOf(value) === 'object') {
    const obj = value as Record<string, unknown>;
    const props = schema.properties ?? {};
    for (const [key, sub] of Object.entries(props)) {
      if (obj[key] === undefined && sub.default !== undefined && applyDefaults) obj[key] = structuredCloneJson(sub.default);
      if (obj[key] !== undefined) obj[key] = check(sub, obj[key], joinField(field, key), errors, applyDefaults);
    }
    for (const key of schema.required ?? []) {
      if (obj[key] === undefined) errors.push({ field: joinField(field, key), message: 'is required' });
    }
    const extra = Object.keys(obj).filter((k) => !(k in props));
    if (schema.additionalProperties === false) {
      for (const key of extra) errors.push({ field: joinField(field, key), message: 'is not allowed' });
    } else if (typeof schema.additionalProperties === 'object') {
      for (const key of extra) obj[key] = check(schema.additionalProperties, obj[key], joinField(field, key), errors, applyDefaults);
    }
  }
  for (const sub of schema.allOf ?? []) value = check(sub, value, field, errors, applyDefaults);
  if (schema.if && schema.then) {
    const probe: FieldError[] = [];
    check(schema.if, structuredCloneJson(value), field, probe, false);
    if (probe.length === 0) value = check(schema.then, value, field, errors, applyDefaults);
  }
  return value;
}
