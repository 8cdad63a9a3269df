/**
 * A PATCH of an integration, as REST (`PATCH /integrations/:id`) and the web console apply it: the
 * body is merged over the stored integration and validated with the create rules
 * (validation.ts `validatePatch`), then written with optimistic locking on `version`.
 */
import { ValidationError } from './errors.ts';
import type { IntegrationRecord } from './integrations.ts';
import type { IntegrationRepository } from './repository.ts';
import type { Scope } from './scope.ts';
import { validatePatch } from './validation.ts';

/** Throws ValidationError (400), not_found (404) or version_conflict (409) as RegistryErrors. */
export async function applyIntegrationPatch(repo: IntegrationRepository, current: IntegrationRecord, body: unknown, scope: Scope): Promise<IntegrationRecord> {
  const checked = validatePatch(current, body);
  if (!checked.ok) throw new ValidationError(checked.errors);
  const { patch, merged } = checked.value;
  return repo.updateIntegration(
    current.id,
    patch.version,
    {
      name: patch.name,
      apiBaseUrl: patch.apiBaseUrl,
      settings: patch.settings === undefined ? undefined : merged.settings,
      credentials: patch.credentials === undefined ? undefined : merged.credentials,
      enabled: patch.enabled,
      allowMissingResume: patch.allowMissingResume,
    },
    scope,
  );
}
