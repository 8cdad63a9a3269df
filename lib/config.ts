/**
 * The one place that reads the environment. `loadConfig(env)` turns it into a typed, validated
 * object; every module below receives the part it needs as options.
 *
 * Each variable is declared once in CONFIG_VARS with its default and meaning; the README's
 * configuration table and docker-compose.yml are checked against this list by test/config.test.ts.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export type Env = Readonly<Record<string, string | undefined>>;

export interface ConfigVar {
  env: string;
  /** Default as written in the README; undefined = no default (optional or required). */
  default?: string;
  doc: string;
  /** Values that must never be printed (logs, --help, status tables). */
  secret?: boolean;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly retriable = false;
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
  }
}

const vars: ConfigVar[] = [];

function declare(v: ConfigVar): ConfigVar {
  vars.push(v);
  return v;
}

// --- declarations: name, default, meaning ------------------------------------------------------

const V = {
  // Kafka
  KAFKA_BROKERS: declare({ env: 'KAFKA_BROKERS', default: '127.0.0.1:9092', doc: 'Comma-separated Kafka bootstrap servers.' }),
  KAFKA_CLIENT_ID: declare({ env: 'KAFKA_CLIENT_ID', default: 'ats-relay', doc: 'Kafka client id prefix (shows in broker logs and quotas).' }),
  KAFKA_SESSION_TIMEOUT_MS: declare({
    env: 'KAFKA_SESSION_TIMEOUT_MS',
    default: '6000',
    doc: "Consumer-group session: how long a dead member's partitions wait before the group hands them on (hand-over ≈ this + 1 s). Handlers never block heartbeats (sent every second), so slow ATS calls do not need a long one; 6000 is the broker's minimum (group.min.session.timeout.ms).",
  }),
  SCHEMA_REGISTRY_URL: declare({ env: 'SCHEMA_REGISTRY_URL', default: 'http://127.0.0.1:8081/apis/ccompat/v7', doc: 'Confluent-compatible Schema Registry base URL (Apicurio ccompat or Confluent).' }),

  // Topics
  TOPIC_APPLICATIONS: declare({ env: 'TOPIC_APPLICATIONS', default: 'ats.applications', doc: 'Main topic of ApplicationSubmitted events (retry and DLQ topic names derive from it).' }),
  TOPIC_PARTITIONS: declare({ env: 'TOPIC_PARTITIONS', default: '12', doc: 'Partitions of the main topic; retry tiers and DLQ get at least as many.' }),
  TOPIC_REPLICATION_FACTOR: declare({ env: 'TOPIC_REPLICATION_FACTOR', default: '1', doc: 'Replication factor for every ats-relay topic (3 in production).' }),
  TOPIC_RETENTION_MS: declare({ env: 'TOPIC_RETENTION_MS', default: '604800000', doc: 'Retention of the main and retry topics (7 days).' }),
  DLQ_RETENTION_MS: declare({ env: 'DLQ_RETENTION_MS', default: '2592000000', doc: 'Retention of the DLQ topic (30 days: time to archive and redrive).' }),
  RETRY_TIERS: declare({ env: 'RETRY_TIERS', default: 'retry-30s:30000,retry-2m:120000,retry-5m:300000', doc: 'Retry ladder as name:delayMs pairs, in order; topic = <main>.<name>.' }),
  RETRY_JITTER: declare({ env: 'RETRY_JITTER', default: '0.2', doc: 'Randomized backoff: due = now + delay × (1 ± jitter).' }),

  // Dispatcher
  DISPATCHER_MAX_IN_FLIGHT: declare({ env: 'DISPATCHER_MAX_IN_FLIGHT', default: '256', doc: 'Deliveries in flight per process, across partitions (keys stay ordered).' }),
  CIRCUIT_FAILURE_THRESHOLD: declare({ env: 'CIRCUIT_FAILURE_THRESHOLD', default: '5', doc: 'Consecutive retriable failures that open an integration\'s circuit.' }),
  CIRCUIT_OPEN_MS: declare({ env: 'CIRCUIT_OPEN_MS', default: '30000', doc: 'How long an open circuit waits before a half-open probe.' }),
  ATS_REQUEST_TIMEOUT_MS: declare({ env: 'ATS_REQUEST_TIMEOUT_MS', default: '15000', doc: 'Per-request timeout for calls to an ATS (headers and body).' }),
  ATS_ALLOW_PRIVATE_NETWORKS: declare({ env: 'ATS_ALLOW_PRIVATE_NETWORKS', default: 'false', doc: 'Allow ATS base URLs that resolve to private/loopback addresses (SSRF guard off; tests and the sandbox only).' }),
  ATS_RATE_LIMITS: declare({ env: 'ATS_RATE_LIMITS', default: '', doc: 'Per-platform client-side rate limits overriding the vendor defaults, e.g. "greenhouse=100/10s,workable=none" (requests/window, or none).' }),
  RESUME_MAX_BYTES: declare({ env: 'RESUME_MAX_BYTES', default: '10485760', doc: 'Largest resume fetched and forwarded (10 MiB).' }),
  RESUME_BYTES_IN_FLIGHT: declare({
    env: 'RESUME_BYTES_IN_FLIGHT',
    default: '67108864',
    doc: "Resume bytes a dispatcher holds at once (64 MiB; declared sizes): deliveries with a resume wait for their share beyond it, one larger than it runs alone. A resume costs ~2.3× its size in memory until the ATS answers.",
  }),

  // The way back: inbound webhooks and job import
  TOPIC_APPLICATION_STATUS: declare({ env: 'TOPIC_APPLICATION_STATUS', default: 'ats.application-status', doc: 'Topic of ApplicationStatusChanged events (what the ATS says happened to an application we delivered).' }),
  TOPIC_JOBS: declare({ env: 'TOPIC_JOBS', default: 'ats.jobs', doc: 'Topic of JobSynced events (jobs imported from each ATS: opened, updated, closed).' }),
  WEBHOOK_PUBLIC_BASE_URL: declare({ env: 'WEBHOOK_PUBLIC_BASE_URL', default: 'http://127.0.0.1:3000', doc: 'Public base URL of the API as the ATSs reach it; webhook URLs shown to customers are <this>/integrations/<id>/webhook.' }),
  WEBHOOK_MAX_BYTES: declare({ env: 'WEBHOOK_MAX_BYTES', default: '262144', doc: 'Largest inbound webhook body accepted (bigger: 413, nothing stored).' }),
  WEBHOOK_TOLERANCE_MS: declare({ env: 'WEBHOOK_TOLERANCE_MS', default: '300000', doc: 'Replay window for webhooks that carry a signed timestamp (Lever triggeredAt, generic occurredAt), both directions.' }),
  JOB_SYNC_INTERVAL_MS: declare({ env: 'JOB_SYNC_INTERVAL_MS', default: '0', doc: 'Periodic job import in the API process, per enabled integration (0 = off; run `integrations -- import-jobs` or POST /integrations/:id/sync instead).' }),
  JOB_FULL_SYNC_EVERY: declare({ env: 'JOB_FULL_SYNC_EVERY', default: '24', doc: 'Job import: every Nth run of an integration reads the whole open listing instead of the changes since the last run, to see jobs that vanished without a change (Greenhouse deletes); 1 = always full.' }),
  JOB_FULL_SYNC_MAX_AGE_MS: declare({ env: 'JOB_FULL_SYNC_MAX_AGE_MS', default: '86400000', doc: 'Job import: a run is full, whatever JOB_FULL_SYNC_EVERY says, when the last successful full run is older than this (1 day; 0 = no age limit).' }),
  JOB_SYNC_OVERLAP_MS: declare({ env: 'JOB_SYNC_OVERLAP_MS', default: '300000', doc: 'Job import: an incremental run asks for changes since the previous run\'s start minus this, against clock skew and changes committed while that run paged (5 min; re-read jobs count as unchanged).' }),

  // PostgreSQL
  DATABASE_URL: declare({ env: 'DATABASE_URL', default: 'postgres://postgres@127.0.0.1:5432/ats_relay', doc: 'PostgreSQL connection string (integrations, delivery log, outbox, redrive history).' }),
  ATS_RELAY_ENCRYPTION_KEYS: declare({ env: 'ATS_RELAY_ENCRYPTION_KEYS', doc: 'Keyring for ATS credentials at rest: "k2:<base64 32 bytes>,k1:<…>"; the first key encrypts. Required by processes that read credentials. Unset on a developer machine: the local stack\'s dev keyring (STACK_HOME/dev-keyring, made by `npm run stack -- up`) is used.', secret: true }),

  // S3 archive
  S3_ENDPOINT: declare({ env: 'S3_ENDPOINT', default: 'http://127.0.0.1:9090', doc: 'S3 endpoint (empty = AWS default endpoint for the region).' }),
  S3_REGION: declare({ env: 'S3_REGION', default: 'us-east-1', doc: 'S3 region.' }),
  S3_BUCKET: declare({ env: 'S3_BUCKET', default: 'ats-relay-dlq', doc: 'Bucket that archives the DLQ.' }),
  S3_PREFIX: declare({ env: 'S3_PREFIX', default: 'dlq-archive', doc: 'Key prefix of DLQ archive objects.' }),
  S3_FORCE_PATH_STYLE: declare({ env: 'S3_FORCE_PATH_STYLE', default: 'true', doc: 'Path-style S3 addressing (needed by S3Mock/MinIO).' }),
  S3_ACCESS_KEY_ID: declare({ env: 'S3_ACCESS_KEY_ID', default: 'local', doc: 'S3 access key id (empty = AWS default credential chain).' }),
  S3_SECRET_ACCESS_KEY: declare({ env: 'S3_SECRET_ACCESS_KEY', default: 'local-secret', doc: 'S3 secret access key.', secret: true }),
  DLQ_ARCHIVE_MAX_RECORDS: declare({ env: 'DLQ_ARCHIVE_MAX_RECORDS', default: '500', doc: 'DLQ → S3 sink: records per archive object (per partition) before it is written.' }),
  DLQ_ARCHIVE_MAX_BYTES: declare({ env: 'DLQ_ARCHIVE_MAX_BYTES', default: '5242880', doc: 'DLQ → S3 sink: buffered record bytes per partition before an object is written (5 MiB).' }),
  DLQ_ARCHIVE_MAX_AGE_MS: declare({ env: 'DLQ_ARCHIVE_MAX_AGE_MS', default: '60000', doc: 'DLQ → S3 sink: longest a dead letter waits in memory before its object is written.' }),

  // Alerts
  SMTP_URL: declare({ env: 'SMTP_URL', default: 'smtp://127.0.0.1:1025', doc: 'SMTP server for alert digests (smtp:// or smtps://, credentials in the URL).', secret: true }),
  ALERT_EMAIL_FROM: declare({ env: 'ALERT_EMAIL_FROM', default: 'ats-relay <ats-relay@localhost>', doc: 'Sender of alert digests.' }),
  ALERT_EMAIL_TO: declare({ env: 'ALERT_EMAIL_TO', default: 'ops@localhost', doc: 'Comma-separated recipients of every alert digest.' }),
  ALERT_WINDOW_MS: declare({ env: 'ALERT_WINDOW_MS', default: '300000', doc: 'Alert digest window (5 minutes).' }),
  ALERT_MAX_EMAILS_PER_HOUR: declare({ env: 'ALERT_MAX_EMAILS_PER_HOUR', default: '12', doc: 'Rate cap on alert digests; past it, failures keep aggregating into the next digest (counts carry over).' }),
  ALERT_COMPANY_RECIPIENTS: declare({ env: 'ALERT_COMPANY_RECIPIENTS', doc: 'Optional extra recipients per company, who get a digest of their own company\'s failures only: "companyA=a@x.com;b@x.com,companyB=c@y.com".' }),
  ALERT_THROTTLED_AFTER_MS: declare({ env: 'ALERT_THROTTLED_AFTER_MS', default: '3600000', doc: 'An integration throttled (deferred by its rate limit, nothing delivered since) this long is e-mailed as such, once per episode (1 hour; at least 1 minute). Never dead-lettered.' }),
  ALERT_TEST_CRASH_POINT: declare({ env: 'ALERT_TEST_CRASH_POINT', doc: 'Test hook only, unset in production: after-smtp or after-mark makes the alerts process SIGKILL itself at that step of sending a digest (the crash tests).' }),
  MAIL_API_URL: declare({ env: 'MAIL_API_URL', default: 'http://127.0.0.1:1080', doc: 'Web/REST API of the local mail catcher (maildev; Mailpit under docker compose) used by the demo and tests to read digests.' }),

  // Processes
  LOG_LEVEL: declare({ env: 'LOG_LEVEL', default: 'info', doc: 'pino log level (fatal, error, warn, info, debug, trace, silent).' }),
  HTTP_PORT: declare({ env: 'HTTP_PORT', default: '9464', doc: 'Port of a consumer\'s /healthz, /readyz and /metrics (0 = any free port).' }),
  API_PORT: declare({ env: 'API_PORT', default: '3000', doc: 'Port of the integrations HTTP API.' }),
  CONSOLE_SESSION_TTL_MS: declare({ env: 'CONSOLE_SESSION_TTL_MS', default: '28800000', doc: 'How long a web console sign-in lasts (8 hours); the session also ends with a sign-out or the revocation of its API token.' }),
  CONSOLE_COOKIE_SECURE: declare({ env: 'CONSOLE_COOKIE_SECURE', default: 'false', doc: 'Mark the web console\'s cookies Secure (HTTPS only): true in production behind TLS.' }),
  ATS_SANDBOX_PORT: declare({ env: 'ATS_SANDBOX_PORT', default: '4010', doc: 'Port of the ATS sandbox (npm run sandbox).' }),
  SHUTDOWN_TIMEOUT_MS: declare({ env: 'SHUTDOWN_TIMEOUT_MS', default: '30000', doc: 'Upper bound for a graceful shutdown after SIGTERM.' }),

  // Local stack (npm run stack)
  STACK_HOME: declare({ env: 'STACK_HOME', default: '~/.cache/ats-relay', doc: 'Where the local stack caches downloads and keeps data, logs and pid files.' }),
  STACK_KAFKA_VERSION: declare({ env: 'STACK_KAFKA_VERSION', default: '4.1.1', doc: 'Apache Kafka version run by the local stack (Maven Central).' }),
  STACK_KAFKA_CONTROLLER_PORT: declare({ env: 'STACK_KAFKA_CONTROLLER_PORT', default: '9093', doc: 'KRaft controller port of the local broker.' }),
  STACK_KAFKA_HEAP_MB: declare({ env: 'STACK_KAFKA_HEAP_MB', default: '512', doc: 'Heap of the local Kafka broker.' }),
  STACK_REGISTRY_HEAP_MB: declare({ env: 'STACK_REGISTRY_HEAP_MB', default: '384', doc: 'Heap of the local Apicurio registry.' }),
  STACK_S3_HEAP_MB: declare({ env: 'STACK_S3_HEAP_MB', default: '256', doc: 'Heap of the local S3Mock.' }),
  STACK_REGISTRY_LINE: declare({ env: 'STACK_REGISTRY_LINE', default: 'auto', doc: 'Apicurio line the local stack runs: 3 (3.3.x, needs Java 21+), 2 (2.6.x on Java 17) or auto (3 when a Java 21+ is found).' }),
  STACK_JAVA21_HOME: declare({ env: 'STACK_JAVA21_HOME', doc: 'A Java 21+ home for Apicurio 3.x; found under /usr/lib/jvm when unset. Without one the stack runs Apicurio 2.6 on Java 17.' }),
  STACK_READY_TIMEOUT_MS: declare({ env: 'STACK_READY_TIMEOUT_MS', default: '180000', doc: 'How long `stack up` waits for each service to answer.' }),
  TEST_STACK: declare({ env: 'TEST_STACK', default: 'local', doc: 'What `npm test` runs against: local (the stack above, no Docker) or containers (testcontainers: the images of docker-compose.yml; needs a Docker engine).' }),
} as const;

export const CONFIG_VARS: readonly ConfigVar[] = vars;

// --- typed shape -------------------------------------------------------------------------------

export interface RetryTier {
  /** Short name, e.g. `retry-30s`; also the suffix of the topic and consumer group. */
  name: string;
  topic: string;
  delayMs: number;
}

export interface TopicsConfig {
  applications: string;
  retryTiers: RetryTier[];
  dlq: string;
  partitions: number;
  replicationFactor: number;
  retentionMs: number;
  dlqRetentionMs: number;
}

export interface Config {
  kafka: { brokers: string[]; clientId: string; sessionTimeoutMs: number };
  schemaRegistry: { url: string };
  topics: TopicsConfig;
  retry: { jitter: number };
  dispatcher: { maxInFlight: number; circuitFailureThreshold: number; circuitOpenMs: number };
  ats: {
    requestTimeoutMs: number;
    allowPrivateNetworks: boolean;
    resumeMaxBytes: number;
    resumeBytesInFlight: number;
    /** Per platform: a token bucket (burst = requests per window) or null for no client-side limit. */
    rateLimits: Partial<Record<string, { capacity: number; refillPerSecond: number } | null>>;
  };
  database: { url: string };
  crypto: {
    encryptionKeys: string | undefined;
    /** Where the keyring came from: the variable, or the local stack's development keyring file. */
    source: 'env' | 'dev-keyring' | 'none';
  };
  s3: {
    endpoint: string | undefined;
    region: string;
    bucket: string;
    prefix: string;
    forcePathStyle: boolean;
    accessKeyId: string | undefined;
    secretAccessKey: string | undefined;
  };
  archive: { maxRecords: number; maxBytes: number; maxAgeMs: number };
  alerts: {
    smtpUrl: string;
    from: string;
    to: string[];
    windowMs: number;
    mailApiUrl: string;
    maxEmailsPerHour: number;
    /** companyId → extra recipients of that company's own digest. */
    companyRecipients: Record<string, string[]>;
    /** Throttling episode length that is alerted. */
    throttledAfterMs: number;
    /** Test hook: the alerts process kills itself at this step of a digest send. */
    testCrashPoint: 'after-smtp' | 'after-mark' | undefined;
  };
  log: { level: string };
  /** Inbound webhooks and job import (the way back from the ATS). */
  inbound: {
    statusTopic: string;
    jobsTopic: string;
    publicBaseUrl: string;
    webhookMaxBytes: number;
    webhookToleranceMs: number;
    jobSyncIntervalMs: number;
    /** Incremental job import: when a run is full instead, and the overlap of an incremental one. */
    jobSync: { fullEvery: number; fullMaxAgeMs: number; overlapMs: number };
  };
  http: { port: number; apiPort: number; sandboxPort: number; shutdownTimeoutMs: number };
  console: { sessionTtlMs: number; cookieSecure: boolean };
  stack: {
    home: string;
    kafkaVersion: string;
    kafkaPort: number;
    kafkaControllerPort: number;
    kafkaHeapMb: number;
    registryPort: number;
    registryHeapMb: number;
    s3Port: number;
    s3HeapMb: number;
    smtpPort: number;
    mailWebPort: number;
    java21Home: string | undefined;
    registryLine: 'auto' | '2' | '3';
    /** `npm test`'s stack: the local one (no Docker) or testcontainers (test/support/containers.ts). */
    testStack: 'local' | 'containers';
    readyTimeoutMs: number;
  };
}

// --- parsing -----------------------------------------------------------------------------------

class Reader {
  readonly errors: ConfigError[] = [];
  constructor(private readonly env: Env) {}

  raw(v: ConfigVar): string | undefined {
    const value = this.env[v.env];
    if (value !== undefined && value.trim() !== '') return value.trim();
    return v.default;
  }

  fail(v: ConfigVar, message: string): never {
    throw new ConfigError(v.env, message);
  }

  guard<T>(fn: () => T, fallback: T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof ConfigError) {
        this.errors.push(err);
        return fallback;
      }
      throw err;
    }
  }

  str(v: ConfigVar): string {
    return this.guard(() => this.raw(v) ?? this.fail(v, 'is required'), '');
  }

  optional(v: ConfigVar): string | undefined {
    return this.raw(v);
  }

  int(v: ConfigVar, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    return this.guard(() => {
      const s = this.raw(v) ?? this.fail(v, 'is required');
      if (!/^-?\d+$/.test(s)) this.fail(v, `must be a whole number, got "${s}"`);
      const n = Number(s);
      if (n < min || n > max) this.fail(v, `must be between ${min} and ${max}, got ${n}`);
      return n;
    }, 0);
  }

  num(v: ConfigVar, min: number, max: number): number {
    return this.guard(() => {
      const s = this.raw(v) ?? this.fail(v, 'is required');
      const n = Number(s);
      if (!Number.isFinite(n) || n < min || n > max) this.fail(v, `must be a number between ${min} and ${max}, got "${s}"`);
      return n;
    }, 0);
  }

  bool(v: ConfigVar): boolean {
    return this.guard(() => {
      const s = (this.raw(v) ?? 'false').toLowerCase();
      if (['true', '1', 'yes'].includes(s)) return true;
      if (['false', '0', 'no'].includes(s)) return false;
      return this.fail(v, `must be true or false, got "${s}"`);
    }, false);
  }

  url(v: ConfigVar, protocols: string[]): string {
    return this.guard(() => {
      const s = this.raw(v) ?? this.fail(v, 'is required');
      let u: URL;
      try {
        u = new URL(s);
      } catch {
        return this.fail(v, `must be a URL (${protocols.join(' or ')}), got "${redactUrl(s)}"`);
      }
      if (!protocols.includes(u.protocol)) this.fail(v, `must use ${protocols.join(' or ')}, got "${u.protocol}"`);
      return s.replace(/\/+$/, '');
    }, '');
  }

  list(v: ConfigVar): string[] {
    return (this.raw(v) ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  }
}

/** Hide the password of a URL so it can be printed. */
export function redactUrl(s: string): string {
  try {
    const u = new URL(s);
    if (u.password) u.password = '****';
    return u.toString();
  } catch {
    return s.replace(/\/\/[^@/]*@/, '//****@');
  }
}

function portOf(v: ConfigVar, url: string, r: Reader): number {
  return r.guard(() => {
    const u = new URL(url);
    const port = u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
    if (!port) r.fail(v, 'needs an explicit port');
    return port;
  }, 0);
}

function parseRetryTiers(r: Reader, mainTopic: string): RetryTier[] {
  return r.guard(() => {
    const raw = r.raw(V.RETRY_TIERS) ?? '';
    const tiers = raw.split(',').map((part) => {
      const m = /^\s*([a-z0-9][a-z0-9-]*)\s*:\s*(\d+)\s*$/.exec(part);
      if (!m) r.fail(V.RETRY_TIERS, `each tier is name:delayMs (e.g. retry-30s:30000), got "${part}"`);
      return { name: m[1]!, topic: `${mainTopic}.${m[1]!}`, delayMs: Number(m[2]) };
    });
    if (tiers.length === 0) r.fail(V.RETRY_TIERS, 'needs at least one tier');
    if (new Set(tiers.map((t) => t.name)).size !== tiers.length) r.fail(V.RETRY_TIERS, 'tier names must be unique');
    return tiers;
  }, []);
}

function parseCompanyRecipients(r: Reader): Record<string, string[]> {
  return r.guard(() => {
    const out: Record<string, string[]> = {};
    for (const part of r.list(V.ALERT_COMPANY_RECIPIENTS)) {
      const m = /^([^=\s]+)\s*=\s*(.+)$/.exec(part);
      if (!m) r.fail(V.ALERT_COMPANY_RECIPIENTS, `each entry is companyId=addr;addr, got "${part}"`);
      const addresses = m[2]!.split(';').map((a) => a.trim()).filter(Boolean);
      for (const a of addresses) if (!/^[^@\s]+@[^@\s]+$/.test(a)) r.fail(V.ALERT_COMPANY_RECIPIENTS, `"${a}" is not an e-mail address`);
      out[m[1]!] = [...(out[m[1]!] ?? []), ...addresses];
    }
    return out;
  }, {});
}

const PLATFORM_NAMES = ['greenhouse', 'lever', 'workable', 'ashby', 'generic'];

function parseRateLimits(r: Reader): Config['ats']['rateLimits'] {
  return r.guard(() => {
    const out: Config['ats']['rateLimits'] = {};
    for (const part of r.list(V.ATS_RATE_LIMITS)) {
      const m = /^([a-z]+)=(?:(none)|(\d+)\/(\d+)s)$/.exec(part);
      if (!m || !PLATFORM_NAMES.includes(m[1]!)) {
        r.fail(V.ATS_RATE_LIMITS, `each entry is <platform>=<requests>/<seconds>s or <platform>=none (platforms: ${PLATFORM_NAMES.join(', ')}), got "${part}"`);
      }
      const requests = Number(m[3]);
      const seconds = Number(m[4]);
      if (!m[2] && (requests < 1 || seconds < 1)) r.fail(V.ATS_RATE_LIMITS, `"${part}" needs at least 1 request per at least 1 s`);
      out[m[1]!] = m[2] ? null : { capacity: requests, refillPerSecond: requests / seconds };
    }
    return out;
  }, {});
}

/** The development keyring `npm run stack -- up` writes; only ever a fallback for an unset variable. */
export function devKeyringPath(stackHome: string): string {
  return path.join(stackHome, 'dev-keyring');
}

function cryptoConfig(fromEnv: string | undefined, stackHome: string): Config['crypto'] {
  if (fromEnv) return { encryptionKeys: fromEnv, source: 'env' };
  try {
    const dev = readFileSync(devKeyringPath(stackHome), 'utf8').trim();
    if (dev) return { encryptionKeys: dev, source: 'dev-keyring' };
  } catch {
    // no local stack here: the variable is simply missing, and whoever needs it says so
  }
  return { encryptionKeys: undefined, source: 'none' };
}

function expandHome(p: string): string {
  return p.startsWith('~') ? path.join(os.homedir(), p.slice(1)) : p;
}

function hostPort(v: ConfigVar, broker: string, r: Reader): number {
  return r.guard(() => {
    const m = /:(\d+)$/.exec(broker);
    if (!m) r.fail(v, `each broker is host:port, got "${broker}"`);
    return Number(m[1]);
  }, 0);
}

/**
 * Build the configuration from an environment. Throws one ConfigError listing every bad variable
 * (each message names the variable and what it must be).
 */
export function loadConfig(env: Env = process.env): Config {
  const r = new Reader(env);
  const applications = r.str(V.TOPIC_APPLICATIONS);
  const brokers = r.list(V.KAFKA_BROKERS);
  if (brokers.length === 0) r.errors.push(new ConfigError('KAFKA_BROKERS', 'needs at least one host:port'));
  const registryUrl = r.url(V.SCHEMA_REGISTRY_URL, ['http:', 'https:']);
  const s3Endpoint = r.optional(V.S3_ENDPOINT) ? r.url(V.S3_ENDPOINT, ['http:', 'https:']) : undefined;
  const smtpUrl = r.url(V.SMTP_URL, ['smtp:', 'smtps:']);
  const mailApiUrl = r.url(V.MAIL_API_URL, ['http:', 'https:']);
  const alertTo = r.list(V.ALERT_EMAIL_TO);
  for (const to of alertTo) {
    if (!/^[^@\s]+@[^@\s]+$/.test(to)) r.errors.push(new ConfigError('ALERT_EMAIL_TO', `"${to}" is not an e-mail address`));
  }
  const databaseUrl = r.url(V.DATABASE_URL, ['postgres:', 'postgresql:']);
  const partitions = r.int(V.TOPIC_PARTITIONS, 1, 10_000);

  const config: Config = {
    kafka: { brokers, clientId: r.str(V.KAFKA_CLIENT_ID), sessionTimeoutMs: r.int(V.KAFKA_SESSION_TIMEOUT_MS, 6_000) },
    schemaRegistry: { url: registryUrl },
    topics: {
      applications,
      retryTiers: parseRetryTiers(r, applications),
      dlq: `${applications}.dlq`,
      partitions,
      replicationFactor: r.int(V.TOPIC_REPLICATION_FACTOR, 1, 10),
      retentionMs: r.int(V.TOPIC_RETENTION_MS, 60_000),
      dlqRetentionMs: r.int(V.DLQ_RETENTION_MS, 60_000),
    },
    retry: { jitter: r.num(V.RETRY_JITTER, 0, 0.9) },
    dispatcher: {
      maxInFlight: r.int(V.DISPATCHER_MAX_IN_FLIGHT, 1, 100_000),
      circuitFailureThreshold: r.int(V.CIRCUIT_FAILURE_THRESHOLD, 1, 1_000),
      circuitOpenMs: r.int(V.CIRCUIT_OPEN_MS, 0),
    },
    ats: {
      requestTimeoutMs: r.int(V.ATS_REQUEST_TIMEOUT_MS, 100, 600_000),
      allowPrivateNetworks: r.bool(V.ATS_ALLOW_PRIVATE_NETWORKS),
      resumeMaxBytes: r.int(V.RESUME_MAX_BYTES, 1),
      resumeBytesInFlight: r.int(V.RESUME_BYTES_IN_FLIGHT, 1),
      rateLimits: parseRateLimits(r),
    },
    database: { url: databaseUrl },
    crypto: cryptoConfig(r.optional(V.ATS_RELAY_ENCRYPTION_KEYS), expandHome(r.str(V.STACK_HOME))),
    s3: {
      endpoint: s3Endpoint,
      region: r.str(V.S3_REGION),
      bucket: r.str(V.S3_BUCKET),
      prefix: (r.raw(V.S3_PREFIX) ?? '').replace(/^\/+|\/+$/g, ''),
      forcePathStyle: r.bool(V.S3_FORCE_PATH_STYLE),
      accessKeyId: r.optional(V.S3_ACCESS_KEY_ID),
      secretAccessKey: r.optional(V.S3_SECRET_ACCESS_KEY),
    },
    archive: {
      maxRecords: r.int(V.DLQ_ARCHIVE_MAX_RECORDS, 1, 1_000_000),
      maxBytes: r.int(V.DLQ_ARCHIVE_MAX_BYTES, 1_024, 1_073_741_824),
      maxAgeMs: r.int(V.DLQ_ARCHIVE_MAX_AGE_MS, 100),
    },
    alerts: {
      smtpUrl,
      from: r.str(V.ALERT_EMAIL_FROM),
      to: alertTo,
      windowMs: r.int(V.ALERT_WINDOW_MS, 100),
      mailApiUrl,
      maxEmailsPerHour: r.int(V.ALERT_MAX_EMAILS_PER_HOUR, 1, 10_000),
      companyRecipients: parseCompanyRecipients(r),
      throttledAfterMs: r.int(V.ALERT_THROTTLED_AFTER_MS, 60_000),
      testCrashPoint: r.guard(() => {
        const point = r.optional(V.ALERT_TEST_CRASH_POINT);
        if (point !== undefined && point !== 'after-smtp' && point !== 'after-mark') r.fail(V.ALERT_TEST_CRASH_POINT, `must be after-smtp or after-mark (or unset), got "${point}"`);
        return point as 'after-smtp' | 'after-mark' | undefined;
      }, undefined),
    },
    log: { level: r.str(V.LOG_LEVEL) },
    inbound: {
      statusTopic: r.str(V.TOPIC_APPLICATION_STATUS),
      jobsTopic: r.str(V.TOPIC_JOBS),
      publicBaseUrl: r.url(V.WEBHOOK_PUBLIC_BASE_URL, ['http:', 'https:']).replace(/\/+$/, ''),
      webhookMaxBytes: r.int(V.WEBHOOK_MAX_BYTES, 1_024, 10_485_760),
      webhookToleranceMs: r.int(V.WEBHOOK_TOLERANCE_MS, 1_000),
      jobSyncIntervalMs: r.int(V.JOB_SYNC_INTERVAL_MS, 0),
      jobSync: {
        fullEvery: r.int(V.JOB_FULL_SYNC_EVERY, 1, 100_000),
        fullMaxAgeMs: r.int(V.JOB_FULL_SYNC_MAX_AGE_MS, 0),
        overlapMs: r.int(V.JOB_SYNC_OVERLAP_MS, 0, 86_400_000),
      },
    },
    http: {
      port: r.int(V.HTTP_PORT, 0, 65_535),
      apiPort: r.int(V.API_PORT, 0, 65_535),
      sandboxPort: r.int(V.ATS_SANDBOX_PORT, 0, 65_535),
      shutdownTimeoutMs: r.int(V.SHUTDOWN_TIMEOUT_MS, 1_000),
    },
    console: { sessionTtlMs: r.int(V.CONSOLE_SESSION_TTL_MS, 60_000), cookieSecure: r.bool(V.CONSOLE_COOKIE_SECURE) },
    stack: {
      home: expandHome(r.str(V.STACK_HOME)),
      kafkaVersion: r.str(V.STACK_KAFKA_VERSION),
      kafkaPort: brokers[0] ? hostPort(V.KAFKA_BROKERS, brokers[0], r) : 9092,
      kafkaControllerPort: r.int(V.STACK_KAFKA_CONTROLLER_PORT, 1, 65_535),
      kafkaHeapMb: r.int(V.STACK_KAFKA_HEAP_MB, 128, 65_536),
      registryPort: registryUrl ? portOf(V.SCHEMA_REGISTRY_URL, registryUrl, r) : 8081,
      registryHeapMb: r.int(V.STACK_REGISTRY_HEAP_MB, 128, 65_536),
      s3Port: s3Endpoint ? portOf(V.S3_ENDPOINT, s3Endpoint, r) : 9090,
      s3HeapMb: r.int(V.STACK_S3_HEAP_MB, 128, 65_536),
      smtpPort: smtpUrl ? portOf(V.SMTP_URL, smtpUrl, r) : 1025,
      mailWebPort: mailApiUrl ? portOf(V.MAIL_API_URL, mailApiUrl, r) : 1080,
      java21Home: r.optional(V.STACK_JAVA21_HOME),
      registryLine: r.guard(() => {
        const line = r.str(V.STACK_REGISTRY_LINE);
        if (line !== 'auto' && line !== '2' && line !== '3') r.fail(V.STACK_REGISTRY_LINE, `must be auto, 2 or 3, got "${line}"`);
        return line as 'auto' | '2' | '3';
      }, 'auto'),
      readyTimeoutMs: r.int(V.STACK_READY_TIMEOUT_MS, 1_000),
      testStack: r.guard(() => {
        const stack = r.str(V.TEST_STACK);
        if (stack !== 'local' && stack !== 'containers') r.fail(V.TEST_STACK, `must be local or containers, got "${stack}"`);
        return stack as 'local' | 'containers';
      }, 'local'),
    },
  };

  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  if (!levels.includes(config.log.level)) {
    r.errors.push(new ConfigError('LOG_LEVEL', `must be one of ${levels.join(', ')}, got "${config.log.level}"`));
  }

  if (r.errors.length === 1) throw r.errors[0];
  if (r.errors.length > 1) {
    const err = new ConfigError(r.errors.map((e) => e.variable).join(', '), '\n  ' + r.errors.map((e) => e.message).join('\n  '));
    throw err;
  }
  return config;
}

/** The environment that reproduces `config` for a child process (used by the demo and tests). */
export function envFromConfig(config: Config): Record<string, string> {
  const env: Record<string, string> = {
    KAFKA_BROKERS: config.kafka.brokers.join(','),
    KAFKA_CLIENT_ID: config.kafka.clientId,
    KAFKA_SESSION_TIMEOUT_MS: String(config.kafka.sessionTimeoutMs),
    SCHEMA_REGISTRY_URL: config.schemaRegistry.url,
    TOPIC_APPLICATIONS: config.topics.applications,
    TOPIC_PARTITIONS: String(config.topics.partitions),
    TOPIC_REPLICATION_FACTOR: String(config.topics.replicationFactor),
    TOPIC_RETENTION_MS: String(config.topics.retentionMs),
    DLQ_RETENTION_MS: String(config.topics.dlqRetentionMs),
    RETRY_TIERS: config.topics.retryTiers.map((t) => `${t.name}:${t.delayMs}`).join(','),
    RETRY_JITTER: String(config.retry.jitter),
    DISPATCHER_MAX_IN_FLIGHT: String(config.dispatcher.maxInFlight),
    CIRCUIT_FAILURE_THRESHOLD: String(config.dispatcher.circuitFailureThreshold),
    CIRCUIT_OPEN_MS: String(config.dispatcher.circuitOpenMs),
    ATS_REQUEST_TIMEOUT_MS: String(config.ats.requestTimeoutMs),
    ATS_ALLOW_PRIVATE_NETWORKS: String(config.ats.allowPrivateNetworks),
    ATS_RATE_LIMITS: Object.entries(config.ats.rateLimits)
      .map(([platform, spec]) => (spec ? `${platform}=${spec.capacity}/${Math.round(spec.capacity / spec.refillPerSecond)}s` : `${platform}=none`))
      .join(','),
    RESUME_MAX_BYTES: String(config.ats.resumeMaxBytes),
    RESUME_BYTES_IN_FLIGHT: String(config.ats.resumeBytesInFlight),
    DATABASE_URL: config.database.url,
    S3_ENDPOINT: config.s3.endpoint ?? '',
    S3_REGION: config.s3.region,
    S3_BUCKET: config.s3.bucket,
    S3_PREFIX: config.s3.prefix,
    S3_FORCE_PATH_STYLE: String(config.s3.forcePathStyle),
    S3_ACCESS_KEY_ID: config.s3.accessKeyId ?? '',
    S3_SECRET_ACCESS_KEY: config.s3.secretAccessKey ?? '',
    DLQ_ARCHIVE_MAX_RECORDS: String(config.archive.maxRecords),
    DLQ_ARCHIVE_MAX_BYTES: String(config.archive.maxBytes),
    DLQ_ARCHIVE_MAX_AGE_MS: String(config.archive.maxAgeMs),
    SMTP_URL: config.alerts.smtpUrl,
    ALERT_EMAIL_FROM: config.alerts.from,
    ALERT_EMAIL_TO: config.alerts.to.join(','),
    ALERT_WINDOW_MS: String(config.alerts.windowMs),
    MAIL_API_URL: config.alerts.mailApiUrl,
    ALERT_MAX_EMAILS_PER_HOUR: String(config.alerts.maxEmailsPerHour),
    ALERT_COMPANY_RECIPIENTS: Object.entries(config.alerts.companyRecipients)
      .map(([company, to]) => `${company}=${to.join(';')}`)
      .join(','),
    ALERT_THROTTLED_AFTER_MS: String(config.alerts.throttledAfterMs),
    LOG_LEVEL: config.log.level,
    TOPIC_APPLICATION_STATUS: config.inbound.statusTopic,
    TOPIC_JOBS: config.inbound.jobsTopic,
    WEBHOOK_PUBLIC_BASE_URL: config.inbound.publicBaseUrl,
    WEBHOOK_MAX_BYTES: String(config.inbound.webhookMaxBytes),
    WEBHOOK_TOLERANCE_MS: String(config.inbound.webhookToleranceMs),
    JOB_SYNC_INTERVAL_MS: String(config.inbound.jobSyncIntervalMs),
    JOB_FULL_SYNC_EVERY: String(config.inbound.jobSync.fullEvery),
    JOB_FULL_SYNC_MAX_AGE_MS: String(config.inbound.jobSync.fullMaxAgeMs),
    JOB_SYNC_OVERLAP_MS: String(config.inbound.jobSync.overlapMs),
    HTTP_PORT: String(config.http.port),
    API_PORT: String(config.http.apiPort),
    CONSOLE_SESSION_TTL_MS: String(config.console.sessionTtlMs),
    CONSOLE_COOKIE_SECURE: String(config.console.cookieSecure),
    ATS_SANDBOX_PORT: String(config.http.sandboxPort),
    SHUTDOWN_TIMEOUT_MS: String(config.http.shutdownTimeoutMs),
    STACK_HOME: config.stack.home,
    STACK_KAFKA_VERSION: config.stack.kafkaVersion,
    STACK_KAFKA_CONTROLLER_PORT: String(config.stack.kafkaControllerPort),
    STACK_KAFKA_HEAP_MB: String(config.stack.kafkaHeapMb),
    STACK_REGISTRY_HEAP_MB: String(config.stack.registryHeapMb),
    STACK_S3_HEAP_MB: String(config.stack.s3HeapMb),
    STACK_READY_TIMEOUT_MS: String(config.stack.readyTimeoutMs),
    STACK_REGISTRY_LINE: config.stack.registryLine,
    TEST_STACK: config.stack.testStack,
  };
  if (config.crypto.encryptionKeys && config.crypto.source === 'env') env.ATS_RELAY_ENCRYPTION_KEYS = config.crypto.encryptionKeys;
  if (config.alerts.testCrashPoint) env.ALERT_TEST_CRASH_POINT = config.alerts.testCrashPoint;
  if (config.stack.java21Home) env.STACK_JAVA21_HOME = config.stack.java21Home;
  return env;
}
