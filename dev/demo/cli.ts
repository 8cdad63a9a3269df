import { runMain } from '../../lib/cli.ts';
import { runDemo } from './run.ts';

await runMain({
  name: 'demo',
  usage: `Usage: npm run demo [-- --fast] [--keep] [--count N]

Runs the whole pipeline on this machine and tells its story, stage by stage:
  1. brings up the local stack if it is not running (or uses the services named in the environment)
  2. creates a demo database and fresh demo topics
  3. starts the ATS sandbox with three customers: one healthy (Greenhouse v3), one whose ATS
     answers 503 for a while (Lever), one with wrong credentials stored (Workable)
  4. starts every consumer: dispatcher, the retry tiers, the DLQ → S3 sink and the alerts
  5. publishes applications and shows a live view: delivered, waiting per retry tier, dead-lettered
  6. shows the alert digest that was e-mailed and the S3 archive of the dead letters
  7. fixes the bad credentials, redrives that customer's dead letters, shows them delivered
  8. the way back: Acme's ATS moves a candidate to "interview" and fires its signed web hook; the
     API accepts it and the ApplicationStatusChanged event arrives on the status topic
  9. prints a summary and stops everything it started

Options:
  --fast        short retry tiers (5 s / 10 s / 15 s) and alert window, so the story takes about a minute
  --keep        leave everything running at the end (inspect it, e.g. with Kafka UI via docker compose)
  --count N     applications per customer (default 10)
  -h, --help    this help`,
  options: { fast: { type: 'boolean' }, keep: { type: 'boolean' }, count: { type: 'string' } },
  async run({ config, values }) {
    const perCustomer = values.count === undefined ? 10 : Number(values.count);
    if (!Number.isInteger(perCustomer) || perCustomer < 1 || perCustomer > 10_000) {
      process.stderr.write('demo: --count takes a whole number from 1 to 10000\n');
      return 2;
    }
    return runDemo(config, { fast: values.fast === true, keep: values.keep === true, perCustomer, out: (line) => console.log(line) });
  },
});
