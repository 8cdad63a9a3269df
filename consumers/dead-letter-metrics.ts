/**
 * Prometheus metrics of the dead-letter consumers (the DLQ → S3 sink and the alert consumer), one
 * registry per process, served on /metrics like the dispatcher's.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export interface DeadLetterMetrics {
  registry: Registry;
  /** S3 sink */
  archivedRecords: Counter;
  archivedObjects: Counter;
  archivedBytes: Counter;
  staleObjectsRemoved: Counter;
  s3Failures: Counter<'operation'>;
  bufferedRecords: Gauge;
  /** Alert consumer */
  digestsSent: Counter;
  digestMails: Counter<'audience'>;
  digestRecords: Counter;
  smtpFailures: Counter;
  digestsDeferred: Counter;
  pendingRecords: Gauge;
  /** Both */
  decodeFailures: Counter;
  commitFailures: Counter;
  lag: Gauge<'topic' | 'partition'>;
}

export function createDeadLetterMetrics(role: string): DeadLetterMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ role });
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    archivedRecords: new Counter({ name: 'ats_relay_dlq_archived_records_total', help: 'Dead letters written to S3 (and committed)', registers }),
    archivedObjects: new Counter({ name: 'ats_relay_dlq_archived_objects_total', help: 'Archive objects written to S3', registers }),
    archivedBytes: new Counter({ name: 'ats_relay_dlq_archived_bytes_total', help: 'Gzipped bytes written to S3', registers }),
    staleObjectsRemoved: new Counter({ name: 'ats_relay_dlq_stale_objects_removed_total', help: 'Uncommitted objects of an earlier run replaced by a rewrite', registers }),
    s3Failures: new Counter({ name: 'ats_relay_s3_failures_total', help: 'Failed S3 operations (retried with backoff)', labelNames: ['operation'], registers }),
    bufferedRecords: new Gauge({ name: 'ats_relay_dlq_buffered_records', help: 'Dead letters held in memory, not yet archived', registers }),
    digestsSent: new Counter({ name: 'ats_relay_alert_digests_sent_total', help: 'Alert digests whose every mail SMTP accepted', registers }),
    digestMails: new Counter({ name: 'ats_relay_alert_mails_sent_total', help: 'Digest mails accepted by SMTP', labelNames: ['audience'], registers }),
    digestRecords: new Counter({ name: 'ats_relay_alert_digest_records_total', help: 'Dead letters counted in sent digests', registers }),
    smtpFailures: new Counter({ name: 'ats_relay_smtp_failures_total', help: 'Failed SMTP sends (retried with backoff)', registers }),
    digestsDeferred: new Counter({ name: 'ats_relay_alert_digests_deferred_total', help: 'Window ends where the rate cap held the digest back (it keeps aggregating)', registers }),
    pendingRecords: new Gauge({ name: 'ats_relay_alert_pending_records', help: 'Dead letters aggregated but not yet in a sent digest', registers }),
    decodeFailures: new Counter({ name: 'ats_relay_dlq_undecodable_total', help: 'Dead letters whose value could not be decoded', registers }),
    commitFailures: new Counter({ name: 'ats_relay_dlq_commit_failures_total', help: 'Offset commits that failed (retried)', registers }),
    lag: new Gauge({ name: 'ats_relay_consumer_lag', help: 'Records behind the high watermark, per partition', labelNames: ['topic', 'partition'], registers }),
  };
}
