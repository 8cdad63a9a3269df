/**
 * Runs the chosen scenarios one after the other, each in a fresh world, and prints the table:
 * applications, delivered, dead-lettered, duplicates (must be 0), lost (must be 0), time to recover.
 */
import type { Config } from '../../lib/config.ts';
import { audit, settle, startMonitor, type AuditResult } from './audit.ts';
import { SCENARIOS, type Profile, type ProxiedService, type Scenario } from './scenarios.ts';
import { hostPortOf, startTcpProxy, viaProxy, type TcpProxy } from './tcp-proxy.ts';
import { startPrivateBroker, type PrivateBroker } from '../stack/private-broker.ts';
import { startWorld } from './world.ts';

export interface ScenarioResult {
  name: string;
  audit: AuditResult;
  /** Slowest recovery seen (ms). */
  recoveryMs: number;
  /** Slowest member hand-over measured (ms): SIGKILL → the survivor commits on the dead member's partitions. */
  handoverMs: number | undefined;
  /** Processes that exited without being asked (the harness restarted them). */
  unexpectedExits: number;
  notes: string[];
  ok: boolean;
}

export interface ChaosOptions {
  profile: Profile;
  scenarios: string[];
  partitions: number;
  settleTimeoutMs: number;
  /** Run the scenarios one after the other in one world and audit once (the short profile: one start-up). */
  oneWorld?: boolean;
  say: (line: string) => void;
}

const NO_AUDIT: AuditResult = {
  applications: 0,
  delivered: 0,
  deadLettered: 0,
  duplicates: 0,
  lost: 0,
  malformed: 0,
  malformedInDlq: 0,
  dlqRecords: 0,
  withoutReason: 0,
  archived: 0,
  archiveMissing: 0,
  archiveDuplicates: 0,
  digestCount: 0,
  problems: [],
};

export async function runChaos(base: Config, opts: ChaosOptions): Promise<ScenarioResult[]> {
  const chosen = opts.scenarios.map((name) => {
    const scenario = SCENARIOS.find((s) => s.name === name);
    if (!scenario) throw new Error(`chaos: unknown scenario "${name}" (one of ${SCENARIOS.map((s) => s.name).join(', ')})`);
    return scenario;
  });
  const results: ScenarioResult[] = [];
  for (const group of opts.oneWorld ? [chosen] : chosen.map((s) => [s])) {
    try {
      results.push(await runInWorld(base, group, opts));
    } catch (err) {
      // The harness itself failed (not the audit): say so in the table and go on with the next scenario.
      const name = group.map((s) => s.name).join('+');
      opts.say(`   FAILED: the ${name} run broke off: ${(err as Error).stack ?? String(err)}`);
      results.push({ name, audit: NO_AUDIT, recoveryMs: 0, handoverMs: undefined, unexpectedExits: 0, notes: [`broke off: ${(err as Error).message}`], ok: false });
    }
  }
  return results;
}

async function runInWorld(base: Config, scenarios: Scenario[], opts: ChaosOptions): Promise<ScenarioResult> {
  const name = scenarios.map((s) => s.name).join('+');
  const t0 = Date.now();
  for (const s of scenarios) opts.say(`== ${s.name}: ${s.summary}`);
  // The shared services a scenario takes down sit behind proxies of this world's own.
  const proxies = new Map<ProxiedService, TcpProxy>();
  const env: Record<string, string> = {};
  const targets: Record<ProxiedService, [string, string]> = {
    s3: ['S3_ENDPOINT', base.s3.endpoint ?? ''],
    smtp: ['SMTP_URL', base.alerts.smtpUrl],
    registry: ['SCHEMA_REGISTRY_URL', base.schemaRegistry.url],
  };
  for (const service of new Set(scenarios.flatMap((s) => s.proxies ?? []))) {
    const [variable, url] = targets[service];
    const proxy = await startTcpProxy(hostPortOf(url));
    proxies.set(service, proxy);
    env[variable] = viaProxy(url, proxy);
  }
  // A scenario that kills Kafka gets a broker of the world's own: the shared one serves everyone else.
  let broker: PrivateBroker | undefined;
  const world = await (async () => {
    if (scenarios.some((s) => s.privateBroker)) {
      broker = await startPrivateBroker(base, { name: 'chaos', say: (line) => opts.say(`   ${line}`) });
      return startWorld(broker.config, { partitions: opts.partitions, say: opts.say, env });
    }
    return startWorld(base, { partitions: opts.partitions, say: opts.say, env });
  })().catch(async (err: unknown) => {
    for (const p of proxies.values()) await p.close();
    await broker?.close();
    throw err;
  });
  opts.say(`   world chaos-${world.run} up in ${((Date.now() - t0) / 1000).toFixed(0)} s (${world.supervisor.names().join(', ')})`);
  const monitor = startMonitor(world);
  const malformed = new Map<string, string>();
  try {
    const notes: string[] = [];
    let recoveryMs: number | undefined;
    let handoverMs: number | undefined;
    for (const scenario of scenarios) {
      if (scenarios.length > 1) opts.say(`-- ${scenario.name}`);
      const outcome = await scenario.run({ world, profile: opts.profile, monitor, malformed, proxies, broker, say: opts.say });
      notes.push(...outcome.notes);
      if (outcome.recoveryMs !== undefined) recoveryMs = Math.max(recoveryMs ?? 0, outcome.recoveryMs);
      if (outcome.handoverMs !== undefined) handoverMs = Math.max(handoverMs ?? 0, outcome.handoverMs);
    }
    await settle(world, opts.settleTimeoutMs, opts.say);
    await monitor.stop();
    const result = await audit(world, malformed);
    recoveryMs ??= Math.max(0, ...monitor.stalls().values());
    const exits = world.supervisor.unexpectedExits;
    notes.push(...exits.map((e) => `${e.name} exited on its own (${e.code}): ${e.tail.split('\n').filter(Boolean).slice(-3).join(' | ')}`), ...result.problems);
    const ok =
      result.duplicates === 0 &&
      result.lost === 0 &&
      result.withoutReason === 0 &&
      result.archiveMissing === 0 &&
      result.archiveDuplicates === 0 &&
      result.digestCount === result.dlqRecords &&
      // Garbage must not crash anything (the harness's own kills are not counted here); elsewhere a
      // process that gives up and is restarted is the supervisor contract working.
      (!scenarios.some((s) => s.name === 'malformed') || exits.length === 0);
    opts.say(`   ${ok ? 'ok' : 'FAILED'} in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${result.applications} applications, ${result.delivered} delivered, ${result.deadLettered} dead-lettered, ${result.duplicates} duplicates, ${result.lost} lost`);
    for (const n of notes) opts.say(`   - ${n}`);
    return { name, audit: result, recoveryMs, handoverMs, unexpectedExits: exits.length, notes, ok };
  } finally {
    await monitor.stop().catch(() => undefined);
    await world.close();
    for (const p of proxies.values()) await p.close();
    await broker?.close();
  }
}

export function table(results: ScenarioResult[]): string {
  const header = ['scenario', 'applications', 'delivered', 'dead-lettered', 'malformed→DLQ', 'duplicates', 'lost', 'DLQ=S3=digest', 'restarts', 'hand-over', 'time to recover', 'result'];
  const rows = results.map((r) => [
    r.name,
    String(r.audit.applications),
    String(r.audit.delivered),
    String(r.audit.deadLettered),
    r.audit.malformed ? `${r.audit.malformedInDlq}/${r.audit.malformed}` : '-',
    String(r.audit.duplicates),
    String(r.audit.lost),
    `${r.audit.dlqRecords}=${r.audit.archived - r.audit.archiveDuplicates}=${r.audit.digestCount}`,
    String(r.unexpectedExits),
    r.handoverMs === undefined ? '-' : `${(r.handoverMs / 1000).toFixed(1)} s`,
    `${(r.recoveryMs / 1000).toFixed(1)} s`,
    r.ok ? 'ok' : 'FAILED',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}
