/**
 * Ashby: RPC over POST (https://api.ashbyhq.com/{category.method}), Basic auth (API key as user).
 * Business errors come back as HTTP 200 with `success: false` and a code (`errorInfo.code`, or the
 * older `errors[]`), mapped below. Each step looks before it writes, so a retry resumes where the
 * last attempt stopped:
 *   candidate.search {email} → job.info (the job exists: nothing is written for an unknown one)
 *   → (candidate.create) → resume: file.createFileUploadHandle → multipart POST to the storage URL
 *   (every returned field, the file last) → candidate.uploadResume {resumeHandle} (skipped when the
 *   candidate already has a resume) → application.create (skipped when an application for the job
 *   exists: that is a delivered one).
 */
import type { ApplicationSubmitted } from '../lib/application.ts';
import type { AshbySettings, Integration } from '../registry/integration.ts';
import { truncate } from '../lib/errors.ts';
import { AtsError, vendorText, type AtsErrorCode } from './ats-error.ts';
import type { HttpResponse } from './http.ts';
import { loadResume, type Resume } from './resume.ts';
import type { AtsJob, Connector, ConnectorDeps, DeliveryResult, JobPage, JobPageRequest } from './types.ts';
import { FormData } from 'undici';
import { baseUrl, basicKeyAuth, isSuccess, requireCredential, VendorClient } from './vendor-client.ts';

const ASHBY_URL = 'https://api.ashbyhq.com';

interface AshbyCandidate {
  id: string;
  applicationIds?: string[];
  resumeFileHandle?: { handle?: string } | null;
}
interface AshbyApplication {
  id: string;
  job?: { id: string };
  jobId?: string;
}
interface Envelope {
  success?: boolean;
  results?: unknown;
  errors?: unknown[];
  errorInfo?: { code?: string; message?: string };
}

/** Ashby error code → our code. Codes not listed (or unknown) are unexpected_response. */
export function ashbyCode(code: string): AtsErrorCode {
  if (/job_not_found|jobposting_not_found|job_posting_not_found/i.test(code)) return 'job_not_found';
  if (/already_exists|duplicate/i.test(code)) return 'duplicate';
  if (/permission|forbidden|not_allowed/i.test(code)) return 'forbidden';
  if (/invalid|missing|required|_not_found|too_large|unsupported/i.test(code)) return 'validation_failed';
  if (/rate_limit/i.test(code)) return 'rate_limited';
  return 'unexpected_response';
}

function messageOf(body: unknown): string | undefined {
  const b = body as Envelope | undefined;
  if (!b || typeof b !== 'object') return undefined;
  if (b.errorInfo) return [b.errorInfo.code, b.errorInfo.message].filter(Boolean).join(': ');
  return Array.isArray(b.errors) ? b.errors.map(String).join('; ') : undefined;
}

/** How long a job found by job.info is trusted without asking again. */
const JOB_CHECK_TTL_MS = 10 * 60_000;

export class AshbyConnector implements Connector {
  readonly platform = 'ashby' as const;
  /** `${integrationId}:${jobId}` → when job.info last found it. */
  private readonly knownJobs = new Map<string, number>();

  constructor(private readonly deps: ConnectorDeps) {}

  async deliver(a: ApplicationSubmitted, integration: Integration, signal?: AbortSignal): Promise<DeliveryResult> {
    const settings = integration.settings as AshbySettings;
    const client = new VendorClient(this.deps, { platform: 'ashby', integration, signal, messageOf });
    const c = a.candidate;

    const lookup = async (): Promise<{ candidate: AshbyCandidate | undefined; delivered?: DeliveryResult }> => {
      const found = await this.rpc<AshbyCandidate[]>(client, 'candidate.search', { email: c.email });
      const existing = found[0];
      for (const applicationId of existing?.applicationIds ?? []) {
        const app = await this.rpc<AshbyApplication>(client, 'application.info', { applicationId });
        if ((app.job?.id ?? app.jobId) === a.atsJobId) {
          return { candidate: existing, delivered: { externalCandidateId: existing!.id, externalApplicationId: app.id, deduplicated: true } };
        }
      }
      return { candidate: existing };
    };
    const first = await lookup();
    if (first.delivered) return first.delivered;
    let candidate = first.candidate;
    // Before anything is written: an unknown job would otherwise leave an orphan candidate behind.
    await this.checkJob(client, a.atsJobId);

    // An existing candidate keeps the resume Ashby already has (uploading parses only into empty fields anyway).
    const needsResume = !candidate?.resumeFileHandle;
    const { resume, omitted } = needsResume
      ? await loadResume(a, integration, this.deps.http, this.deps.resumeMaxBytes, signal)
      : { resume: null, omitted: null };

    if (!candidate) {
      const linkOf = (type: string): string | undefined => c.links.find((l) => l.type.toLowerCase() === type)?.url;
      candidate = await this.rpc<AshbyCandidate>(client, 'candidate.create', {
        name: `${c.firstName} ${c.lastName}`.trim(),
        email: c.email,
        ...(c.phone ? { phoneNumber: c.phone } : {}),
        ...(linkOf('linkedin') ? { linkedInUrl: linkOf('linkedin') } : {}),
        ...(linkOf('github') ? { githubUrl: linkOf('github') } : {}),
        ...(linkOf('website') ? { website: linkOf('website') } : {}),
        ...(c.location ? { location: { city: c.location.city, region: c.location.region, country: c.location.country } } : {}),
        ...(settings.sourceId ? { sourceId: settings.sourceId } : {}),
      });
      if (!candidate?.id) throw new AtsError('unexpected_response', 'ashby candidate.create returned no id', { context: client.context('candidate.create') });
    }

    if (resume) await this.uploadResume(client, candidate.id, resume);

    let app: AshbyApplication;
    try {
      app = await this.rpc<AshbyApplication>(client, 'application.create', {
        candidateId: candidate.id,
        jobId: a.atsJobId,
        ...(settings.sourceId ? { sourceId: settings.sourceId } : {}),
      });
    } catch (err) {
      // "Already exists" after our lookup found nothing: a concurrent delivery of this application
      // (two consumers during a rebalance) created it meanwhile. Theirs is ours.
      const raced = err instanceof AtsError && err.code === 'duplicate' ? (await lookup()).delivered : undefined;
      if (raced) return raced;
      throw err;
    }
    if (!app?.id) throw new AtsError('unexpected_response', 'ashby application.create returned no id', { context: client.context('application.create') });
    return { externalCandidateId: candidate.id, externalApplicationId: app.id, deduplicated: false, resumeOmitted: omitted };
  }

  async testConnection(integration: Integration, signal?: AbortSignal): Promise<void> {
    const client = new VendorClient(this.deps, { platform: 'ashby', integration, signal, messageOf });
    await this.rpc(client, 'apiKey.info', {});
  }

  /** job.info before the first write; a job found is trusted for JOB_CHECK_TTL_MS. */
  private async checkJob(client: VendorClient, jobId: string): Promise<void> {
    const key = `${client.integration.id}:${jobId}`;
    if ((this.knownJobs.get(key) ?? 0) > Date.now()) return;
    try {
      await this.rpc(client, 'job.info', { id: jobId });
    } catch (err) {
      // A key without jobsRead cannot look: application.create still refuses an unknown job, later.
      if (err instanceof AtsError && err.code === 'forbidden') return;
      // Assumption (unconfirmed): an unknown id answers success:false with a *_not_found code.
      if (err instanceof AtsError && err.code === 'validation_failed' && /not_found/i.test(String(err.context.ashbyCode ?? ''))) {
        throw new AtsError('job_not_found', `ashby job.info: no job ${jobId}`, { status: err.status, vendorMessage: err.vendorMessage, context: err.context });
      }
      throw err;
    }
    this.knownJobs.set(key, Date.now() + JOB_CHECK_TTL_MS);
  }

  /** Asked for only here, right before it is used: an upload handle expires (10 minutes, per Ashby). */
  private async uploadResume(client: VendorClient, candidateId: string, resume: Resume): Promise<void> {
    const upload = await this.rpc<{ handle?: string; url?: string; fields?: Record<string, unknown> }>(client, 'file.createFileUploadHandle', {
      fileUploadContext: 'CandidateResume',
      filename: resume.fileName,
      contentType: resume.contentType,
      contentLength: resume.bytes.length,
    });
    if (!upload?.handle || !upload.url || !upload.fields || typeof upload.fields !== 'object') {
      throw new AtsError('unexpected_response', 'ashby file.createFileUploadHandle returned no handle/url/fields', { context: client.context('file.createFileUploadHandle') });
    }
    // Ashby's documented upload: a multipart/form-data POST with every returned field, the file last as `file`.
    const form = new FormData();
    for (const [name, value] of Object.entries(upload.fields)) form.append(name, String(value));
    form.append('file', new Blob([resume.bytes], { type: resume.contentType }), resume.fileName);
    const step = 'resume.upload';
    const res = await client.request({ method: 'POST', url: upload.url, body: form, step });
    if (!isSuccess(res.status)) {
      // A 403 is final, as everywhere (the storage refuses the signed request); other 4xx (an
      // expired or malformed form) are fixed by a retry, which asks for a fresh handle.
      const code = res.status === 403 ? 'forbidden' : res.status < 500 && res.status !== 429 ? 'unavailable' : undefined;
      throw client.fail(res, step, code);
    }
    await this.rpc(client, 'candidate.uploadResume', { candidateId, resumeHandle: upload.handle });
  }

  /**
   * `job.list {status: ["Open"], limit: 100, cursor}` → `{results, moreDataAvailable, nextCursor}` (the
   * envelope keeps the paging fields), the last page also `syncToken`. Incremental: `{syncToken}` and no
   * status filter (open, closed and archived jobs changed since the token).
   */
  async listJobsPage(integration: Integration, { cursor, since }: JobPageRequest, signal?: AbortSignal): Promise<JobPage> {
    const client = new VendorClient(this.deps, { platform: 'ashby', integration, signal, messageOf });
    const res = await client.request({
      method: 'POST',
      url: `${baseUrl(integration, ASHBY_URL)}/job.list`,
      headers: { authorization: basicKeyAuth(requireCredential(integration, 'apiKey')), 'content-type': 'application/json', accept: 'application/json; version=1' },
      body: JSON.stringify({ ...(since ? { syncToken: since } : { status: ['Open'] }), limit: 100, ...(cursor ? { cursor } : {}) }),
      step: 'job.list',
    });
    const results = this.unwrap<Array<Record<string, unknown>>>(client, res, 'job.list');
    if (!Array.isArray(results)) throw client.unexpected(res, 'job.list', 'results is not an array');
    const page = res.json() as { moreDataAvailable?: boolean; nextCursor?: string; syncToken?: string };
    const jobs = results.map((j): AtsJob => ({
      externalJobId: String(j.id),
      title: String(j.title ?? ''),
      status: j.status === 'Open' ? 'open' : 'closed',
      requisitionCode: typeof j.customRequisitionId === 'string' && j.customRequisitionId ? j.customRequisitionId : null,
      location: typeof j.locationName === 'string' ? j.locationName : null,
      updatedAt: typeof j.updatedAt === 'string' ? j.updatedAt : null,
    }));
    return { jobs, next: page.moreDataAvailable && page.nextCursor ? page.nextCursor : null, syncToken: typeof page.syncToken === 'string' && page.syncToken ? page.syncToken : null };
  }

  private async rpc<T>(client: VendorClient, method: string, body: Record<string, unknown>): Promise<T> {
    const integration = client.integration;
    const res = await client.request({
      method: 'POST',
      url: `${baseUrl(integration, ASHBY_URL)}/${method}`,
      headers: {
        authorization: basicKeyAuth(requireCredential(integration, 'apiKey')),
        'content-type': 'application/json',
        accept: 'application/json; version=1',
      },
      body: JSON.stringify(body),
      step: method,
    });
    return this.unwrap<T>(client, res, method);
  }

  private unwrap<T>(client: VendorClient, res: HttpResponse, method: string): T {
    const envelope = res.json() as Envelope | undefined;
    if (!isSuccess(res.status)) {
      // Missing key → 401; a wrong or deactivated key → 403; a key without the module permission → 403 + missing_endpoint_permission.
      if (res.status === 403) {
        const code = envelope?.errorInfo?.code ?? String(envelope?.errors?.[0] ?? '');
        throw client.fail(res, method, /permission/i.test(code) ? 'forbidden' : 'auth_failed');
      }
      throw client.fail(res, method, res.status === 404 ? 'unexpected_response' : undefined);
    }
    if (envelope?.success === true) return envelope.results as T;
    if (envelope?.success === false) {
      const code = envelope.errorInfo?.code ?? String(envelope.errors?.[0] ?? 'unknown');
      const ours = ashbyCode(code);
      const vendorMessage = vendorText(messageOf(envelope) ?? code, Object.values(client.integration.credentials));
      throw new AtsError(ours, `ashby ${method} failed: ${ours}: ${truncate(vendorMessage, 300)}`, { status: res.status, vendorMessage, context: { ...client.context(method), ashbyCode: code } });
    }
    throw client.unexpected(res, method, 'response is not an Ashby envelope');
  }
}
