/**
 * `npm run bench`: brings the stack up if needed, runs the dispatcher benchmark with its
 * baselines, prints a table, and ends with one JSON line of every figure (for scripts to compare).
 */
import { runMain, wholeNumberFlag } from '../lib/cli.ts';
import { build } from '../dev/build.ts';
import { stackUp } from '../dev/stack/stack.ts';
import { runDispatchBench } from './dispatch.ts';

await runMain({
  name: 'bench',
  usage: `Usage: npm run bench [-- --count N] [--partitions P] [--max-in-flight M] [--naive-seconds S] [--source]

Measures, in one run and against each other:
  dispatcher at 0 ms and 50 ms added ATS latency (a separate process, as deployed)
  naive kafkajs eachMessage consumers, same handler: kafkajs defaults (one message at a time), and
  one message at a time per partition with partitions in parallel
  the ATS sandbox's raw capacity driven straight by undici (no Kafka)
and prints deliveries/s, p50/p99 end-to-end latency, peak RSS and the ratios. The last line is JSON.

Options:
  --count N            applications per dispatcher run (default 20000)
  --partitions P       partitions of the fresh topics (default 12)
  --max-in-flight M    dispatcher deliveries in flight (default 512)
  --naive-seconds S    how long each naive run lasts (default 15)
  --raw-seconds S      how long the raw sandbox run lasts (default 10)
  --source             run the dispatcher from the sources through tsx instead of the build
                       (by default: npm run build, then dist/ with plain node, as deployed)`,
  options: {
    count: { type: 'string' },
    partitions: { type: 'string' },
    'max-in-flight': { type: 'string' },
    'naive-seconds': { type: 'string' },
    'raw-seconds': { type: 'string' },
    source: { type: 'boolean' },
  },
  async run({ config, values }) {
    const say = (line: string): void => void process.stderr.write(`${line}\n`);
    await stackUp(config, (m) => say(`[stack] ${m}`));
    const dispatcher = values.source ? 'source' : 'built';
    if (dispatcher === 'built') {
      say('npm run build…');
      build();
    }
    const result = await runDispatchBench(config, {
      count: wholeNumberFlag('count', values.count) ?? 20_000,
      partitions: wholeNumberFlag('partitions', values.partitions) ?? 12,
      maxInFlight: wholeNumberFlag('max-in-flight', values['max-in-flight']) ?? 512,
      naiveSeconds: wholeNumberFlag('naive-seconds', values['naive-seconds']) ?? 15,
      rawSeconds: wholeNumberFlag('raw-seconds', values['raw-seconds']) ?? 10,
      dispatcher,
      say,
    });
    const rows: Array<[string, string]> = [
      ['dispatcher, 0 ms ATS latency', `${result.deliveriesPerSec0ms} deliveries/s (p50 ${result.p50Ms0ms} ms, p99 ${result.p99Ms0ms} ms)`],
      ['dispatcher, 50 ms ATS latency', `${result.deliveriesPerSec50ms} deliveries/s (p50 ${result.p50Ms50ms} ms, p99 ${result.p99Ms50ms} ms)`],
      ['naive (kafkajs defaults), 0 / 50 ms', `${result.naivePerSec0ms} / ${result.naivePerSec50ms} deliveries/s`],
      ['naive, partitions in parallel, 0 / 50 ms', `${result.naivePerPartitionPerSec0ms} / ${result.naivePerPartitionPerSec50ms} deliveries/s`],
      ['sandbox raw capacity (undici)', `${result.rawSandboxPerSec0ms} deliveries/s (median of ${result.rawSandboxSamples.join(' / ')})`],
      ['ratio vs naive at 50 ms', `${result.ratioVsNaive50ms}× (target ≥ 20×); vs naive with parallel partitions ${result.ratioVsNaivePerPartition50ms}×`],
      ['ratio vs raw at 0 ms', `${result.ratioVsRaw0ms} (target ≥ 0.5)`],
      [`dispatcher peak RSS (${dispatcher === 'built' ? 'built, plain node' : 'sources through tsx'})`, `${result.peakRssMb} MB (target < ${dispatcher === 'built' ? 250 : 300} MB)`],
    ];
    const w = Math.max(...rows.map((r) => r[0].length));
    console.log(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n'));
    console.log(JSON.stringify(result));
  },
});
