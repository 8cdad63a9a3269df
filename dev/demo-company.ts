/**
 * A company ready to receive applications, for the demo and the benchmarks: if the company has no
 * enabled integration with mapped jobs, create a Greenhouse (Harvest v3) integration pointing at the
 * ATS sandbox, map three demo jobs, and register the matching tenant in the sandbox when it runs.
 *
 * The demo credentials are fixed and only ever valid against the local sandbox.
 */
import type { DocumentRef } from '../lib/application.ts';
import type { Pool } from '../lib/db.ts';
import { mappedJobIds } from '../registry/lookups.ts';
import type { IntegrationRepository } from '../registry/repository.ts';
import { sandboxClient } from '../sandbox/client.ts';
import { DEMO_RESUME } from './demo/customers.ts';

export const DEMO_COMPANY_ID = 'demo-company';

/** Our job id → the sandbox's Greenhouse job id. */
export const DEMO_JOBS: Readonly<Record<string, string>> = {
  'job-backend-engineer': '4001001',
  'job-data-analyst': '4001002',
  'job-product-designer': '4001003',
};

const DEMO_CREDENTIALS = { clientId: 'demo-greenhouse-client', clientSecret: 'demo-greenhouse-secret-sandbox-only' };
const DEMO_USER = '4080';

export interface DemoCompanyOptions {
  pool: Pool;
  /** Needed only when the integration must be created (it encrypts the credentials). */
  repo: () => IntegrationRepository;
  companyId: string;
  /** Base URL of the sandbox, e.g. http://127.0.0.1:4010 (the integration uses <base>/greenhouse). */
  sandboxUrl: string;
  say?: (line: string) => void;
}

export interface DemoCompany {
  companyId: string;
  jobIds: string[];
  /** Set when this call created the integration. */
  createdIntegrationId?: string;
}

export async function ensureDemoCompany(opts: DemoCompanyOptions): Promise<DemoCompany> {
  const say = opts.say ?? (() => undefined);
  const existing = await mappedJobIds(opts.pool, opts.companyId);
  if (existing.length) return { companyId: opts.companyId, jobIds: existing };

  const repo = opts.repo();
  const integration = await repo.createIntegration(opts.companyId, {
    platform: 'greenhouse',
    name: 'Demo Greenhouse (sandbox)',
    settings: { apiVersion: 'v3', onBehalfOf: DEMO_USER },
    credentials: DEMO_CREDENTIALS,
    apiBaseUrl: `${opts.sandboxUrl}/greenhouse`,
    enabled: true,
    allowMissingResume: true,
  });
  for (const [jobId, atsJobId] of Object.entries(DEMO_JOBS)) await repo.putJobMapping(integration.id, jobId, atsJobId);
  say(`created integration ${integration.id} (greenhouse → ${opts.sandboxUrl}/greenhouse) for company ${opts.companyId}, ${Object.keys(DEMO_JOBS).length} jobs mapped`);
  await registerSandboxTenant(opts.sandboxUrl, say);
  return { companyId: opts.companyId, jobIds: Object.keys(DEMO_JOBS), createdIntegrationId: integration.id };
}

/** Register the demo tenant in the sandbox unless it is there already (re-adding would reset its data). */
export async function registerSandboxTenant(sandboxUrl: string, say: (line: string) => void): Promise<boolean> {
  try {
    const listed = await fetch(`${sandboxUrl}/_sandbox/tenants`, { signal: AbortSignal.timeout(2_000) });
    const tenants = listed.ok ? ((await listed.json()) as Array<{ platform: string; tenant: string }>) : [];
    if (tenants.some((t) => t.platform === 'greenhouse' && t.tenant === 'demo')) return true;
    const res = await fetch(`${sandboxUrl}/_sandbox/tenants`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ platform: 'greenhouse', tenant: 'demo', credentials: DEMO_CREDENTIALS, users: [DEMO_USER], jobs: Object.values(DEMO_JOBS) }),
      signal: AbortSignal.timeout(2_000),
    });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    say(`registered the demo tenant in the ATS sandbox at ${sandboxUrl}`);
    return true;
  } catch (err) {
    say(`ATS sandbox not reachable at ${sandboxUrl} (${(err as Error).message}); start it with \`npm run sandbox\` before the dispatcher delivers`);
    return false;
  }
}

export interface SandboxDocuments {
  resume: DocumentRef;
  coverLetter: DocumentRef;
}

/**
 * A resume and a cover letter served by the sandbox, for generated applications: the generator's own
 * document URLs (files.example.com) answer nowhere, so every delivery with a document would fail to
 * fetch it and end in the DLQ. Undefined (said why) when the sandbox does not answer.
 */
export async function sandboxDocuments(sandboxUrl: string, say: (line: string) => void): Promise<SandboxDocuments | undefined> {
  const sandbox = sandboxClient(sandboxUrl);
  try {
    return {
      resume: await sandbox.addFile('publish-resume.pdf', DEMO_RESUME, 'application/pdf'),
      coverLetter: await sandbox.addFile('publish-cover-letter.pdf', DEMO_RESUME, 'application/pdf'),
    };
  } catch (err) {
    say(`ATS sandbox not reachable at ${sandboxUrl} (${(err as Error).message}): the applications' documents point at files.example.com, which the dispatcher cannot fetch`);
    return undefined;
  }
}
