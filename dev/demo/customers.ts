/**
 * The demo's three customers, each on a different ATS of the sandbox:
 *   Acme Robotics — Greenhouse Harvest v3 (OAuth), healthy
 *   Globex        — Lever, whose API answers 503 for a while
 *   Initech       — Workable, with a wrong API token stored (every delivery fails auth)
 */
import { randomUUID } from 'node:crypto';
import type { DocumentRef } from '../../lib/application.ts';
import type { Platform } from '../../registry/integration.ts';
import type { IntegrationRecord } from '../../registry/integrations.ts';
import type { IntegrationRepository } from '../../registry/repository.ts';
import type { SandboxClient } from '../../sandbox/client.ts';

export interface DemoCustomer {
  name: string;
  companyId: string;
  platform: Platform;
  story: string;
  integration: IntegrationRecord;
  jobIds: string[];
  /** The right credentials (Initech's are stored wrong until the demo fixes them). */
  correctCredentials: Record<string, string>;
}

export const DEMO_RESUME = Buffer.from(
  '%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% ats-relay demo resume\ntrailer << /Root 1 0 R >>\n%%EOF\n',
);

export async function createCustomers(sandbox: SandboxClient, repo: IntegrationRepository, run: string): Promise<{ customers: DemoCustomer[]; resume: DocumentRef }> {
  const resume = await sandbox.addFile(`demo-${run}-resume.pdf`, DEMO_RESUME, 'application/pdf');
  const secret = (): string => randomUUID().replace(/-/g, '');

  const acmeCreds = { clientId: `acme-${run}`, clientSecret: secret() };
  const acme = await sandbox.addTenant({ platform: 'greenhouse', tenant: `acme-${run}`, credentials: acmeCreds, users: ['4080'], jobs: ['4001001', '4001002'], rateLimit: null });
  const globexCreds = { apiKey: secret() };
  const globex = await sandbox.addTenant({ platform: 'lever', tenant: `globex-${run}`, credentials: globexCreds, users: ['lever-user-1'], jobs: ['posting-a1', 'posting-b2'], rateLimit: null });
  const initechCreds = { token: secret() };
  const initech = await sandbox.addTenant({ platform: 'workable', tenant: `initech${run}`, credentials: initechCreds, jobs: ['GROOV005', 'GROOV006'], rateLimit: null });

  const make = async (
    name: string,
    companyId: string,
    platform: Platform,
    story: string,
    apiBaseUrl: string,
    settings: Record<string, unknown>,
    stored: Record<string, string>,
    correct: Record<string, string>,
    jobs: Record<string, string>,
  ): Promise<DemoCustomer> => {
    const integration = await repo.createIntegration(companyId, {
      platform,
      name: `${name} ${platform} (sandbox)`,
      settings: settings as never,
      credentials: stored,
      apiBaseUrl,
      enabled: true,
      allowMissingResume: false,
    });
    for (const [jobId, atsJobId] of Object.entries(jobs)) await repo.putJobMapping(integration.id, jobId, atsJobId);
    return { name, companyId, platform, story, integration, jobIds: Object.keys(jobs), correctCredentials: correct };
  };

  const customers = [
    await make('Acme Robotics', `acme-${run}`, 'greenhouse', 'healthy', acme.apiBaseUrl, { apiVersion: 'v3', onBehalfOf: '4080' }, acmeCreds, acmeCreds, {
      'job-robotics-engineer': '4001001',
      'job-firmware-engineer': '4001002',
    }),
    await make('Globex', `globex-${run}`, 'lever', 'ATS down (503) for a while', globex.apiBaseUrl, { performAs: 'lever-user-1' }, globexCreds, globexCreds, {
      'job-sales-lead': 'posting-a1',
      'job-account-exec': 'posting-b2',
    }),
    await make(
      'Initech',
      `initech-${run}`,
      'workable',
      'wrong credentials stored',
      initech.apiBaseUrl,
      { subdomain: `initech${run}` },
      { token: `wrong-${secret()}` },
      initechCreds,
      { 'job-tps-analyst': 'GROOV005', 'job-printer-tech': 'GROOV006' },
    ),
  ];
  return { customers, resume };
}
