/**
 * The decoded `ApplicationSubmitted` event (schemas/application-submitted.avsc is the contract;
 * this type mirrors it field for field). Documents travel as references, never as bytes.
 */
import type { Platform } from '../registry/integration.ts';

export interface DocumentRef {
  url: string;
  fileName: string;
  contentType: string;
  sizeBytes: number;
  /** Lower-case hex SHA-256 of the file, checked after download. */
  sha256: string;
}

export interface CandidateLocation {
  city: string | null;
  region: string | null;
  country: string | null;
}

export interface CandidateLink {
  /** e.g. linkedin, github, website, portfolio */
  type: string;
  url: string;
}

export interface Candidate {
  firstName: string;
  lastName: string;
  email: string;
  phone: string | null;
  location: CandidateLocation | null;
  links: CandidateLink[];
}

export interface ScreeningAnswer {
  questionId: string;
  question: string;
  answer: string;
}

export interface Consent {
  dataProcessing: boolean;
  marketing: boolean;
}

export interface ApplicationSubmitted {
  eventId: string;
  /** epoch milliseconds (Avro timestamp-millis) */
  occurredAt: number;
  applicationId: string;
  companyId: string;
  integrationId: string;
  platform: Platform;
  /** Our job id on the job board. */
  jobId: string;
  /** The ATS's job / posting id / shortcode, from the integration's job mapping. */
  atsJobId: string;
  candidate: Candidate;
  resume: DocumentRef | null;
  coverLetter: DocumentRef | null;
  screeningAnswers: ScreeningAnswer[];
  source: string;
  consent: Consent;
  extras: Record<string, string>;
}
