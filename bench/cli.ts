/**
 * `npm run bench`: brings the stack up if needed, runs the dispatcher benchmark with its
 * baselines (paired rounds), steady load and scale-out, prints a table, and ends with one JSON line
 * of every figure (for scripts to compare).
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { runMain, wholeNumberFlag } from '../lib/cli.ts';
import { build } from '../dev/build.ts';
import { splitFlags } from '../dev/node-options.ts';
import { stackUp } from '../dev/stack/stack.ts';
import { runDispatchBench } from './dispatch.ts';

/** `--quick`: the same phases, small enough for a smoke run on a loaded machine (about 2 minutes). */
const QUICK = { count: 2_000, warmup: 1_000, naiveSeconds: 3, rawSeconds: 3, steadySeconds: 5, scaleOutCount: 2_000 };

await runMain({
  name: 'bench',
  usage: `Usage: npm run bench [-- --count N] [--warmup N] [--rounds R] [--partitions P] [--max-in-flight M] [--naive-seconds S]
                     [--raw-seconds S] [--steady-rates 200,1000] [--steady-seconds S] [--scale-out-count N]
                     [--cpu-prof DIR] [--node-options FLAGS] [--quick] [--source]

Measures, in one run and against each other, in R paired rounds (figures are medians over them):
  dispatcher at 0 ms and 50 ms added ATS latency (a separate process, as deployed): deliveries/s and
  its own CPU per delivery (process.cpuUsage over the measured window ÷ deliveries)
  naive kafkajs eachMessage consumers, same handler: kafkajs defaults (one message at a time), and
  one message at a time per partition with partitions in parallel
  the ATS sandbox's raw capacity driven straight by undici (no Kafka), and that client's CPU per delivery
  the connectors alone (createConnectors().deliver, no Kafka, no PostgreSQL) at the raw client's
  concurrency: the dispatcher's CPU split into the HTTP work with the vendor logic and the pipeline
then, once: steady load (a fixed publish rate, 0 and 50 ms ATS latency: p50/p99 publish → ATS receipt,
after 5 s at the same rate that are reported on their own: a just-started process's first records)
and scale-out (1 vs 2 dispatcher processes in one group draining the same backlog).
Prints a table; the last line is JSON.

Options:
  --count N            applications per dispatcher run (default 20000)
  --warmup N           applications each dispatcher delivers before its measured window (default 5000;
                       0 measures a just-started process); their CPU per delivery is reported apart
  --rounds R           paired rounds (default 3)
  --partitions P       partitions of the fresh topics (default 12)
  --max-in-flight M    dispatcher deliveries in flight (default 512)
  --naive-seconds S    how long each naive run lasts (default 15)
  --raw-seconds S      how long each raw sandbox run lasts (default 10)
  --steady-rates LIST  publish rates of the steady-load phase, applications/s (default 200,1000; 0 skips it)
  --steady-seconds S   how long each steady-load run publishes (default 60)
  --scale-out-count N  backlog of the scale-out phase (default 20000; 0 skips it)
  --cpu-prof DIR       write a V8 CPU profile of each 0 ms dispatcher run into DIR (node --cpu-prof);
                       summarise one with: npx tsx bench/profile-summary.ts DIR/<file>.cpuprofile
  --node-options FLAGS NODE_OPTIONS for the dispatcher instead of its Deployment's
                       (deploy/k8s/base/dispatcher.yaml: the heap ceiling), for experiments; '' runs it bare
  --quick              small runs of every phase (${Object.entries(QUICK).map(([k, v]) => `${k} ${v}`).join(', ')})
  --source             run the dispatcher from the sources through tsx instead of the build
                       (by default: npm run build, then dist/ with plain node, as deployed)`,
  options: {
    count: { type: 'string' },
    rounds: { type: 'string' },
    partitions: { type: 'string' },
    'max-in-flight': { type: 'string' },
    'naive-seconds': { type: 'string' },
    'raw-seconds': { type: 'string' },
    'steady-rates': { type: 'string' },
    'steady-seconds': { type: 'string' },
    'scale-out-count': { type: 'string' },
    'cpu-prof': { type: 'string' },
    'node-options': { type: 'string' },
    quick: { type: 'boolean' },
    warmup: { type: 'string' },
    source: { type: 'boolean' },
  },
  async run({ config, values }) {
    const say = (line: string): void => void process.stderr.write(`${line}\n`);
    const steadyRates = (values['steady-rates'] ?? '200,1000')
      .split(',')
      .map((r) => wholeNumberFlag('steady-rates', r.trim(), 0) ?? 0)
      .filter((r) => r > 0);
    const quick = values.quick ? QUICK : undefined;
    const dispatcher = values.source ? 'source' : 'built';
    const cpuProfileDir = values['cpu-prof'] ? path.resolve(values['cpu-prof']) : undefined;
    // Every flag is checked before the stack and the build: a typo costs nothing.
    const options = {
      count: wholeNumberFlag('count', values.count) ?? quick?.count ?? 20_000,
      warmup: wholeNumberFlag('warmup', values.warmup, 0) ?? quick?.warmup ?? 5_000,
      rounds: wholeNumberFlag('rounds', values.rounds) ?? 3,
      partitions: wholeNumberFlag('partitions', values.partitions) ?? 12,
      maxInFlight: wholeNumberFlag('max-in-flight', values['max-in-flight']) ?? 512,
      naiveSeconds: wholeNumberFlag('naive-seconds', values['naive-seconds']) ?? quick?.naiveSeconds ?? 15,
      rawSeconds: wholeNumberFlag('raw-seconds', values['raw-seconds']) ?? quick?.rawSeconds ?? 10,
      steadyRates,
      steadySeconds: wholeNumberFlag('steady-seconds', values['steady-seconds']) ?? quick?.steadySeconds ?? 60,
      scaleOutCount: wholeNumberFlag('scale-out-count', values['scale-out-count'], 0) ?? quick?.scaleOutCount ?? 20_000,
      cpuProfileDir,
      dispatcherNodeOptions: values['node-options'] === undefined ? undefined : splitFlags(values['node-options']),
      dispatcher,
      say,
    } as const;
    await stackUp(config, (m) => say(`[stack] ${m}`));
    if (dispatcher === 'built') {
      say('npm run build…');
      build();
    }
    if (cpuProfileDir) mkdirSync(cpuProfileDir, { recursive: true });
    const result = await runDispatchBench(config, options);
    const rows: Array<[string, string]> = [
      ['machine load (1 min, start / end)', `${result.loadAvg[0]} / ${result.loadAvg[1]}`],
      ['node (bench, dispatcher, sandbox)', result.node],
      ['dispatcher, 0 ms ATS latency', `${result.deliveriesPerSec0ms} deliveries/s (p50 ${result.p50Ms0ms} ms, p99 ${result.p99Ms0ms} ms; rounds ${result.samples.deliveriesPerSec0ms.join(' / ')})`],
      ['dispatcher, 50 ms ATS latency', `${result.deliveriesPerSec50ms} deliveries/s (p50 ${result.p50Ms50ms} ms, p99 ${result.p99Ms50ms} ms)`],
      ['dispatcher CPU per delivery, 0 / 50 ms', `${result.cpuUsPerDelivery0ms} / ${result.cpuUsPerDelivery50ms} µs (rounds at 0 ms ${result.samples.cpuUsPerDelivery0ms.join(' / ')}; after a warm-up of ${result.warmup})`],
      ...(result.coldCpuUsPerDelivery0ms === undefined ? [] : [['its warm-up: a just-started process\'s first deliveries, 0 ms', `${result.coldCpuUsPerDelivery0ms} µs CPU per delivery (JIT, connections, first reads)`] as [string, string]]),
      ['dispatcher statements per delivery, 0 ms', `${result.statementsPerDelivery0ms} (coalesced; rounds ${result.samples.statementsPerDelivery0ms.join(' / ')})`],
      ['raw undici client CPU per delivery', `${result.rawCpuUsPerDelivery} µs (rounds ${result.samples.rawCpuUsPerDelivery.join(' / ')})`],
      ['CPU per delivery vs raw, 0 ms', `${result.cpuRatioVsRaw0ms}× (target ≤ 2×; rounds ${result.samples.cpuRatioVsRaw0ms.join(' / ')})`],
      ['connectors alone (no Kafka, no PostgreSQL) CPU per delivery', `${result.connectorCpuUsPerDelivery} µs = ${result.connectorCpuRatioVsRaw}× raw (rounds ${result.samples.connectorCpuUsPerDelivery.join(' / ')})`],
      ['the pipeline around them (dispatcher − connectors), 0 ms', `${result.pipelineCpuUsPerDelivery0ms} µs per delivery`],
      ['naive (kafkajs defaults), 0 / 50 ms', `${result.naivePerSec0ms} / ${result.naivePerSec50ms} deliveries/s`],
      ['naive, partitions in parallel, 0 / 50 ms', `${result.naivePerPartitionPerSec0ms} / ${result.naivePerPartitionPerSec50ms} deliveries/s`],
      ['sandbox raw capacity (undici)', `${result.rawSandboxPerSec0ms} deliveries/s (median of ${result.rawSandboxSamples.join(' / ')})`],
      ['ratio vs naive at 50 ms', `${result.ratioVsNaive50ms}× (target ≥ 100×); vs naive with parallel partitions ${result.ratioVsNaivePerPartition50ms}×`],
      ['ratio vs raw at 0 ms', `${result.ratioVsRaw0ms} (target ≥ 0.5; rounds ${result.samples.ratioVsRaw0ms.join(' / ')})`],
      [`dispatcher peak RSS (${dispatcher === 'built' ? 'built, plain node' : 'sources through tsx'}, ${result.dispatcherNodeOptions})`, `${result.peakRssMb} MB (target < ${dispatcher === 'built' ? 250 : 300} MB)`],
      ...result.steady.map((r): [string, string] => [
        `steady ${r.ratePerSec}/s, ${r.atsLatencyMs} ms ATS latency`,
        `publish → ATS receipt p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, max ${r.maxMs} ms${r.ratePerSec === 200 && r.atsLatencyMs === 0 ? ' (target p99 < 250 ms)' : ''}; ${r.cpuUsPerDelivery} µs CPU/delivery; first ${r.warmup.seconds} s after start p99 ${r.warmup.p99Ms} ms, max ${r.warmup.maxMs} ms`,
      ]),
      ...(result.scaleOut
        ? [['scale-out, 1 → 2 processes', `${result.scaleOut.perSec1} → ${result.scaleOut.perSec2} deliveries/s = ${result.scaleOut.ratio}× (CPU/delivery ${result.scaleOut.cpuUsPerDelivery1} → ${result.scaleOut.cpuUsPerDelivery2} µs)`] as [string, string]]
        : []),
    ];
    const w = Math.max(...rows.map((r) => r[0].length));
    console.log(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n'));
    console.log(JSON.stringify(result));
  },
});
