/**
 * A valid ApplicationSubmitted with fresh ids; tests override what they care about.
 */
import { randomUUID } from 'node:crypto';
import type { ApplicationSubmitted } from '../../lib/application.ts';

export function sampleEvent(overrides: Partial<ApplicationSubmitted> = {}): ApplicationSubmitted {
  const applicationId = overrides.applicationId ?? randomUUID();
  return {
    eventId: randomUUID(),
    occurredAt: Date.now(),
    applicationId,
    companyId: 'company-1',
    integrationId: randomUUID(),
    platform: 'greenhouse',
    jobId: 'job-1',
    atsJobId: '4242',
    candidate: { firstName: 'Ada', lastName: 'Byron', email: `ada+${applicationId}@example.org`, phone: null, location: null, links: [] },
    resume: null,
    coverLetter: null,
    screeningAnswers: [],
    source: 'ats-relay tests',
    consent: { dataProcessing: true, marketing: false },
    extras: {},
    ...overrides,
  };
}
