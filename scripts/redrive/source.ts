/**
 * What a redrive reads, whatever the source (the DLQ topic or the S3 archive): one dead letter with
 * its DLQ coordinates and its bytes exactly as they were dead-lettered.
 */
import type { HeaderMap } from '../../lib/headers.ts';
import type { IHeaders } from '../../lib/kafka.ts';

export interface DeadLetter {
  /** Where the record sits (or sat) on the DLQ. */
  topic: string;
  partition: number;
  offset: string;
  /** Kafka timestamp on the DLQ, epoch ms as a string: when the record was dead-lettered. */
  timestamp: string;
  key: Buffer | null;
  value: Buffer | null;
  /** Readable headers (last value of a repeated header wins), for filters and the loop guard. */
  headers: HeaderMap;
  /** Byte-exact headers, as they are produced again. */
  rawHeaders: IHeaders;
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
