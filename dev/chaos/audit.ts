/**
 * The audit every scenario ends with, and the progress monitor that measures recovery.
 *
 *   every application: delivered exactly once at the sandbox (one candidate, delivery log says
 *     delivered), or in the DLQ with a reason (ats-error-code)        — else lost; a 2nd candidate is a duplicate
 *   every malformed record: in the DLQ with a reason                    — else lost
 *   every DLQ record: archived to S3 exactly once (by partition/offset) — else archive gap / duplicate
 *   the alert digests' counts add up to the DLQ's record count
 */
import { createHash } from 'node:crypto';
import { ListObjectsV2Command, GetObjectCommand } from '@aws-sdk/client-s3';
import { parseArchiveObject } from '../../lib/dlq-archive.ts';
import { HEADER, readHeaders, type HeaderMap } from '../../lib/headers.ts';
import { scanTopic, withAdmin, type Admin, type KafkaClient } from '../../lib/kafka/index.ts';
import { mailbox } from '../mail-catcher.ts';
import { createS3Client } from '../../lib/s3.ts';
import type { World } from './world.ts';

export interface DlqRecord {
  partition: number;
  offset: string;
  key: string | null;
  value: Buffer | null;
  headers: HeaderMap;
}

export interface AuditResult {
  applications: number;
  delivered: number;
  deadLettered: number;
  /** Applications with a second candidate at the sandbox. */
  duplicates: number;
  /** Applications (and malformed records) neither delivered nor in the DLQ with a reason. */
  lost: number;
  malformed: number;
  malformedInDlq: number;
  dlqRecords: number;
  /** DLQ records without an ats-error-code. */
  withoutReason: number;
  archived: number;
  archiveMissing: number;
  archiveDuplicates: number;
  digestCount: number;
  /** Details for the report when something is off. */
  problems: string[];
}

export const sha256 = (b: Buffer | null): string => createHash('sha256').update(b ?? Buffer.alloc(0)).digest('hex');

/** Every record of a topic up to the high watermarks seen at the start, read with a throwaway group. */
export async function readTopic(kafka: KafkaClient, topic: string): Promise<DlqRecord[]> {
  const offsets = await withAdmin(kafka, (admin) => admin.fetchTopicOffsets(topic));
  const remaining = new Map(offsets.filter((o) => Number(o.high) > Number(o.low)).map((o) => [o.partition, Number(o.high)]));
  if (remaining.size === 0) return [];
  const out: DlqRecord[] = [];
  const result = await scanTopic(kafka, topic, {
    groupId: `chaos-audit-${Date.now()}-${Math.random().toString(16).slice(2, 8)}`,
    maxBytesPerPartition: 2_000_000,
    timeoutMs: 120_000,
    each(record, partition) {
      const high = remaining.get(partition);
      if (high === undefined || Number(record.offset) >= high) return remaining.size === 0;
      out.push({ partition, offset: record.offset, key: record.key?.toString('utf8') ?? null, value: record.value, headers: readHeaders(record.headers) });
      if (Number(record.offset) + 1 >= high) remaining.delete(partition);
      return remaining.size === 0;
    },
  });
  if (result === 'timeout') throw new Error(`chaos: timed out reading ${topic}`);
  return out;
}

async function lagOf(admin: Admin, group: string, topic: string): Promise<{ committed: number; lag: number }> {
  const [high, committed] = await Promise.all([admin.fetchTopicOffsets(topic), admin.fetchOffsets(group, [topic])]);
  const done = new Map((committed[0]?.partitions ?? []).map((p) => [p.partition, Math.max(0, Number(p.offset))]));
  let lag = 0;
  let sum = 0;
  for (const h of high) {
    const c = done.get(h.partition) ?? 0;
    sum += c;
    lag += Math.max(0, Number(h.high) - c);
  }
  return { committed: sum, lag };
}

export interface Monitor {
  /** Longest time any group had lag while its committed offsets did not move (ms), by group role. */
  stalls(): Map<string, number>;
  /** Resolves once the named group's committed offsets move past what they were now. */
  progressAfter(slotName: string, timeoutMs: number): Promise<number | undefined>;
  stop(): Promise<void>;
}

/** Samples every group's committed offsets and lag once a second. */
export function startMonitor(world: World): Monitor {
  const groups = new Map<string, { group: string; topic: string }>();
  for (const [name, spec] of world.roles) groups.set(name.replace(/#\d+$/, ''), { group: spec.group, topic: spec.topic });
  const last = new Map<string, { committed: number; since: number; lag: number }>();
  const worst = new Map<string, number>();
  let stopped = false;
  const admin = world.kafka.admin();
  const loop = (async () => {
    await admin.connect();
    while (!stopped) {
      const t = Date.now();
      for (const [role, g] of groups) {
        const now = await lagOf(admin, g.group, g.topic).catch(() => undefined);
        if (!now) continue;
        const prev = last.get(role);
        if (!prev || now.committed !== prev.committed || now.lag === 0) last.set(role, { committed: now.committed, since: t, lag: now.lag });
        else worst.set(role, Math.max(worst.get(role) ?? 0, t - prev.since));
      }
      await new Promise((r) => setTimeout(r, Math.max(0, 1_000 - (Date.now() - t))));
    }
    await admin.disconnect();
  })();
  return {
    stalls: () => new Map(worst),
    async progressAfter(slotName, timeoutMs) {
      const spec = world.roles.get(slotName)!;
      const t0 = Date.now();
      // Right after a broker restart the partitions may have no leader yet: ask again until they do.
      let start: { committed: number; lag: number } | undefined;
      while (!start && Date.now() - t0 < timeoutMs) {
        start = await withAdmin(world.kafka, (a) => lagOf(a, spec.group, spec.topic)).catch(() => undefined);
        if (!start) await new Promise((r) => setTimeout(r, 250));
      }
      if (!start) return timeoutMs;
      if (start.lag === 0) return undefined;
      while (Date.now() - t0 < timeoutMs) {
        await new Promise((r) => setTimeout(r, 250));
        const now = await withAdmin(world.kafka, (a) => lagOf(a, spec.group, spec.topic)).catch(() => undefined);
        if (now && now.committed > start.committed) return Date.now() - t0;
      }
      return timeoutMs;
    },
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

async function allLags(world: World): Promise<number> {
  return withAdmin(world.kafka, async (admin) => {
    let total = 0;
    for (const spec of world.roles.values()) total += (await lagOf(admin, spec.group, spec.topic)).lag;
    return total;
  });
}

async function dlqSize(world: World): Promise<number> {
  const offsets = await withAdmin(world.kafka, (a) => a.fetchTopicOffsets(world.config.topics.dlq));
  return offsets.reduce((s, o) => s + Number(o.high), 0);
}

interface ArchivedLine {
  partition: number;
  offset: string;
}

async function readArchiveLines(world: World): Promise<ArchivedLine[]> {
  const { config } = world;
  const s3 = createS3Client(config.s3);
  const out: ArchivedLine[] = [];
  try {
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: config.s3.bucket, Prefix: `${config.s3.prefix}/`, ...(token ? { ContinuationToken: token } : {}) }));
      for (const obj of page.Contents ?? []) {
        const got = await s3.send(new GetObjectCommand({ Bucket: config.s3.bucket, Key: obj.Key! }));
        for (const r of parseArchiveObject(Buffer.from(await got.Body!.transformToByteArray()))) out.push({ partition: r.partition, offset: r.offset });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  } finally {
    s3.destroy();
  }
  return out;
}

/**
 * Sum of `== <company> <platform>/<code>: <n> (` lines over the digests mailed to the world's recipient,
 * each Message-ID once: a digest re-sent after its process died between SMTP and recording it is the
 * same message (consumers/alerts/digest-log.ts).
 */
async function digestCount(world: World): Promise<number> {
  const mails = await mailbox(world.config.alerts.mailApiUrl).to(world.config.alerts.to[0]!);
  const seen = new Set<string>();
  let n = 0;
  for (const m of mails) {
    if (m.messageId && seen.has(m.messageId)) continue;
    seen.add(m.messageId);
    for (const hit of m.text.matchAll(/^== \S+ \S+\/\S+: (\d+) \(/gm)) n += Number(hit[1]);
  }
  return n;
}

/**
 * Wait until the pipeline is quiet: no group has lag, the archive holds as many lines as the DLQ
 * has records and the digests count them all (or the timeout passes: the audit then says what is off).
 */
export async function settle(world: World, timeoutMs: number, say: (line: string) => void): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let quietSince: number | undefined;
  let lastSay = 0;
  for (;;) {
    const [lag, dlq, archived, digest] = await Promise.all([
      allLags(world).catch(() => -1),
      dlqSize(world).catch(() => -1),
      readArchiveLines(world).then((l) => l.length, () => -1),
      digestCount(world).catch(() => -1),
    ]);
    const quiet = lag === 0 && archived >= dlq && digest >= dlq;
    if (Date.now() - lastSay > 10_000) {
      say(`   settling: lag ${lag}, dlq ${dlq}, archived ${archived}, in digests ${digest}`);
      lastSay = Date.now();
    }
    if (quiet) {
      quietSince ??= Date.now();
      // Quiet twice, a couple of seconds apart: a last replay after a rebalance would show.
      if (Date.now() - quietSince >= 2_000) return;
    } else quietSince = undefined;
    if (Date.now() > deadline) {
      say(`   not settled after ${Math.round(timeoutMs / 1000)} s (lag ${lag}, dlq ${dlq}, archived ${archived}, in digests ${digest}); auditing as is`);
      return;
    }
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

export async function audit(world: World, malformed: Map<string, string>): Promise<AuditResult> {
  const problems: string[] = [];
  const ids = [...world.published.values()].flat();

  // At the sandbox: candidates per application (the e-mail carries the application id).
  const candidates = new Map<string, number>();
  const trail = new Map<string, string[]>();
  for (const c of world.customers) {
    for (const cand of world.sandbox.candidates('greenhouse', c.tenant)) {
      for (const m of JSON.stringify(cand).matchAll(/chaos\+([0-9a-f-]{36})@/g)) {
        candidates.set(m[1]!, (candidates.get(m[1]!) ?? 0) + 1);
        const r = cand as { id?: unknown; created_at?: unknown };
        trail.set(m[1]!, [...(trail.get(m[1]!) ?? []), `candidate ${String(r.id)} created ${String(r.created_at)}`]);
        break;
      }
    }
  }
  const { rows } = await world.pool.query<{ application_id: string; status: string }>(
    'SELECT application_id, status FROM deliveries WHERE integration_id = ANY($1)',
    [world.customers.map((c) => c.integration.id)],
  );
  const logged = new Map(rows.map((r) => [r.application_id, r.status]));

  const dlq = await readTopic(world.kafka, world.config.topics.dlq);
  const dlqByKey = new Map<string, number>();
  const dlqByValue = new Map<string, number>();
  let withoutReason = 0;
  for (const r of dlq) {
    if (!r.headers[HEADER.errorCode]) {
      withoutReason++;
      continue;
    }
    if (r.key) dlqByKey.set(r.key, (dlqByKey.get(r.key) ?? 0) + 1);
    const h = sha256(r.value);
    if (malformed.has(h)) dlqByValue.set(h, (dlqByValue.get(h) ?? 0) + 1);
  }
  if (withoutReason) problems.push(`${withoutReason} DLQ records without ats-error-code`);

  // A send that failed without an answer may have been written: such an application is the
  // pipeline's to deliver once it shows up anywhere, and was never published if it shows up nowhere.
  const arrived = [...world.unacknowledged].filter((id) => candidates.has(id) || logged.has(id) || dlqByKey.has(id));
  ids.push(...arrived);
  if (world.unacknowledged.size) problems.push(`${world.unacknowledged.size} applications sent without an acknowledgement (broker gone mid-request); ${arrived.length} of them were written and are audited`);
  const idSet = new Set(ids);

  let delivered = 0;
  let deadLettered = 0;
  let duplicates = 0;
  let lost = 0;
  for (const id of ids) {
    const n = candidates.get(id) ?? 0;
    if (n > 1) {
      duplicates++;
      problems.push(`duplicate: application ${id} has ${n} candidates at the sandbox (${(trail.get(id) ?? []).join('; ')}; log: ${logged.get(id) ?? 'none'})`);
    }
    if (logged.get(id) === 'delivered' && n >= 1) delivered++;
    else if (dlqByKey.has(id)) deadLettered++;
    else {
      lost++;
      if (problems.length < 30) problems.push(`lost: application ${id} (log: ${logged.get(id) ?? 'none'}, candidates ${n}, dlq 0)`);
    }
  }
  for (const id of candidates.keys()) if (!idSet.has(id)) problems.push(`candidate for an unpublished application ${id}`);
  if (lost) {
    // Where the lost ones are: still in the main topic (the pipeline skipped them) or never written.
    const main = await readTopic(world.kafka, world.config.topics.applications).catch(() => []);
    const at = new Map(main.filter((r) => r.key).map((r) => [r.key!, `${r.partition}/${r.offset}`]));
    const lostIds = ids.filter((id) => !(logged.get(id) === 'delivered' && (candidates.get(id) ?? 0) >= 1) && !dlqByKey.has(id));
    const inTopic = lostIds.filter((id) => at.has(id));
    problems.push(`of ${lostIds.length} lost, ${inTopic.length} are in ${world.config.topics.applications} (${inTopic.slice(0, 5).map((id) => at.get(id)).join(', ')}); the rest were acknowledged by the broker but never written`);
  }

  let malformedInDlq = 0;
  const missingKinds = new Map<string, number>();
  for (const [h, kind] of malformed) {
    if (dlqByValue.has(h)) malformedInDlq++;
    else missingKinds.set(kind, (missingKinds.get(kind) ?? 0) + 1);
  }
  if (missingKinds.size) {
    lost += malformed.size - malformedInDlq;
    problems.push(`malformed records not in the DLQ: ${[...missingKinds].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  }

  // S3: every DLQ record (partition/offset) in exactly one archive line.
  const lines = await readArchiveLines(world);
  const seen = new Map<string, number>();
  for (const l of lines) seen.set(`${l.partition}/${l.offset}`, (seen.get(`${l.partition}/${l.offset}`) ?? 0) + 1);
  let archiveMissing = 0;
  for (const r of dlq) if (!seen.has(`${r.partition}/${r.offset}`)) archiveMissing++;
  const archiveDuplicates = [...seen.values()].filter((n) => n > 1).length;
  if (archiveMissing) problems.push(`${archiveMissing} DLQ records not archived`);
  if (archiveDuplicates) problems.push(`${archiveDuplicates} DLQ records archived more than once`);

  const digest = await digestCount(world);
  if (digest !== dlq.length) problems.push(`digests count ${digest} dead letters, the DLQ holds ${dlq.length}`);

  return {
    applications: ids.length,
    delivered,
    deadLettered,
    duplicates,
    lost,
    malformed: malformed.size,
    malformedInDlq,
    dlqRecords: dlq.length,
    withoutReason,
    archived: lines.length,
    archiveMissing,
    archiveDuplicates,
    digestCount: digest,
    problems,
  };
}
