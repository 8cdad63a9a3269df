/**
 * What the dispatcher sees of a connector: deliver one application to one integration's ATS, or
 * check that an integration's credentials work. Both throw AtsError on failure, nothing else.
 */
import type { ApplicationSubmitted } from '../lib/application.ts';
import type { Integration, Platform } from '../lib/integration.ts';
import type { AtsHttp } from './http.ts';
import type { BucketSpec, RateLimiter } from './rate-limit.ts';
import type { ResumeOmission } from './resume.ts';

export interface DeliveryResult {
  externalCandidateId: string;
  externalApplicationId: string;
  /** The ATS already had this application (an earlier attempt got through); nothing was created. */
  deduplicated: boolean;
  /** Set when the resume was left out because `integration.allowMissingResume` allowed it. */
  resumeOmitted?: ResumeOmission | null;
}

export interface Connector {
  readonly platform: Platform;
  deliver(application: ApplicationSubmitted, integration: Integration, signal?: AbortSignal): Promise<DeliveryResult>;
  /** A cheap authenticated read; resolves when the credentials (and base URL) work. */
  testConnection(integration: Integration, signal?: AbortSignal): Promise<void>;
}

/** Shared machinery handed to every vendor connector by createConnectors(). */
export interface ConnectorDeps {
  http: AtsHttp;
  limiter: RateLimiter;
  rateLimits: Readonly<Record<Platform, BucketSpec | null>>;
  /** Longest wait for a rate-limit slot before failing with rate_limited. */
  rateLimitMaxWaitMs: number;
  resumeMaxBytes: number;
}
