#!/usr/bin/env node
// The `ats-relay` command: `ats-relay consume --role …`. It runs the built JavaScript in dist/
// (`npm run build`) with plain node, so production has no TypeScript loader in the process;
// in development `npm run consume -- …` runs the same CLI from source through tsx.
import { existsSync } from 'node:fs';

const commands = { consume: '../dist/consumers/cli.js' };
const [command, ...rest] = process.argv.slice(2);
if (!command || command === '--help' || command === '-h' || !(command in commands)) {
  const stream = command && !['--help', '-h'].includes(command) ? process.stderr : process.stdout;
  stream.write(`Usage: ats-relay <command> [options]\n\nCommands:\n  consume   run a consumer (ats-relay consume --help)\n`);
  process.exit(command && !['--help', '-h'].includes(command) ? 2 : 0);
}
const entry = new URL(commands[command], import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write(`ats-relay: ${entry.pathname} is missing: run \`npm run build\` first (or \`npm run ${command} -- …\` from source)\n`);
  process.exit(1);
}
process.argv = [process.argv[0], process.argv[1], ...rest];
await import(entry.href);
