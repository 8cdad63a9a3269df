/**
 * The chaos suite's short profile (npm run chaos is the full one): under a steady load, SIGKILL
 * consumer processes and restart them, then mix malformed records of every kind into the main
 * topic. Each ends with the audit: nothing lost, nothing delivered twice, every dead letter
 * archived once and counted once in the digests.
 */
import { expect, it } from 'vitest';
import { runChaos, table } from '../dev/chaos/run.ts';
import { PROFILES } from '../dev/chaos/scenarios.ts';
import { testConfig } from './support/config.ts';

it('chaos (short profile): SIGKILLs and malformed records lose and duplicate nothing', async () => {
  const lines: string[] = [];
  const results = await runChaos(testConfig(), {
    profile: PROFILES.short,
    scenarios: ['sigkill', 'malformed'],
    partitions: 4,
    settleTimeoutMs: 60_000,
    oneWorld: true,
    say: (line) => lines.push(line),
  });
  const report = `${lines.join('\n')}\n${table(results)}`;
  expect(results).toHaveLength(1);
  for (const r of results) {
    expect(r.audit.duplicates, report).toBe(0);
    expect(r.audit.lost, report).toBe(0);
    expect(r.audit.applications, report).toBeGreaterThan(0);
    expect(r.ok, report).toBe(true);
  }
  // The 6 s session: a SIGKILLed dispatcher's partitions move on well within 20 s, restart included.
  expect(results[0]!.recoveryMs, report).toBeLessThan(20_000);
}, 290_000);
