/**
 * Connector contract tests run against the in-process ATS sandbox (no Kafka): each test registers
 * its own sandbox tenant and the matching Integration, with unique names and credentials.
 */
import { randomUUID } from 'node:crypto';
import type { ApplicationSubmitted, DocumentRef } from '../../lib/application.ts';
import type { Integration, Platform, PlatformSettings } from '../../registry/integration.ts';
import { createConnectors, type Connectors, type ConnectorsOptions } from '../../connectors/index.ts';
import { startSandbox, SAMPLE_RESUME, type Sandbox } from '../../sandbox/server.ts';
import type { TenantSpec } from '../../sandbox/state.ts';

export const TEST_TIMEOUT_MS = 800;

export interface Harness {
  sandbox: Sandbox;
  connectors: Connectors;
  resume: DocumentRef;
  close(): Promise<void>;
}

export async function startHarness(options: Partial<ConnectorsOptions> = {}): Promise<Harness> {
  const sandbox = await startSandbox({ port: 0 });
  const connectors = createConnectors({ requestTimeoutMs: TEST_TIMEOUT_MS, allowPrivateNetworks: true, resumeMaxBytes: 64 * 1024, ...options });
  const resume = sandbox.addFile('ada-cv.pdf', SAMPLE_RESUME, 'application/pdf');
  return {
    sandbox,
    connectors,
    resume,
    async close() {
      await connectors.close();
      await sandbox.close();
    },
  };
}

export function application(overrides: Partial<ApplicationSubmitted> = {}): ApplicationSubmitted {
  const id = randomUUID();
  return {
    eventId: randomUUID(),
    occurredAt: Date.now(),
    applicationId: id,
    companyId: randomUUID(),
    integrationId: randomUUID(),
    platform: 'greenhouse',
    jobId: `job-${id.slice(0, 6)}`,
    atsJobId: '101',
    candidate: {
      firstName: 'Ada',
      lastName: 'Byron',
      email: `ada.${id.slice(0, 8)}@example.org`,
      phone: '+44 20 0000 0000',
      location: { city: 'London', region: null, country: 'GB' },
      links: [{ type: 'linkedin', url: 'https://www.linkedin.com/in/ada' }],
    },
    resume: null,
    coverLetter: null,
    screeningAnswers: [],
    source: 'AcmeJobs',
    consent: { dataProcessing: true, marketing: false },
    extras: {},
    ...overrides,
  };
}

export interface Fixture<P extends Platform> {
  tenant: string;
  integration: Integration<P>;
  jobId: string;
  /** An application for this fixture's job, with the sandbox resume. */
  app(overrides?: Partial<ApplicationSubmitted>): ApplicationSubmitted;
}

const JOBS: Record<Platform, string[]> = {
  greenhouse: ['101', '102'],
  lever: ['5ac21346-8e0c-4494-8e7a-3eb92ff77902', '0b7a2c43-2f5f-4b52-9d2e-8a0c6e1b1d11'],
  workable: ['GROOV005', 'GROOV006'],
  ashby: ['3ae2b801-19f6-41ef-ad28-214bd731948f', 'f1d7b4e2-6a5c-4b8e-9c3d-2e1f0a9b8c7d'],
  generic: ['any'],
};

/**
 * Register a sandbox tenant and build the Integration that reaches it. `spec` tweaks the tenant
 * (rate limit, generic receiver), `integration` the Integration (e.g. wrong credentials).
 */
export function fixture<P extends Platform>(
  h: Harness,
  platform: P,
  opts: {
    settings?: Partial<PlatformSettings[P]>;
    spec?: Partial<TenantSpec>;
    integration?: Partial<Integration<P>>;
  } = {},
): Fixture<P> {
  const tenant = `${platform}-${randomUUID().slice(0, 8)}`;
  const user = String(4000 + Math.floor(Math.random() * 1000));
  const secret = randomUUID();
  const credentials: Record<Platform, Record<string, string>> = {
    greenhouse: { apiKey: `gh-${secret}`, clientId: `ghc-${secret}`, clientSecret: `ghs-${secret}` },
    lever: { apiKey: `lv-${secret}` },
    workable: { token: `wk-${secret}` },
    ashby: { apiKey: `ash-${secret}` },
    generic: { token: `gen-${secret}`, signingSecret: `sig-${secret}` },
  };
  const settings: Record<Platform, unknown> = {
    greenhouse: { apiVersion: 'v3', onBehalfOf: user, sourceId: 7 },
    lever: { performAs: user, origin: 'applied' },
    workable: { subdomain: tenant },
    ashby: {},
    generic: { url: h.sandbox.urlFor('generic', tenant), method: 'POST', authStyle: 'bearer', fieldMapping: {} },
  };
  h.sandbox.addTenant({
    platform,
    tenant,
    credentials: credentials[platform],
    users: [user],
    jobs: JOBS[platform],
    ...(platform === 'generic' ? { generic: { authStyle: 'bearer' } } : {}),
    ...opts.spec,
  });
  const integration = {
    id: randomUUID(),
    companyId: randomUUID(),
    platform,
    name: `${platform} test`,
    credentials: credentials[platform],
    apiBaseUrl: platform === 'generic' ? null : h.sandbox.urlFor(platform),
    settings: { ...(settings[platform] as object), ...opts.settings } as PlatformSettings[P],
    enabled: true,
    allowMissingResume: false,
    version: 1,
    ...opts.integration,
  } as Integration<P>;
  const jobId = JOBS[platform][0]!;
  return {
    tenant,
    integration,
    jobId,
    app: (overrides = {}) =>
      application({ platform, integrationId: integration.id, companyId: integration.companyId, atsJobId: jobId, resume: h.resume, ...overrides }),
  };
}
