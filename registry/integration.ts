/**
 * A customer's ATS configuration as the consumers and connectors see it: credentials already
 * decrypted (in memory only), settings validated per platform by the integration registry.
 */
export const PLATFORMS = ['greenhouse', 'lever', 'workable', 'ashby', 'generic'] as const;
export type Platform = (typeof PLATFORMS)[number];

export interface GreenhouseSettings {
  /** Harvest API generation; v1/v2 are reported sunset (2026-08-31), so v3 is the default for new integrations. */
  apiVersion: 'v1' | 'v3';
  /** Greenhouse user id: `On-Behalf-Of` header (v1) or the `sub` of the client-credentials token (v3). */
  onBehalfOf: string;
  sourceId?: number;
}
export interface LeverSettings {
  /** Lever user id passed as `perform_as` on writes. */
  performAs: string;
  origin?: 'applied' | 'sourced' | 'referred' | 'agency' | 'internal' | 'university';
}
export interface WorkableSettings {
  /** Account subdomain: https://{subdomain}.workable.com/spi/v3 */
  subdomain: string;
}
export interface AshbySettings {
  sourceId?: string;
}
export interface GenericSettings {
  url: string;
  method: 'POST' | 'PUT';
  authStyle: 'none' | 'header' | 'bearer' | 'basic';
  /** Header carrying the API key when authStyle = header (default X-API-Key). */
  headerName?: string;
  /** Target JSON path → source path in the event, e.g. { "applicant.email": "candidate.email" }. */
  fieldMapping: Record<string, string>;
}

export interface PlatformSettings {
  greenhouse: GreenhouseSettings;
  lever: LeverSettings;
  workable: WorkableSettings;
  ashby: AshbySettings;
  generic: GenericSettings;
}

/**
 * Secret material per platform (stored encrypted; never logged, never put on a topic).
 * greenhouse v1: { apiKey }  greenhouse v3: { clientId, clientSecret }  lever: { apiKey }
 * workable: { token }  ashby: { apiKey }  generic: { apiKey? | token? | username?+password?, signingSecret }
 */
export type Credentials = Record<string, string>;

export interface Integration<P extends Platform = Platform> {
  id: string;
  companyId: string;
  platform: P;
  name: string;
  credentials: Credentials;
  /** Overrides the vendor's base URL (sandbox, EU hosts, on-prem generic receivers). */
  apiBaseUrl: string | null;
  settings: PlatformSettings[P];
  enabled: boolean;
  /** Resume policy: deliver without the resume when it is missing or too large, instead of failing. */
  allowMissingResume: boolean;
  version: number;
}
