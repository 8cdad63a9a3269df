/**
 * What the dispatcher sees of a connector: deliver one application to one integration's ATS, or
 * check that an integration's credentials work. Both throw AtsError on failure, nothing else.
 */
import type { ApplicationSubmitted } from '../lib/application.ts';
import type { Integration, Platform } from '../registry/integration.ts';
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
  /**
   * One page of the ATS's open jobs, or of the jobs changed since `request.since` (job import).
   * `cursor` is null for the first page, then the page's `next`; a null `next` ends the listing.
   * Absent for receivers without a job listing.
   */
  listJobsPage?(integration: Integration, request: JobPageRequest, signal?: AbortSignal): Promise<JobPage>;
}

/** A job as the job import keeps it, whatever the vendor calls its fields. */
export interface AtsJob {
  externalJobId: string;
  title: string;
  status: 'open' | 'closed';
  requisitionCode: string | null;
  location: string | null;
  /** The vendor's own last-update stamp, as sent (for operators; change detection compares content). */
  updatedAt: string | null;
}

/**
 * One listing call. Without `since` the vendor's open jobs (a full run). With `since` only the jobs the
 * vendor changed since then, in every state, so that a close shows up as a changed job: an ISO-8601
 * instant (Greenhouse, Lever, Workable; the caller has already widened it for clock skew) or, for
 * Ashby, the syncToken of the previous run.
 */
export interface JobPageRequest {
  /** Opaque: a vendor cursor, offset token or next-page URL (null for the first page). */
  cursor: string | null;
  since?: string | null;
}

export interface JobPage {
  jobs: AtsJob[];
  /** Opaque: a vendor cursor, offset token or next-page URL. */
  next: string | null;
  /** Ashby: the syncToken the last page hands out, the mark of the next incremental run. */
  syncToken?: string | null;
}

/** RFC 5988 `Link` header → the rel="next" URL. */
export function linkNext(header: string | undefined): string | null {
  for (const part of (header ?? '').split(',')) {
    const m = /<([^>]+)>\s*;\s*rel="?next"?/i.exec(part.trim());
    if (m) return m[1]!;
  }
  return null;
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
