/**
 * Reading dead letters back from the S3 archive (lib/dlq-archive.ts format): every archive object
 * under a prefix, in DLQ order (topic, partition, first offset). Values and headers come from the
 * archived base64, so a redrive sends exactly the bytes that failed. Objects outside the
 * --partition / --offset filters are not downloaded; a record archived twice (objects of a sink
 * run that crashed overlap) is read once.
 */
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { parseArchiveKey, parseArchiveObject, type ArchiveKeyParts } from '../../lib/dlq-archive.ts';
import type { Logger } from '../../lib/logger.ts';
import { offsetRangeSelected, partitionSelected, type RedriveFilters } from './filters.ts';
import type { DeadLetter, RecordSource, SourceScan } from './source.ts';

export interface S3SourceOptions {
  s3: S3Client;
  bucket: string;
  /** Key prefix to read under (e.g. `dlq-archive/ats.applications.dlq/dt=2025-05-01/`). */
  prefix: string;
  filters: RedriveFilters;
  logger: Logger;
}

/** `s3://bucket/prefix` → bucket and prefix; a plain prefix uses `defaultBucket`. */
export function parseS3Location(location: string, defaultBucket: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(location);
  if (m) return { bucket: m[1]!, prefix: m[2]! };
  return { bucket: defaultBucket, prefix: location.replace(/^\/+/, '') };
}

interface ArchiveObjectRef {
  key: string;
  parts: ArchiveKeyParts;
}

export function createS3Source(opts: S3SourceOptions): RecordSource {
  const { s3, bucket, prefix, filters, logger } = opts;
  let objects: ArchiveObjectRef[] = [];

  async function plan(): Promise<SourceScan> {
    const found: ArchiveObjectRef[] = [];
    let ignored = 0;
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
      for (const obj of page.Contents ?? []) {
        const parts = obj.Key ? parseArchiveKey(obj.Key) : undefined;
        if (!parts) {
          ignored++;
          continue;
        }
        if (!partitionSelected(filters, parts.partition)) continue;
        if (!offsetRangeSelected(filters, Number(parts.firstOffset), Number(parts.lastOffset))) continue;
        found.push({ key: obj.Key!, parts });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    if (ignored) logger.warn({ ignored, bucket, prefix }, 'objects under the prefix that are not DLQ archive objects were ignored');
    objects = found.sort(
      (a, b) =>
        a.parts.topic.localeCompare(b.parts.topic) ||
        a.parts.partition - b.parts.partition ||
        Number(a.parts.firstOffset) - Number(b.parts.firstOffset) ||
        Number(a.parts.lastOffset) - Number(b.parts.lastOffset),
    );
    return { total: objects.reduce((n, o) => n + Number(o.parts.lastOffset) - Number(o.parts.firstOffset) + 1, 0) };
  }

  async function read(each: (record: DeadLetter) => Promise<void>, signal: AbortSignal): Promise<void> {
    /** Per topic-partition, the highest offset handed out (objects are read in offset order). */
    const seen = new Map<string, number>();
    for (const obj of objects) {
      if (signal.aborted) return;
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: obj.key }), { abortSignal: signal });
      const body = await got.Body!.transformToByteArray();
      let records;
      try {
        records = parseArchiveObject(body);
      } catch (err) {
        throw new Error(`s3://${bucket}/${obj.key} is not a readable archive object: ${(err as Error).message}`, { cause: err });
      }
      for (const r of records) {
        if (signal.aborted) return;
        const tp = `${r.topic}\u0000${r.partition}`;
        const offset = Number(r.offset);
        if (offset <= (seen.get(tp) ?? -1)) continue;
        seen.set(tp, offset);
        await each({
          topic: r.topic,
          partition: r.partition,
          offset: r.offset,
          timestamp: r.timestamp,
          key: r.key,
          value: r.value,
          headers: r.headers,
          rawHeaders: r.rawHeaders,
          ...(r.decodeError === undefined && r.decoded !== null ? { archivedEvent: r.decoded } : {}),
        });
      }
    }
  }

  return { label: `s3://${bucket}/${prefix}`, plan, read, close: async () => undefined };
}
