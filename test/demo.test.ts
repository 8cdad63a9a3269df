/**
 * `npm run demo -- --fast` as a smoke test: the main job runs end to end on the real stack and
 * shows every stage.
 */
import { expect, it } from 'vitest';
import { createKafka, withAdmin } from '../lib/kafka/index.ts';
import { createLogger } from '../lib/logger.ts';
import { testConfig, testEnv, uniqueName } from './support/config.ts';
import { spawnTs } from '../dev/spawn-entrypoint.ts';

it('npm run demo -- --fast tells the whole story and exits 0', async () => {
  const demo = spawnTs('dev/demo/cli.ts', ['--fast', '--count', '6'], testEnv());
  const code = await demo.exited;
  const output = demo.output();
  expect(code, output).toBe(0);
  for (const stage of ['== 1. Local stack', '== 3. ATS sandbox', '== 4. Consumers', '== 6. Live view', '== 7. The alert digest', '== 8. The S3 archive', '== 9. Fix Initech', '== 10. The way back', '== 11. Summary']) {
    expect(output).toContain(stage);
  }
  expect(output).toMatch(/Subject: \[ats-relay\] 6 dead letters/);
  expect(output).toMatch(/Initech\s+workable\s+6\s+0\s+\d+\s+6\s+6\s+6/);
  expect(output).toContain('each exactly once');
  // The way back: the signed stage change was accepted and its status event read back from Kafka.
  expect(output).toMatch(/signed candidate_stage_change web hook → 200/);
  expect(output).toMatch(/\| status\s+interview/);
  expect(output).toMatch(/\| vendorEvent\s+candidate_stage_change/);

  // Its consumers ran in groups of its own (a broker where the runbook's processes run keeps its
  // groups to itself), and the demo removed them at the end.
  const groups = /consumer groups (.+)/.exec(output)?.[1]?.split(', ') ?? [];
  expect(groups).toHaveLength(6);
  expect(groups.every((g) => /^ats-demo-[0-9a-f]+\.(dispatcher|retry-[\w-]+|dlq-s3|alerts)$/.test(g)), groups.join()).toBe(true);
  const kafka = createKafka(testConfig().kafka, createLogger({ level: 'silent' }), { clientIdSuffix: uniqueName('demo-test') });
  const left = (await withAdmin(kafka, (a) => a.listGroups())).map((g) => g.groupId);
  expect(left.filter((g) => groups.includes(g))).toEqual([]);
}, 300_000);
