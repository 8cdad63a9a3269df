/**
 * Errors of the integration registry. The API maps `status` to the HTTP answer; the CLI prints
 * the message and, for validation, each bad field.
 */
import type { CodeOf } from '../lib/error-codes.ts';
import { RelayError } from '../lib/errors.ts';
import type { FieldError } from './json-schema.ts';

export type RegistryErrorCode = CodeOf<'registry'>;

export class RegistryError extends RelayError<RegistryErrorCode> {
  override name = 'RegistryError';
}

export class ValidationError extends RegistryError {
  override name = 'ValidationError';
  constructor(readonly fields: FieldError[]) {
    super('invalid_request', `invalid request: ${fields.map((f) => `${f.field || '(body)'} ${f.message}`).join('; ')}`, {
      retriable: false,
      status: 400,
      context: { fields },
    });
  }
}

export function notFound(what: string, id: string): RegistryError {
  return new RegistryError('not_found', `${what} ${id} not found`, { retriable: false, status: 404, context: { id } });
}

export function versionConflict(id: string, expected: number, current: number): RegistryError {
  return new RegistryError('version_conflict', `integration ${id} was changed by someone else (you sent version ${expected}, it is now at version ${current}); read it again and retry`, {
    retriable: false,
    status: 409,
    context: { integrationId: id, expectedVersion: expected, currentVersion: current },
  });
}
