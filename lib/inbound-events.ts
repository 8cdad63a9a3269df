/**
 * The way back's events as TypeScript sees them; field for field the Avro records in
 * schemas/application-status-changed.avsc and schemas/job-synced.avsc (documented there).
 */

/** The normalised vocabulary every vendor's stages and outcomes map onto. */
export const APPLICATION_STATUSES = ['applied', 'screening', 'interview', 'offer', 'hired', 'rejected', 'withdrawn'] as const;
export type ApplicationStatus = (typeof APPLICATION_STATUSES)[number];

export interface ApplicationStatusChanged {
  eventId: string;
  occurredAt: number;
  receivedAt: number;
  applicationId: string;
  companyId: string;
  integrationId: string;
  platform: string;
  status: ApplicationStatus;
  rawStage: string | null;
  vendorEvent: string;
  vendorEventId: string | null;
  externalApplicationId: string | null;
  externalCandidateId: string | null;
  reason: string | null;
}

export const JOB_CHANGES = ['opened', 'updated', 'closed'] as const;
export type JobChange = (typeof JOB_CHANGES)[number];

export interface JobSynced {
  eventId: string;
  occurredAt: number;
  change: JobChange;
  companyId: string;
  integrationId: string;
  platform: string;
  externalJobId: string;
  title: string;
  status: 'open' | 'closed';
  requisitionCode: string | null;
  location: string | null;
  mappedJobId: string | null;
  syncRunId: string;
}
