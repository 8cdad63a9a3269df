/**
 * Ashby emulation, mounted at /ashby: RPC, every method a POST with a JSON body, Basic auth with
 * the API key as user (missing → 401, wrong → 403). Business errors are HTTP 200 with
 * `success: false`; the sandbox sends both envelopes the docs show (`errorInfo` and `errors[]`).
 *   apiKey.info, candidate.search, candidate.create, candidate.info, candidate.uploadResume,
 *   application.create, application.info, job.info, file.createFileUploadHandle
 * Resume uploads go to the URL the handle call returns (`POST /ashby/_uploads/{handle}`, no auth,
 * standing in for the presigned storage URL): multipart/form-data carrying every field the handle
 * call returned and the file last, named `file`, as Ashby documents; anything else is a 403, as a
 * storage service refuses a request that does not match its signed policy.
 */
import { randomUUID } from 'node:crypto';
import type { SandboxRecord, SandboxState, Tenant } from './state.ts';
import { fileSummary, type VendorEmulation } from './vendor.ts';
import { basicAuth, isEmail, jsonBody, mediaType, multipartBody, reply, type SandboxReply, type SandboxRequest } from './wire.ts';
import { ashbyJobList } from './jobs.ts';

function fail(code: string, message: string): SandboxReply {
  return reply(200, { success: false, errors: [code], errorInfo: { code, message, requestId: randomUUID() } });
}
const ok = (results: unknown): SandboxReply => reply(200, { success: true, results });

function candidateView(tenant: Tenant, c: SandboxRecord): Record<string, unknown> {
  const applicationIds = tenant.indexed(`apps:${c.id}`).map((a) => a.id);
  return { ...c, applicationIds };
}

type Rpc = (body: Record<string, unknown>, tenant: Tenant, state: SandboxState, req: SandboxRequest) => SandboxReply;

const methods: Record<string, Rpc> = {
  'job.list': (b, tenant) => ashbyJobList(b, tenant),

  'apiKey.info': (_b, tenant) => ok({ title: `sandbox key for ${tenant.spec.tenant}`, createdAt: new Date(0).toISOString() }),

  'candidate.search': (b, tenant) => {
    if (b.email === undefined && b.name === undefined) return fail('invalid_input', 'email or name is required');
    const email = typeof b.email === 'string' ? b.email.toLowerCase() : undefined;
    const list = (email ? tenant.indexed(`email:${email}`) : [...tenant.candidates.values()]).filter((c) => b.name === undefined || c.name === b.name);
    return ok(list.slice(0, 100).map((c) => candidateView(tenant, c)));
  },

  'candidate.create': (b, tenant) => {
    if (typeof b.name !== 'string' || !b.name.trim()) return fail('invalid_input', 'name is required');
    if (b.email !== undefined && !isEmail(b.email)) return fail('invalid_input', 'email is not a valid e-mail address');
    const email = typeof b.email === 'string' ? b.email.toLowerCase() : null;
    const c: SandboxRecord = {
      id: randomUUID(),
      name: b.name,
      primaryEmailAddress: email ? { value: email, type: 'Personal', isPrimary: true } : null,
      emailAddresses: email ? [{ value: email, type: 'Personal', isPrimary: true }] : [],
      phoneNumbers: typeof b.phoneNumber === 'string' ? [{ value: b.phoneNumber, type: 'Personal', isPrimary: true }] : [],
      linkedInUrl: b.linkedInUrl ?? null,
      githubUrl: b.githubUrl ?? null,
      website: b.website ?? null,
      location: b.location ?? null,
      sourceId: b.sourceId ?? null,
      resumeFileHandle: null,
      createdAt: new Date().toISOString(),
    };
    tenant.candidates.set(String(c.id), c);
    if (email) tenant.addToIndex(`email:${email}`, c);
    return ok(candidateView(tenant, c));
  },

  'candidate.info': (b, tenant) => {
    const c = typeof b.id === 'string' ? tenant.candidates.get(b.id) : undefined;
    return c ? ok(candidateView(tenant, c)) : fail('candidate_not_found', 'No candidate with that id');
  },

  'file.createFileUploadHandle': (b, tenant, state, req) => {
    if (b.fileUploadContext !== 'CandidateResume') return fail('invalid_input', 'fileUploadContext must be CandidateResume');
    if (typeof b.filename !== 'string' || !b.filename) return fail('invalid_input', 'filename is required');
    if (typeof b.contentType !== 'string' || !Number.isSafeInteger(b.contentLength)) return fail('invalid_input', 'contentType and contentLength are required');
    const handle = randomUUID();
    const fields = { key: `uploads/${handle}/${b.filename}`, policy: Buffer.from(JSON.stringify({ handle })).toString('base64'), 'x-amz-signature': randomUUID().replace(/-/g, '') };
    state.uploads.set(handle, { tenant, fileName: b.filename, contentType: b.contentType, bytes: null, fields });
    return ok({ handle, url: `${req.origin}/ashby/_uploads/${handle}`, fields });
  },

  'job.info': (b, tenant) => {
    if (typeof b.id !== 'string') return fail('invalid_input', 'id is required');
    // Assumption (unconfirmed): Ashby names an unknown job with this code.
    return tenant.hasJob(b.id) ? ok({ id: b.id, title: `Job ${b.id}`, status: 'Open' }) : fail('job_not_found', 'No job with that id');
  },

  'candidate.uploadResume': (b, tenant, state) => {
    const c = typeof b.candidateId === 'string' ? tenant.candidates.get(b.candidateId) : undefined;
    if (!c) return fail('candidate_not_found', 'No candidate with that id');
    if (typeof b.resumeHandle !== 'string') return fail('invalid_input', 'resumeHandle is required');
    const upload = state.uploads.get(b.resumeHandle);
    if (!upload || upload.tenant !== tenant || !upload.bytes) return fail('invalid_input', 'resumeHandle does not name an uploaded file');
    c.resumeFileHandle = { id: randomUUID(), name: upload.fileName, handle: b.resumeHandle, ...fileSummary(upload.fileName, upload.contentType, upload.bytes) };
    // Counted so tests can tell a resume attached once from one replaced by a second upload.
    c.resumeUploads = Number(c.resumeUploads ?? 0) + 1;
    state.uploads.delete(b.resumeHandle);
    return ok(candidateView(tenant, c));
  },

  'application.create': (b, tenant) => {
    if (typeof b.candidateId !== 'string' || typeof b.jobId !== 'string') return fail('invalid_input', 'candidateId and jobId are required');
    if (!tenant.candidates.has(b.candidateId)) return fail('candidate_not_found', 'No candidate with that id');
    if (!tenant.hasJob(b.jobId)) return fail('requested_job_not_found', 'The requested job was not found');
    const exists = tenant.indexed(`apps:${b.candidateId}`).some((a) => a.jobId === b.jobId);
    // Assumption (unconfirmed): applying the same candidate to the same job twice is refused with this code.
    if (exists) return fail('application_already_exists', 'The candidate already has an application for this job');
    const app: SandboxRecord = {
      id: randomUUID(),
      candidateId: b.candidateId,
      jobId: b.jobId,
      job: { id: b.jobId, title: `Job ${b.jobId}` },
      candidate: { id: b.candidateId },
      status: 'Active',
      sourceId: b.sourceId ?? null,
      currentInterviewStage: { id: 'lead', title: 'Lead' },
      createdAt: new Date().toISOString(),
    };
    tenant.applications.set(String(app.id), app);
    tenant.addToIndex(`apps:${b.candidateId}`, app);
    return ok(app);
  },

  'application.info': (b, tenant) => {
    const a = typeof b.applicationId === 'string' ? tenant.applications.get(b.applicationId) : undefined;
    return a ? ok(a) : fail('application_not_found', 'No application with that id');
  },
};

function upload(req: SandboxRequest, state: SandboxState, handle: string): SandboxReply {
  const entry = state.uploads.get(handle);
  if (req.method !== 'POST' || !entry) return reply(403, { message: 'Upload URL is invalid or expired' });
  const parts = multipartBody(req);
  if (!parts) return reply(403, { message: 'The upload must be multipart/form-data' });
  const file = parts[parts.length - 1];
  if (!file || file.name !== 'file' || file.fileName === undefined) return reply(403, { message: 'The last form field must be the file, named "file"' });
  for (const [name, value] of Object.entries(entry.fields)) {
    const part = parts.find((p) => p.name === name);
    if (!part || part.data.toString('utf8') !== value) return reply(403, { message: `Form field "${name}" is missing or does not match the policy` });
  }
  if (file.data.length === 0) return reply(400, { message: 'Empty upload' });
  entry.bytes = Buffer.from(file.data);
  if (file.contentType) entry.contentType = file.contentType;
  return reply(204);
}

export const ashby: VendorEmulation = {
  platform: 'ashby',

  tenantOf(req, state) {
    if (req.path.startsWith('/_uploads/')) return state.uploads.get(req.path.slice('/_uploads/'.length))?.tenant;
    const creds = basicAuth(req);
    return creds ? state.byCredential.get(`ashby:${creds[0]}`) : undefined;
  },

  defaultRateLimit: () => null,

  rateHeaders: () => ({}),

  errorBody: (status, message) => ({ success: false, errors: [status === 429 ? 'rate_limit_exceeded' : 'service_unavailable'], errorInfo: { code: status === 429 ? 'rate_limit_exceeded' : 'service_unavailable', message } }),

  handle(req, state, tenant) {
    if (req.path.startsWith('/_uploads/')) return upload(req, state, req.path.slice('/_uploads/'.length));
    const creds = basicAuth(req);
    if (!creds) return reply(401, { success: false, errors: ['unauthenticated'], errorInfo: { code: 'unauthenticated', message: 'Missing API key' } });
    if (!tenant || tenant.spec.credentials.apiKey !== creds[0] || req.forceBadCredentials) {
      return reply(403, { success: false, errors: ['invalid_api_key'], errorInfo: { code: 'invalid_api_key', message: 'Invalid or deactivated API key' } });
    }
    const rpc = methods[req.path.slice(1)];
    if (!rpc) return reply(404, { success: false, errors: ['not_found'], errorInfo: { code: 'not_found', message: 'Unknown endpoint' } });
    if (req.method !== 'POST') return reply(405, { success: false, errors: ['method_not_allowed'] });
    const body = mediaType(req) === 'application/json' ? jsonBody(req) : undefined;
    if (!body) return fail('invalid_input', 'Body must be a JSON object sent as application/json');
    return rpc(body, tenant, state, req);
  },
};
