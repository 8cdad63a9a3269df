/** The pure parts of the way back: signature schemes and status normalisation. */
import { describe, expect, it } from 'vitest';
import { interpretWebhook, statusFromStageName } from '../../producers/webhooks/interpret.ts';
import { leverSignature, signatureHeaders, verifyWebhook } from '../../producers/webhooks/signatures.ts';

const now = 1_767_225_600_000;
const opts = { now, toleranceMs: 300_000 };
const secret = 'whsec_test-secret-0123456789';

describe('webhook signatures', () => {
  it.each(['greenhouse', 'ashby', 'workable', 'generic'] as const)('%s: accepts its own scheme over the raw bytes, refuses a changed byte', (platform) => {
    const body = Buffer.from(JSON.stringify({ occurredAt: new Date(now).toISOString(), note: '\\u003cb\\u003e' }));
    const headers = signatureHeaders(platform, body, secret);
    expect(verifyWebhook(platform, headers, body, secret, opts)).toMatchObject({ ok: true });
    const upper = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, v.replace(/[0-9a-f]{64}/, (h) => h.toUpperCase())]));
    expect(verifyWebhook(platform, upper, body, secret, opts)).toMatchObject({ ok: true });
    const tampered = Buffer.from(body.toString().replace('note', 'nota'));
    expect(verifyWebhook(platform, headers, tampered, secret, opts)).toEqual({ ok: false, reason: 'bad_signature' });
    expect(verifyWebhook(platform, {}, body, secret, opts)).toEqual({ ok: false, reason: 'missing_signature' });
    expect(verifyWebhook(platform, headers, body, `${secret}x`, opts)).toEqual({ ok: false, reason: 'bad_signature' });
  });

  it('lever: signs token + triggeredAt, checks the replay window both ways', () => {
    const body = (at: number, sig = leverSignature('tok', at, secret)) => Buffer.from(JSON.stringify({ id: 'e1', event: 'candidateHired', token: 'tok', triggeredAt: at, signature: sig, data: {} }));
    expect(verifyWebhook('lever', {}, body(now), secret, opts)).toMatchObject({ ok: true });
    expect(verifyWebhook('lever', {}, body(now - 301_000), secret, opts)).toEqual({ ok: false, reason: 'stale' });
    expect(verifyWebhook('lever', {}, body(now + 301_000), secret, opts)).toEqual({ ok: false, reason: 'stale' });
    expect(verifyWebhook('lever', {}, body(now, 'ab'.repeat(32)), secret, opts)).toEqual({ ok: false, reason: 'bad_signature' });
    expect(verifyWebhook('lever', {}, Buffer.from('not json'), secret, opts)).toEqual({ ok: false, reason: 'malformed' });
  });
});

describe('status normalisation', () => {
  it.each([
    ['Application Review', 'applied'],
    ['Preliminary Phone Screen', 'screening'],
    ['Face to Face', 'interview'],
    ['Take Home Test', 'interview'],
    ['Offer', 'offer'],
    ['Team fit chat', 'interview'],
  ] as const)('stage "%s" → %s', (stage, status) => expect(statusFromStageName(stage)).toBe(status));

  it('Greenhouse: "They rejected us" is a withdrawal; pings are ignored', () => {
    const payload = { action: 'reject_candidate', payload: { application: { id: 5, status: 'rejected', rejection_reason: { name: 'Took another job', type: { name: 'They rejected us' } } } } };
    expect(interpretWebhook('greenhouse', payload, {})).toMatchObject({ kind: 'status', status: 'withdrawn', reason: 'Took another job', externalApplicationId: '5' });
    expect(interpretWebhook('greenhouse', { action: 'ping', payload: {} }, {})).toMatchObject({ kind: 'ignored' });
  });

  it('Ashby: archived by the candidate is a withdrawal; stage types map directly', () => {
    const app = (extra: object) => ({ action: 'applicationUpdate', webhookActionId: 'w1', data: { application: { id: 'a1', status: 'Active', ...extra } } });
    expect(interpretWebhook('ashby', app({ status: 'Archived', archiveReason: { text: 'Went elsewhere', reasonType: 'RejectedByCandidate' } }), {})).toMatchObject({ status: 'withdrawn', vendorEventId: 'w1' });
    expect(interpretWebhook('ashby', app({ currentInterviewStage: { title: 'Recruiter call', type: 'PreInterviewScreen' } }), {})).toMatchObject({ status: 'screening', rawStage: 'Recruiter call' });
  });

  it('Lever: fixed stage ids, archive reasons, and unarchive ignored', () => {
    const ev = (event: string, data: object) => ({ id: 'e', event, triggeredAt: now, token: 't', signature: 's', data: { opportunityId: 'o1', ...data } });
    expect(interpretWebhook('lever', ev('candidateStageChange', { toStageId: 'applicant-new' }), {})).toMatchObject({ status: 'applied' });
    expect(interpretWebhook('lever', ev('candidateStageChange', { toStageId: 'offer' }), {})).toMatchObject({ status: 'offer' });
    expect(interpretWebhook('lever', ev('candidateArchiveChange', { toArchived: { reason: 'Withdrew' } }), {})).toMatchObject({ status: 'withdrawn' });
    expect(interpretWebhook('lever', ev('candidateArchiveChange', { toArchived: null }), {})).toMatchObject({ kind: 'ignored' });
  });
});
