/**
 * The connector registry the dispatcher and the integrations API use: `deliver` and
 * `testConnection` dispatch on `integration.platform`; `close()` aborts what is in flight and
 * closes the per-origin pools. Options come from `config.ats`, passed in.
 */
import type { ApplicationSubmitted } from '../lib/application.ts';
import type { Integration, Platform } from '../registry/integration.ts';
import { AshbyConnector } from './ashby.ts';
import { AtsError } from './ats-error.ts';
import { GenericConnector } from './generic.ts';
import { GreenhouseConnector } from './greenhouse.ts';
import { AtsHttp } from './http.ts';
import { LeverConnector } from './lever.ts';
import { DEFAULT_RATE_LIMITS, RateLimiter, type BucketSpec } from './rate-limit.ts';
import { checkBaseUrl } from './ssrf-guard.ts';
import type { Connector, ConnectorDeps, DeliveryResult, JobPage, JobPageRequest } from './types.ts';
import { WorkableConnector } from './workable.ts';

export { AtsError, ATS_ERROR_CODES, type AtsErrorCode } from './ats-error.ts';
export type { AtsJob, Connector, DeliveryResult, JobPage, JobPageRequest } from './types.ts';
export { checkBaseUrl } from './ssrf-guard.ts';
import { ByteBudget } from './byte-budget.ts';

export interface ConnectorsOptions {
  /** `config.ats.requestTimeoutMs`: time to response headers and the longest pause in a body. */
  requestTimeoutMs: number;
  /** `config.ats.allowPrivateNetworks`: SSRF guard off (tests and the sandbox only). */
  allowPrivateNetworks: boolean;
  /** `config.ats.resumeMaxBytes` */
  resumeMaxBytes: number;
  /** Default min(requestTimeoutMs, 10 s). */
  connectTimeoutMs?: number;
  /** Keep-alive sockets per ATS origin; default 64. */
  connectionsPerOrigin?: number;
  /** Per-platform token-bucket overrides (null = no client-side limit); defaults in DEFAULT_RATE_LIMITS. */
  rateLimits?: Partial<Record<Platform, BucketSpec | null>>;
  /** Longest wait for a rate-limit slot before failing with rate_limited; default requestTimeoutMs. */
  rateLimitMaxWaitMs?: number;
  /**
   * `config.ats.resumeBytesInFlight`: resume bytes (declared sizes, each capped at resumeMaxBytes)
   * that deliveries hold at once; a delivery with a resume waits for its share (byte-budget.ts).
   * Default: no bound (processes that deliver one at a time).
   */
  resumeBytesInFlight?: number;
}

export interface Connectors {
  deliver(application: ApplicationSubmitted, integration: Integration, signal?: AbortSignal): Promise<DeliveryResult>;
  testConnection(integration: Integration, signal?: AbortSignal): Promise<void>;
  /** One page of the ATS's open jobs, or of its jobs changed since a mark (job import); validation_failed for platforms without a job listing. */
  listJobsPage(integration: Integration, request: JobPageRequest, signal?: AbortSignal): Promise<JobPage>;
  /** Abort in-flight calls and close the pools. Idempotent. */
  close(): Promise<void>;
}

export function createConnectors(options: ConnectorsOptions): Connectors {
  const http = new AtsHttp({
    requestTimeoutMs: options.requestTimeoutMs,
    allowPrivateNetworks: options.allowPrivateNetworks,
    ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
    ...(options.connectionsPerOrigin === undefined ? {} : { connectionsPerOrigin: options.connectionsPerOrigin }),
  });
  const deps: ConnectorDeps = {
    http,
    limiter: new RateLimiter(),
    rateLimits: { ...DEFAULT_RATE_LIMITS, ...options.rateLimits },
    rateLimitMaxWaitMs: options.rateLimitMaxWaitMs ?? options.requestTimeoutMs,
    resumeMaxBytes: options.resumeMaxBytes,
  };
  const byPlatform: Record<Platform, Connector> = {
    greenhouse: new GreenhouseConnector(deps),
    lever: new LeverConnector(deps),
    workable: new WorkableConnector(deps),
    ashby: new AshbyConnector(deps),
    generic: new GenericConnector(deps),
  };

  const connectorFor = (integration: Integration): Connector => {
    const connector = byPlatform[integration.platform];
    if (!connector) {
      throw new AtsError('validation_failed', `no connector for platform "${String(integration.platform)}"`, {
        context: { integrationId: integration.id },
      });
    }
    return connector;
  };

  const resumeBudget = options.resumeBytesInFlight === undefined ? undefined : new ByteBudget(options.resumeBytesInFlight);

  return {
    async deliver(application, integration, signal) {
      const connector = connectorFor(integration);
      if (!resumeBudget || !application.resume) return connector.deliver(application, integration, signal);
      // The declared size, capped as the download is: a resume that lies about its size is still cut there.
      const reserved = await resumeBudget.acquire(Math.min(Math.max(1, application.resume.sizeBytes), options.resumeMaxBytes), signal);
      try {
        return await connector.deliver(application, integration, signal);
      } finally {
        resumeBudget.release(reserved);
      }
    },
    async testConnection(integration, signal) {
      const configured = integration.platform === 'generic' ? (integration.settings as { url?: string }).url : integration.apiBaseUrl;
      if (configured) await checkBaseUrl(configured.replace('{subdomain}', 'x'), options.allowPrivateNetworks);
      await connectorFor(integration).testConnection(integration, signal);
    },
    async listJobsPage(integration, request, signal) {
      const connector = connectorFor(integration);
      if (!connector.listJobsPage) {
        throw new AtsError('validation_failed', `${integration.platform} integrations have no job listing to import`, { context: { integrationId: integration.id } });
      }
      return connector.listJobsPage(integration, request, signal);
    },
    close: () => http.close(),
  };
}
