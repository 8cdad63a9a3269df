/**
 * Realistic generated applications for the demo, the benchmarks and the tests: varied names, phone
 * formats, locations, links, screening answers and document references (URLs, never bytes).
 * Deterministic for a given seed, so a benchmark run can be repeated.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { ApplicationInput } from '../producers/application-input.ts';

const FIRST = ['Ada', 'Grace', 'Alan', 'Katherine', 'Linus', 'Margaret', 'Tim', 'Hedy', 'Dennis', 'Barbara', 'Ken', 'Frances', 'Edsger', 'Radia', 'Sophie', 'Chioma', 'Mateo', 'Aiko', 'Priya', 'Lars', 'Zoë', 'Björn', 'Amélie', 'José'];
const LAST = ['Lovelace', 'Hopper', 'Turing', 'Johnson', 'Torvalds', 'Hamilton', 'Berners-Lee', 'Lamarr', 'Ritchie', 'Liskov', 'Thompson', 'Allen', 'Dijkstra', 'Perlman', 'Wilson', 'Okafor', 'García', 'Tanaka', 'Sharma', 'Nilsson', 'Müller', "O'Brien"];
const PLACES = [
  { city: 'Berlin', region: 'Berlin', country: 'DE' },
  { city: 'Lisbon', region: 'Lisboa', country: 'PT' },
  { city: 'Austin', region: 'TX', country: 'US' },
  { city: 'Toronto', region: 'ON', country: 'CA' },
  { city: 'Lagos', region: 'Lagos', country: 'NG' },
  { city: 'Bengaluru', region: 'Karnataka', country: 'IN' },
  { city: 'Osaka', region: null, country: 'JP' },
];
const SOURCES = ['job-board', 'job-board', 'job-board', 'referral', 'linkedin', 'career-site', 'indeed'];
const QUESTIONS = [
  { questionId: 'q-work-auth', question: 'Are you authorized to work in the country of this job?', answers: ['Yes', 'No, I will need sponsorship'] },
  { questionId: 'q-notice', question: 'What is your notice period?', answers: ['Immediately', '2 weeks', '1 month', '3 months'] },
  { questionId: 'q-salary', question: 'What are your salary expectations (yearly, gross)?', answers: ['70,000 EUR', '95k USD', 'Open to discuss', ''] },
  { questionId: 'q-remote', question: 'Which working model do you prefer?', answers: ['Remote', 'Hybrid', 'On-site'] },
];

/** A small deterministic PRNG (mulberry32), so seeded runs repeat. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

export interface SampleOptions {
  companyId: string;
  /** Job ids to apply to (they should be mapped in the company's integrations). */
  jobIds: readonly string[];
  seed?: number;
  /** Base URL of document references (default: a demo file host). */
  filesBaseUrl?: string;
}

export interface SampleGenerator {
  next(): ApplicationInput;
}

function slug(s: string): string {
  return s
    .normalize('NFKD')
    .replace(/[^\w\s-]/g, '')
    .trim()
    .toLowerCase()
    .replace(/[\s']+/g, '-');
}

export function sampleApplications(opts: SampleOptions): SampleGenerator {
  const rand = prng(opts.seed ?? Date.now());
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const files = opts.filesBaseUrl ?? 'https://files.example.com/applications';
  let n = 0;
  return {
    next(): ApplicationInput {
      n += 1;
      const firstName = pick(FIRST);
      const lastName = pick(LAST);
      const applicationId = `app-${randomUUID()}`;
      const handle = `${slug(firstName)}.${slug(lastName)}`;
      const doc = (kind: string, ext: string, contentType: string, size: number) => ({
        url: `${files}/${applicationId}/${kind}.${ext}`,
        fileName: `${slug(firstName)}-${slug(lastName)}-${kind}.${ext}`,
        contentType,
        sizeBytes: size,
        sha256: createHash('sha256').update(`${applicationId}/${kind}`).digest('hex'),
      });
      const place = rand() < 0.85 ? pick(PLACES) : null;
      return {
        applicationId,
        companyId: opts.companyId,
        jobId: pick(opts.jobIds),
        occurredAt: Date.now(),
        candidate: {
          firstName,
          lastName,
          email: `${handle}+${n}@example.com`,
          phone: rand() < 0.7 ? `+49 30 ${Math.floor(1_000_000 + rand() * 8_999_999)}` : null,
          location: place,
          links: [
            ...(rand() < 0.6 ? [{ type: 'linkedin', url: `https://www.linkedin.com/in/${handle.replace('.', '-')}` }] : []),
            ...(rand() < 0.3 ? [{ type: 'github', url: `https://github.com/${handle.replace('.', '')}` }] : []),
          ],
        },
        resume: rand() < 0.95 ? doc('resume', 'pdf', 'application/pdf', Math.floor(40_000 + rand() * 900_000)) : null,
        coverLetter:
          rand() < 0.4
            ? doc('cover-letter', 'docx', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', Math.floor(10_000 + rand() * 90_000))
            : null,
        screeningAnswers: QUESTIONS.filter(() => rand() < 0.7).map((q) => ({ questionId: q.questionId, question: q.question, answer: pick(q.answers) })),
        source: pick(SOURCES),
        consent: { dataProcessing: true, marketing: rand() < 0.35 },
        extras: rand() < 0.5 ? { utm_source: pick(['newsletter', 'google', 'twitter']), utm_campaign: `spring-${2026}` } : {},
      };
    },
  };
}
