/**
 * `npm run sandbox -- --port 4010 [--host 127.0.0.1] [--seed tenants.json]`: the ATS sandbox as a
 * process (the demo's and the benchmark's ATS). The seed file is a JSON array of tenant specs,
 * the same shape POST /_sandbox/tenants takes.
 */
import { readFile } from 'node:fs/promises';
import { runMain, UsageError } from '../lib/cli.ts';
import { startSandbox, type TenantSpec } from './server.ts';

await runMain({
  name: 'sandbox',
  usage: `Usage: npm run sandbox -- [--port N] [--host ADDR] [--seed FILE]

Starts the ATS sandbox: Greenhouse, Lever, Workable, Ashby and generic REST emulations plus
/_sandbox/… control endpoints (tenants, faults, candidates, applications, stats, reset, files).

  --port N     listen port (default ATS_SANDBOX_PORT, 4010; 0 = any free port)
  --host ADDR  listen address (default 127.0.0.1)
  --seed FILE  JSON array of tenants to register at start
`,
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    seed: { type: 'string' },
  },
  async run({ config, values, onShutdown, shutdownRequested }) {
    const port = values.port === undefined ? config.http.sandboxPort : Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new UsageError(`--port must be 0–65535, got "${values.port}"`);
    const sandbox = await startSandbox({ port, host: values.host ?? '127.0.0.1' });
    onShutdown(() => sandbox.close());
    if (values.seed) {
      const tenants = JSON.parse(await readFile(values.seed, 'utf8')) as TenantSpec[];
      if (!Array.isArray(tenants)) throw new UsageError('--seed must name a JSON array of tenant specs');
      for (const t of tenants) sandbox.addTenant(t);
    }
    process.stdout.write(`ATS sandbox listening on ${sandbox.url}\n`);
    await shutdownRequested;
  },
});
