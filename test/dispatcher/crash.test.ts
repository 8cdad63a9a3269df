/**
 * The dispatcher as an operator runs it: a separate process, killed with SIGKILL mid-stream and
 * restarted. Every application reaches the ATS exactly once; none is lost. A SIGTERM then stops it
 * cleanly.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { envFromConfig } from '../../lib/config.ts';
import { uniqueName } from '../support/config.ts';
import { spawnTs, type TsProcess } from '../../dev/spawn-entrypoint.ts';
import { startPipeline, waitFor, type Pipeline } from './support.ts';

let p: Pipeline;
const children: TsProcess[] = [];

beforeAll(async () => {
  p = await startPipeline({ TOPIC_PARTITIONS: '6', DISPATCHER_MAX_IN_FLIGHT: '32' });
});

afterAll(async () => {
  for (const c of children) c.child.kill('SIGKILL');
  await p?.close();
});

function startDispatcher(group: string): TsProcess {
  const proc = spawnTs('consumers/cli.ts', ['--role', 'dispatcher', '--group', group], { ...envFromConfig(p.config), HTTP_PORT: '0', LOG_LEVEL: 'warn' });
  children.push(proc);
  return proc;
}

async function deliveredCount(ids: string[]): Promise<number> {
  const { rows } = await p.pool.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM deliveries WHERE integration_id = $1 AND application_id = ANY($2) AND status = 'delivered'",
    [p.integration.id, ids],
  );
  return rows[0]!.n;
}

it('SIGKILL mid-stream, restart: every application delivered exactly once, none lost', async () => {
  const N = 300;
  // Slow enough that the kill lands mid-stream with deliveries in flight.
  p.sandbox.addFault({ kind: 'latency', ms: 40, platform: 'greenhouse', tenant: p.tenant });
  const events = Array.from({ length: N }, () => p.event());
  const ids = events.map((e) => e.applicationId);
  await Promise.all(events.map((e) => p.publish(e)));

  const group = uniqueName('dispatcher');
  const first = startDispatcher(group);
  await waitFor('some deliveries', async () => (await deliveredCount(ids)) >= N / 5, 60_000).catch((err: Error) => {
    throw new Error(`${err.message}; dispatcher output:\n${first.output()}`);
  });
  first.child.kill('SIGKILL');
  expect(await first.exited).toBe('SIGKILL');
  const atKill = await deliveredCount(ids);
  expect(atKill).toBeLessThan(N);

  // As an operator runs it, the tiers run too: what the dead member was delivering is still under its
  // leases (until they expire), so the restarted member parks those records on a tier, without a try.
  for (const tier of p.config.topics.retryTiers) {
    const proc = spawnTs('consumers/cli.ts', ['--role', 'retry', '--tier', tier.name, '--group', `${group}.${tier.name}`], { ...envFromConfig(p.config), HTTP_PORT: '0', LOG_LEVEL: 'warn' });
    children.push(proc);
  }
  const second = startDispatcher(group);
  await waitFor('all deliveries', async () => (await deliveredCount(ids)) === N, 120_000);

  // Exactly once at the ATS, counted by application (the candidate's e-mail carries its id).
  const perApplication = new Map<string, number>();
  for (const c of p.sandbox.candidates('greenhouse', p.tenant)) {
    const email = JSON.stringify(c.email_addresses ?? []);
    const id = ids.find((i) => email.includes(i));
    if (id) perApplication.set(id, (perApplication.get(id) ?? 0) + 1);
  }
  expect(perApplication.size).toBe(N);
  expect([...perApplication.values()].every((n) => n === 1)).toBe(true);

  // A graceful stop: SIGTERM → commit, leave the group, exit 0 within the shutdown bound.
  const t0 = Date.now();
  second.child.kill('SIGTERM');
  expect(await second.exited).toBe(0);
  expect(Date.now() - t0).toBeLessThan(p.config.http.shutdownTimeoutMs);
  const offsets = await p.kafka.admin();
  await offsets.connect();
  const committed = await offsets.fetchOffsets(group, [p.config.topics.applications]);
  await offsets.disconnect();
  const total = committed[0]!.partitions.reduce((sum, part) => sum + Math.max(0, Number(part.offset)), 0);
  expect(total).toBe(N);
}, 180_000);
