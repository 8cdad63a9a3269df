/**
 * Credentials never leave the service in clear: API responses and CLI tables show each secret as
 * `••••` plus its last four characters (only when the secret is long enough that four characters
 * give nothing useful away).
 */
import type { Credentials } from './integration.ts';

const MASK = '••••';
/** Secrets shorter than this are shown as the mask alone. */
const MIN_LENGTH_FOR_HINT = 12;

export function maskSecret(value: string): string {
  return value.length >= MIN_LENGTH_FOR_HINT ? `${MASK}${value.slice(-4)}` : MASK;
}

export function maskCredentials(credentials: Credentials): Record<string, string> {
  return Object.fromEntries(Object.entries(credentials).map(([k, v]) => [k, maskSecret(v)]));
}
