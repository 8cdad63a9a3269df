import { runMain, UsageError, wholeNumberFlag } from '../../lib/cli.ts';
import { stackDown, stackLogs, stackStatus, stackUp, statusTable } from './stack.ts';
import { StackError } from './toolchain.ts';

const usage = `Usage: npm run stack -- <command>

The local stack, without Docker: Apache Kafka (KRaft, single node), Apicurio Registry
(Confluent-compatible API), Adobe S3Mock and maildev (SMTP + web), run from Maven Central and npm
artifacts cached under STACK_HOME, plus the PostgreSQL named by DATABASE_URL (database created and
migrated). Services already answering at their configured address are reused, not restarted.

Commands:
  up        install what is missing, start what is not running, wait until every service answers
  down      stop the processes that \`up\` started (nothing else)
  status    table of service, address, state
  logs      last lines of each service's log (logs <service> [-n lines])

Options:
  -n, --lines <n>   lines per log for \`logs\` (default 40)
  -h, --help        this help

Ports, heap sizes and the cache folder come from the environment (KAFKA_BROKERS,
SCHEMA_REGISTRY_URL, S3_ENDPOINT, SMTP_URL, MAIL_API_URL, STACK_*): see the README.`;

await runMain({
  name: 'stack',
  usage,
  options: { lines: { type: 'string', short: 'n' } },
  async run({ config, positionals, values }) {
    const [command, service] = positionals;
    const say = (msg: string): void => console.log(msg);
    try {
      switch (command) {
        case 'up': {
          const { states } = await stackUp(config, say);
          console.log(`\n${statusTable(states)}`);
          return states.every((s) => s.state === 'ready') ? 0 : 1;
        }
        case 'down': {
          const stopped = await stackDown(config, say);
          if (stopped.length === 0) console.log('nothing of ours was running');
          return 0;
        }
        case 'status': {
          const states = await stackStatus(config);
          console.log(statusTable(states));
          return states.every((s) => s.state === 'ready') ? 0 : 3;
        }
        case 'logs': {
          const lines = wholeNumberFlag('lines', values.lines) ?? 40;
          console.log(await stackLogs(config, service, lines));
          return 0;
        }
        default:
          throw new UsageError(command ? `unknown command "${command}"\n\n${usage}` : usage);
      }
    } catch (err) {
      if (err instanceof StackError) {
        console.error(`stack: ${err.message}`);
        return 1;
      }
      throw err;
    }
  },
});
