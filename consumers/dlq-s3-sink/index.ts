/**
 * The DLQ → S3 sink (group `ats-relay.dlq-s3`), run by `consume --role dlq-s3`: archives every
 * dead letter into gzipped JSON-lines objects (lib/dlq-archive.ts), one partition and contiguous
 * offset range per object, and commits a partition's offsets only once the object holding them is
 * stored.
 *
 * This file wires it: the consumer runtime (consumers/runtime/) owns the group membership, pauses,
 * lag gauge and ordered close; handler.ts decides what goes into which object and when it is
 * written; options.ts holds the settings and their defaults. close(): stop fetching, write what is
 * buffered (bounded by drainTimeoutMs), commit, leave.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../../lib/s3.ts';
import { createDeadLetterConsumer, type DeadLetterConsumer, type DeadLetterConsumerDeps } from '../dead-letter-consumer.ts';
import { createSinkHandler } from './handler.ts';
import { sinkOptions, type SinkOptions } from './options.ts';

export { DEFAULT_GROUP_ID } from './options.ts';

export interface DlqS3SinkDeps extends DeadLetterConsumerDeps<SinkOptions> {
  /** Default: built from config.s3 (lib/s3.ts). */
  s3?: S3Client;
}

export type DlqS3Sink = DeadLetterConsumer;

export function createDlqS3Sink(deps: DlqS3SinkDeps): DlqS3Sink {
  const opts = sinkOptions(deps.config, deps.options);
  const s3 = deps.s3 ?? createS3Client(deps.config.s3);
  return createDeadLetterConsumer(deps, {
    component: 'dlq-s3-sink',
    role: 'dlq-s3',
    opts,
    handler: (context) => createSinkHandler({ ...context, opts, s3 }),
    started(handler, logger) {
      handler.startTimer();
      logger.info({ bucket: opts.bucket, prefix: opts.prefix, maxRecords: opts.maxRecords, maxBytes: opts.maxBytes, maxAgeMs: opts.maxAgeMs }, 'archiving the DLQ');
    },
    stopped(handler, logger) {
      handler.stop();
      if (deps.s3 === undefined) s3.destroy();
      logger.info('stopped');
    },
  });
}
