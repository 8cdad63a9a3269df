/**
 * `npm run redrive -- [filters] [--dry-run]`: send dead letters back through the pipeline after the
 * cause is fixed; `npm run redrive -- history`: the runs recorded so far. See "Redrive" in the README.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { numberFlag, runMain, UsageError, wholeNumberFlag } from '../../lib/cli.ts';
import type { Config } from '../../lib/config.ts';
import { createPool } from '../../lib/db.ts';
import { createKafka, createProducer, type Producer } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/logger.ts';
import { createS3Client } from '../../lib/s3.ts';
import { createEventCodec } from '../../lib/serde.ts';
import { parseFilters } from './filters.ts';
import { createRedriveRuns } from './history.ts';
import { createProgress } from './progress.ts';
import { DEFAULT_MAX_REDRIVES, redrive, type RedriveReport } from './redrive.ts';
import { renderHistory, renderReport } from './report.ts';
import type { RecordSource } from './source.ts';
import { createDlqSource } from './source-dlq.ts';
import { createS3Source, parseS3Location } from './source-s3.ts';

const USAGE = `Usage: npm run redrive -- [source] [filters] [--dry-run] [--to <topic>] [options]
       npm run redrive -- history [--limit <n>]

Sends dead letters back through the pipeline once their cause is fixed (credentials corrected, ATS
back up). Key, value bytes and headers are kept; the try count is reset; ats-redrive-id,
ats-redrive-count and ats-redriven-at are added. Try --dry-run first.

Source (default: the DLQ topic, read by offset range without committing for any consumer group):
  --from-s3 <prefix>           Read the S3 archive instead: a key prefix in S3_BUCKET, or s3://bucket/prefix
                               (e.g. dlq-archive/ats.applications.dlq/dt=2025-05-01/).

Filters (all given filters must match; a repeated flag means any of its values):
  --company <id>               Company of the event (repeatable).
  --platform <name>            ATS platform of the event: greenhouse, lever, workable, ashby, generic (repeatable).
  --error-code <code>          Latest error, header ats-error-code (repeatable), e.g. auth_failed.
  --since <time>               Dead-lettered at or after (the record's DLQ timestamp); ISO 8601 or epoch ms.
  --until <time>               Dead-lettered before (exclusive).
  --application-id <id>        Application id (repeatable).
  --application-ids-file <f>   Application ids, one per line (# comments allowed).
  --partition <p>              DLQ partition(s): 3, 0,2 or 0-3 (repeatable).
  --offset <range>             DLQ offsets, inclusive: 120, 100-250, 100- or -250 (use with --partition).
  Records whose value does not decode never match --company, --platform or --application-id.

Output and target:
  --dry-run                    Print what matches (grouped by company, platform and error code, plus a
                               sample) and produce nothing. The run is still recorded.
  --to <topic>                 Target: the main topic (default, TOPIC_APPLICATIONS) or a retry tier, by name
                               (retry-30s) or topic. The first retry tier keeps a large redrive off the main
                               topic's consumers.
  --rate <n>                   At most n messages per second (≥ 0.1; default: no cap).
  --max-redrives <n>           Loop guard: refuse records already redriven n times (default ${DEFAULT_MAX_REDRIVES}).
  --sample <n>                 Matched records listed in the report (default 5).
  --operator <name>            Recorded as who ran it (default: the OS user name).

history:
  --limit <n>                  Runs listed, newest first (default 20).

Exit codes: 0 done (refused records are reported, not an error), 1 the run failed (counts say what
was sent; re-running is safe), 2 bad flags or configuration. Ctrl-C/SIGTERM stops the run, sends what
is buffered and records it as "interrupted" in the history.
Environment: KAFKA_BROKERS, TOPIC_APPLICATIONS, RETRY_TIERS, SCHEMA_REGISTRY_URL, DATABASE_URL,
S3_* (for --from-s3).`;

/** The main topic or a retry tier (by name or topic); anything else (the DLQ itself!) is refused. */
export function resolveTarget(config: Config, to: string | undefined): string {
  if (to === undefined || to === config.topics.applications) return config.topics.applications;
  const tier = config.topics.retryTiers.find((t) => t.name === to || t.topic === to);
  if (tier) return tier.topic;
  const allowed = [config.topics.applications, ...config.topics.retryTiers.flatMap((t) => [t.name, t.topic])];
  throw new UsageError(`--to: "${to}" is neither the main topic nor a retry tier (one of ${allowed.join(', ')})`);
}

function osUser(): string {
  try {
    return os.userInfo().username;
  } catch {
    return 'unknown';
  }
}

function clearMessage(err: unknown): string {
  const e = err as { code?: string; message?: string };
  if (e.code === '42P01') return `${e.message ?? 'missing table'} — run \`npm run db:migrate\` first`;
  return e.message ?? String(err);
}

await runMain({
  name: 'redrive',
  usage: USAGE,
  options: {
    'from-s3': { type: 'string' },
    company: { type: 'string', multiple: true },
    platform: { type: 'string', multiple: true },
    'error-code': { type: 'string', multiple: true },
    since: { type: 'string' },
    until: { type: 'string' },
    'application-id': { type: 'string', multiple: true },
    'application-ids-file': { type: 'string' },
    partition: { type: 'string', multiple: true },
    offset: { type: 'string' },
    'dry-run': { type: 'boolean' },
    to: { type: 'string' },
    rate: { type: 'string' },
    'max-redrives': { type: 'string' },
    sample: { type: 'string' },
    operator: { type: 'string' },
    limit: { type: 'string' },
  },
  async run({ config, values, positionals, onShutdown }) {
    const logger = createLogger({ level: config.log.level, name: 'redrive' });
    const command = positionals[0];
    if (positionals.length > 1 || (command !== undefined && command !== 'history')) {
      throw new UsageError(`unexpected argument(s) ${positionals.map((p) => `"${p}"`).join(' ')} (the only command is "history")`);
    }

    if (command === 'history') {
      const limit = wholeNumberFlag('limit', values.limit) ?? 20;
      const pool = createPool(config.database, { max: 1, applicationName: 'ats-relay redrive' });
      onShutdown(() => pool.end());
      try {
        console.log(renderHistory(await createRedriveRuns(pool).list(limit)));
        return 0;
      } catch (err) {
        process.stderr.write(`redrive: ${clearMessage(err)}\n`);
        return 1;
      }
    }
    if (values.limit !== undefined) throw new UsageError('--limit belongs to "history"');

    const filters = await parseFilters(values);
    const dryRun = values['dry-run'] === true;
    const targetTopic = resolveTarget(config, values.to);
    const ratePerSecond = numberFlag('rate', values.rate, 0.1);
    const maxRedrives = wholeNumberFlag('max-redrives', values['max-redrives']) ?? DEFAULT_MAX_REDRIVES;
    const sampleSize = wholeNumberFlag('sample', values.sample, 0) ?? 5;
    const operator = values.operator?.trim() || osUser();
    const runId = randomUUID();

    const pool = createPool(config.database, { max: 2, applicationName: 'ats-relay redrive' });
    onShutdown(() => pool.end());
    const kafka = createKafka(config.kafka, logger, { clientIdSuffix: 'redrive' });
    let source: RecordSource;
    if (values['from-s3'] !== undefined) {
      const { bucket, prefix } = parseS3Location(values['from-s3'], config.s3.bucket);
      const s3 = createS3Client(config.s3);
      onShutdown(() => s3.destroy());
      source = createS3Source({ s3, bucket, prefix, filters, logger });
    } else {
      source = createDlqSource({ kafka, topic: config.topics.dlq, filters, groupId: `ats-relay.redrive.${runId}`, logger });
    }
    onShutdown(() => source.close());
    let producer: Producer | undefined;
    if (!dryRun) {
      producer = createProducer(kafka);
      const p = producer;
      onShutdown(() => p.disconnect());
    }

    // SIGINT/SIGTERM: stop reading, send what is buffered, record the run as interrupted.
    const abort = new AbortController();
    let running: Promise<RedriveReport> | undefined;
    onShutdown(async () => {
      abort.abort();
      await running?.catch(() => undefined);
    });

    let report: RedriveReport;
    try {
      await producer?.connect();
      running = redrive({
        runId,
        source,
        filters,
        targetTopic,
        dryRun,
        maxRedrives,
        ratePerSecond,
        operator,
        codec: createEventCodec({ registryUrl: config.schemaRegistry.url, topic: config.topics.applications }),
        producer,
        runs: createRedriveRuns(pool),
        logger,
        signal: abort.signal,
        progress: (total) => createProgress({ stream: process.stderr, total, dryRun }),
        sampleSize,
      });
      report = await running;
    } catch (err) {
      process.stderr.write(`redrive: ${clearMessage(err)}\n`);
      return 1;
    }
    console.log(renderReport(report));
    if (report.status === 'failed') {
      process.stderr.write(`redrive: failed: ${report.error ?? 'unknown error'} (redrive id ${report.id}; ${report.produced} record(s) were sent before the failure — re-running is safe)\n`);
      return 1;
    }
    if (report.status === 'interrupted') {
      process.stderr.write(`redrive: interrupted after sending ${report.produced} record(s) (redrive id ${report.id}; re-running is safe)\n`);
      return 1;
    }
    return 0;
  },
});
