/**
 * `npm run api`: the integrations HTTP API. Checks at start-up that the keyring can read every
 * stored credential, listens on API_PORT, and on SIGTERM stops accepting requests, lets in-flight
 * ones finish, then closes the database pool.
 */
import { createConnectors } from '../connectors/index.ts';
import { runMain, UsageError } from '../lib/cli.ts';
import { Keyring } from '../registry/keyring.ts';
import { createPool } from '../lib/db.ts';
import { createLogger } from '../lib/logger.ts';
import { createIntegrationRepository } from '../registry/repository.ts';
import { createJobSyncScheduler } from '../producers/jobs/scheduler.ts';
import { buildApi } from './server.ts';

await runMain({
  name: 'api',
  usage: `Usage: npm run api [-- --port <port>] [-- --host <address>]

Serves the integrations HTTP API (routes: "Integration registry" in the README). POST /integrations/:id/test
calls the platform's connector (a cheap authenticated read against the ATS).

Options:
  --port <port>     Port to listen on (default: API_PORT, 3000; 0 = any free port)
  --host <address>  Address to bind (default: 0.0.0.0)
  -h, --help        Show this help

Environment: DATABASE_URL, ATS_RELAY_ENCRYPTION_KEYS (required), API_PORT, LOG_LEVEL, SHUTDOWN_TIMEOUT_MS,
ATS_REQUEST_TIMEOUT_MS, ATS_ALLOW_PRIVATE_NETWORKS, ATS_RATE_LIMITS, WEBHOOK_PUBLIC_BASE_URL, WEBHOOK_MAX_BYTES, WEBHOOK_TOLERANCE_MS,
TOPIC_APPLICATION_STATUS, TOPIC_JOBS, JOB_SYNC_INTERVAL_MS.
Tokens: create one with \`npm run integrations -- create-token --admin\` (or --company <id>).`,
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
  },
  async run({ config, values, onShutdown, shutdownRequested }) {
    const port = values.port === undefined ? config.http.apiPort : Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new UsageError(`--port must be a port number, got "${values.port}"`);
    const keyring = new Keyring(config.crypto.encryptionKeys);
    const log = createLogger({ level: config.log.level, name: 'ats-relay-api' });
    onShutdown(() => new Promise<void>((resolve) => log.flush(() => resolve())));
    const pool = createPool(config.database, { applicationName: 'ats-relay-api' });
    onShutdown(() => pool.end());
    const repository = createIntegrationRepository({ pool, keyring });
    // A wrong or missing key is a start-up error, not a 500 on the first request.
    await repository.assertCredentialsReadable();

    const connectors = createConnectors({
      requestTimeoutMs: config.ats.requestTimeoutMs,
      allowPrivateNetworks: config.ats.allowPrivateNetworks,
      resumeMaxBytes: config.ats.resumeMaxBytes,
      // Job imports (POST /sync, the scheduler) page through the ATS: within the operator's limits too.
      rateLimits: config.ats.rateLimits,
    });
    onShutdown(() => connectors.close());

    // Cleanups run last-registered first: stop serving and drain, then connectors, then the pool.
    const app = buildApi({ config, pool, keyring, log, repository, connectors, jobLister: connectors });
    onShutdown(async () => {
      log.info('api shutting down');
      await app.close();
    });
    if (config.inbound.jobSyncIntervalMs > 0) {
      const scheduler = createJobSyncScheduler({ pool, repo: repository, lister: connectors, jobsTopic: config.inbound.jobsTopic, policy: config.inbound.jobSync, logger: log, intervalMs: config.inbound.jobSyncIntervalMs });
      scheduler.start();
      onShutdown(() => scheduler.close()); // runs before the API stops: no new runs; the one in progress is aborted and recorded as failed (its mark stays)
    }
    const address = await app.listen({ port, host: values.host ?? '0.0.0.0' });
    log.info({ address, keyId: keyring.primaryKeyId }, 'api listening');
    await shutdownRequested;
  },
});
