/**
 * What a redrive reads, whatever the source (the DLQ topic or the S3 archive): one dead letter with
 * its DLQ coordinates and its bytes exactly as they were dead-lettered.
 */
import type { ArchivedRecord } from '../../lib/dlq-archive.ts';

/**
 * A dead letter as the redrive reads it: the DLQ record's coordinates, bytes and headers (the same
 * fields an archive line restores), plus the archive's decoded event when it came from S3.
 */
export interface DeadLetter extends Omit<ArchivedRecord, 'decoded' | 'decodeError'> {
  /** The archive's decoded event, when the record comes from S3 and decoded when it was archived. */
  archivedEvent?: unknown;
}

export interface SourceScan {
  /** Records the source will read at most (for progress and ETA); may be an estimate. */
  total: number;
}

export interface RecordSource {
  /** Shown in reports and stored with the run: `dlq:<topic>` or `s3://<bucket>/<prefix>`. */
  readonly label: string;
  /** Decide what to read (watermarks, object list) before reading it. */
  plan(): Promise<SourceScan>;
  /**
   * Hand every record of the plan to `each`, in order per partition, awaiting it (back-pressure).
   * Stops early when `signal` aborts. Never commits offsets of any consumer group.
   */
  read(each: (record: DeadLetter) => Promise<void>, signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}
