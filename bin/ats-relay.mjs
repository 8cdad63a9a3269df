#!/usr/bin/env node
// The `ats-relay` command: `ats-relay consume --role …`. Sources are TypeScript run through tsx.
import { register } from 'tsx/esm/api';

const commands = { consume: '../consumers/cli.ts' };
const [command, ...rest] = process.argv.slice(2);
if (!command || command === '--help' || command === '-h' || !(command in commands)) {
  const stream = command && !['--help', '-h'].includes(command) ? process.stderr : process.stdout;
  stream.write(`Usage: ats-relay <command> [options]\n\nCommands:\n  consume   run a consumer (ats-relay consume --help)\n`);
  process.exit(command && !['--help', '-h'].includes(command) ? 2 : 0);
}
register();
process.argv = [process.argv[0], process.argv[1], ...rest];
await import(new URL(commands[command], import.meta.url).href);
