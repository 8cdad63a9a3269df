import { envFromConfig, loadConfig } from '../../lib/config.ts';
import { migrate } from '../../db/migrate.ts';
import { runMain, UsageError, wholeNumberFlag } from '../../lib/cli.ts';
import { runChaos, table } from './run.ts';
import { killAllSupervised } from './supervisor.ts';
import { PROFILES, SCENARIOS } from './scenarios.ts';

await runMain({
  name: 'chaos',
  usage: `Usage: npm run chaos [-- --profile full|short] [--scenario <name>]… [--partitions N]

Breaks the pipeline on purpose, under a steady load of applications, and audits what came out.
Each scenario runs in a world of its own: fresh topics (retry ladder 1 s / 1.5 s / 2 s), consumer
groups, S3 prefix and alert recipient; an in-process ATS sandbox with three Greenhouse customers
(one slow, one failing 20 % of creates with 503, one with wrong credentials); the dispatcher, every
retry tier, the DLQ → S3 archive and the alerts as separate processes, restarted by this harness
whenever they exit. The local stack must be running (npm run stack -- up).

Scenarios:
${SCENARIOS.map((s) => `  ${s.name.padEnd(10)} ${s.summary}`).join('\n')}

Each ends with the same audit: every application delivered exactly once at the sandbox (no second
candidate) or in the DLQ with a reason; every malformed record in the DLQ with a reason; every dead
letter archived to S3 exactly once; the e-mailed digests count as many dead letters as the DLQ holds.
The table at the end reports per scenario; the exit code is 1 if any scenario lost or duplicated
anything (or its DLQ, archive and digests disagree).

Options:
  --profile P       full (default: ${PROFILES.full.kills} kills, ${PROFILES.full.malformed} malformed records, ${PROFILES.full.rate} applications/s) or
                    short (what npm test runs: ${PROFILES.short.kills} kills, ${PROFILES.short.malformed} malformed, ${PROFILES.short.rate}/s)
  --scenario S      run only these (repeatable; default: all)
  --partitions N    partitions of the main topic (default 6)
  -h, --help        this help`,
  options: { profile: { type: 'string' }, scenario: { type: 'string', multiple: true }, partitions: { type: 'string' } },
  async run({ config, values, onShutdown }) {
    onShutdown(killAllSupervised);
    const profileName = values.profile ?? 'full';
    if (profileName !== 'full' && profileName !== 'short') throw new UsageError('--profile is full or short');
    const scenarios = values.scenario?.length ? values.scenario : SCENARIOS.map((s) => s.name);
    for (const s of scenarios) if (!SCENARIOS.some((x) => x.name === s)) throw new UsageError(`unknown scenario "${s}" (one of ${SCENARIOS.map((x) => x.name).join(', ')})`);
    const partitions = wholeNumberFlag('--partitions', values.partitions) ?? 6;
    // A database of the harness's own (as the demo has), so its integrations never mix with others'.
    const db = new URL(config.database.url);
    db.pathname = `${db.pathname.replace(/\/$/, '') || '/ats_relay'}_chaos`;
    await migrate(db.toString());
    const base = loadConfig({ ...envFromConfig(config), DATABASE_URL: db.toString() });
    const t0 = Date.now();
    const stamp = (): string => `[${String(Math.round((Date.now() - t0) / 1000)).padStart(4)} s]`;
    const results = await runChaos(base, { profile: PROFILES[profileName], scenarios, partitions, settleTimeoutMs: 180_000, say: (line) => console.log(`${stamp()} ${line}`) });
    console.log(`\n${table(results)}\n\n${results.length} scenarios in ${((Date.now() - t0) / 1000).toFixed(0)} s (profile ${profileName})`);
    return results.every((r) => r.ok) ? 0 : 1;
  },
});
