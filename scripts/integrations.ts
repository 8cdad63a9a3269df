/**
 * `npm run integrations -- <command>`: the operators' view of the integration registry. Same
 * validation and repository as the HTTP API; secrets are shown masked, tokens once.
 */
import { readFile } from 'node:fs/promises';
import { text } from 'node:stream/consumers';
import { runMain, UsageError } from '../lib/cli.ts';
import { Keyring } from '../registry/keyring.ts';
import { createPool } from '../lib/db.ts';
import { PLATFORMS, type Credentials, type Platform } from '../registry/integration.ts';
import { RegistryError } from '../registry/errors.ts';
import { maskCredentials } from '../registry/masking.ts';
import { createIntegrationRepository, type IntegrationRepository } from '../registry/repository.ts';
import type { IntegrationRecord } from '../registry/integrations.ts';
import { formatFieldErrors, validateNewIntegration, validatePatch, type FieldError } from '../registry/validation.ts';
import { renderFields, renderTable } from './text-table.ts';
import { createConnectors } from '../connectors/index.ts';
import { createLogger } from '../lib/logger.ts';
import { JobImportError, listSyncRuns, startJobImport } from '../producers/jobs/job-import.ts';
import { createWebhookSecrets, LEVER_WEBHOOK_EVENTS, webhookEventProblem, webhookUrl } from '../producers/webhooks/secrets.ts';

const COMMON = `Environment: DATABASE_URL, ATS_RELAY_ENCRYPTION_KEYS (required).`;

const USAGE: Record<string, string> = {
  '': `Usage: npm run integrations -- <command> [options]

Commands:
  add          Create an integration for a company
  list         List integrations (all, or one company's)
  show         Show one integration (credentials masked) and its job mappings
  update       Change an integration (optimistic locking on its version)
  disable      Stop deliveries to an integration (enable: start again)
  enable       Re-enable a disabled integration
  map-job      Map our job id to the ATS's job id (or --remove the mapping)
  rotate-keys  Re-encrypt every credential with the newest key of ATS_RELAY_ENCRYPTION_KEYS
  create-token Create an API token (shown once)
  revoke-token Revoke an API token
  webhook      Show an integration's webhook URL; --rotate sets a new secret (shown once; Lever: per --event)
  import-jobs  Import the ATS's open jobs now (JobSynced events to TOPIC_JOBS via the outbox)
  syncs        List an integration's job import runs

Run \`npm run integrations -- <command> --help\` for a command's options.
${COMMON}`,
  add: `Usage: npm run integrations -- add --company <id> --platform <platform> --name <name>
         --settings '<json>' (--credentials '<json>' | --credentials-file <path|->)
         [--api-base-url <url>] [--disabled] [--allow-missing-resume] [--json]

Platforms: ${PLATFORMS.join(', ')}.
Settings: greenhouse {"apiVersion":"v3","onBehalfOf":"123"}  lever {"performAs":"<user id>"}
  workable {"subdomain":"acme"}  ashby {}  generic {"url":"https://…","method":"POST","authStyle":"bearer","fieldMapping":{}}
Credentials: greenhouse v1 {"apiKey"}, v3 {"clientId","clientSecret"}; lever {"apiKey"}; workable {"token"};
  ashby {"apiKey"}; generic {"signingSecret"} plus apiKey (header) | token (bearer) | username+password (basic).
Prefer --credentials-file (or - for stdin): command-line arguments end up in shell history.
${COMMON}`,
  list: `Usage: npm run integrations -- list [--company <id>] [--platform <platform>] [--json]
${COMMON}`,
  show: `Usage: npm run integrations -- show <integration id> [--json]
${COMMON}`,
  update: `Usage: npm run integrations -- update <integration id> [--name <name>] [--settings '<json>']
         [--credentials '<json>' | --credentials-file <path|->] [--api-base-url <url|"">]
         [--allow-missing-resume true|false] [--version <n>] [--json]

--settings is merged key by key over the stored settings (null removes a key); credentials are replaced
as a whole. --version defaults to the version just read: a concurrent change still fails with a conflict.
${COMMON}`,
  disable: `Usage: npm run integrations -- disable <integration id>
${COMMON}`,
  enable: `Usage: npm run integrations -- enable <integration id>
${COMMON}`,
  'map-job': `Usage: npm run integrations -- map-job <integration id> <our job id> <ATS job id>
       npm run integrations -- map-job <integration id> <our job id> --remove
       npm run integrations -- map-job <integration id>            (list the mappings)
${COMMON}`,
  'rotate-keys': `Usage: npm run integrations -- rotate-keys

Re-encrypts every stored credential and webhook secret with the first key of ATS_RELAY_ENCRYPTION_KEYS. Rotation:
  1. prepend a new key: ATS_RELAY_ENCRYPTION_KEYS="k2:<new>,k1:<old>" and roll it out to every process;
  2. run rotate-keys;  3. remove k1 from the variable.
${COMMON}`,
  'create-token': `Usage: npm run integrations -- create-token (--admin | --company <id>) --name <description>

Prints the token once; only its SHA-256 is stored. An admin token sees every company.
${COMMON}`,
  'revoke-token': `Usage: npm run integrations -- revoke-token <token id>
${COMMON}`,
  webhook: `Usage: npm run integrations -- webhook <integration id> [--rotate [--secret-file <path|->] [--event <name>]]

Prints the URL the customer registers in their ATS (WEBHOOK_PUBLIC_BASE_URL/integrations/<id>/webhook).
--rotate generates a new webhook secret and prints it once; --secret-file stores the vendor's own value
instead (Lever's signature token). Workable signs with the account API token: no secret to set.
Lever issues one signature token per webhook, i.e. per event: store each with
  --rotate --secret-file <path|-> --event <name>
(${LEVER_WEBHOOK_EVENTS.join(', ')}).
An event without a token of its own is checked with the integration-wide one (--rotate without --event).
${COMMON}`,
  'import-jobs': `Usage: npm run integrations -- import-jobs <integration id> [--full] [--json]

Fetches the jobs that changed since the last run (the vendor's updated-since filter; the first run, every
JOB_FULL_SYNC_EVERY-th run and --full read every open job instead, all pages, within the integration's rate
limit), stores them and writes one JobSynced outbox row per job opened, updated or closed since the last run
(run \`npm run outbox-relay -- --topics …\` to publish). Exit 1 when the run fails or another run of the
integration is in progress.
${COMMON} Also ATS_REQUEST_TIMEOUT_MS, ATS_ALLOW_PRIVATE_NETWORKS, TOPIC_JOBS, JOB_FULL_SYNC_EVERY, JOB_FULL_SYNC_MAX_AGE_MS, JOB_SYNC_OVERLAP_MS.`,
  syncs: `Usage: npm run integrations -- syncs <integration id> [--json]
${COMMON}`,
};

/** Options each command accepts (runMain parses the union; anything else is a usage error). */
const ALLOWED: Record<string, string[]> = {
  add: ['company', 'platform', 'name', 'settings', 'credentials', 'credentials-file', 'api-base-url', 'disabled', 'allow-missing-resume', 'json'],
  list: ['company', 'platform', 'json'],
  show: ['json'],
  update: ['name', 'settings', 'credentials', 'credentials-file', 'api-base-url', 'allow-missing-resume', 'version', 'json'],
  disable: [],
  enable: [],
  'map-job': ['remove'],
  'rotate-keys': [],
  'create-token': ['admin', 'company', 'name'],
  'revoke-token': [],
  webhook: ['rotate', 'secret-file', 'event'],
  'import-jobs': ['json', 'full'],
  syncs: ['json'],
};

/** The command named first on the line (chooses the --help text before the arguments are parsed). */
const helpTopic = process.argv[2] && !process.argv[2].startsWith('-') ? process.argv[2] : '';
let command = '';

class InvalidInput extends Error {
  constructor(readonly fields: FieldError[]) {
    super(formatFieldErrors(fields));
  }
}

function parseJson(option: string, raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch (err) {
    throw new UsageError(`--${option} is not valid JSON: ${(err as Error).message}`);
  }
}

async function readCredentials(values: Values): Promise<Credentials | undefined> {
  if (values.credentials !== undefined && values['credentials-file'] !== undefined) {
    throw new UsageError('give --credentials or --credentials-file, not both');
  }
  if (values.credentials !== undefined) return parseJson('credentials', values.credentials) as Credentials;
  const file = values['credentials-file'];
  if (file === undefined) return undefined;
  const raw = file === '-' ? await text(process.stdin) : await readFile(file, 'utf8');
  return parseJson('credentials-file', raw) as Credentials;
}

function parseBool(option: string, raw: string | boolean | undefined): boolean | undefined {
  if (raw === undefined || typeof raw === 'boolean') return raw;
  if (raw === 'true' || raw === 'false') return raw === 'true';
  throw new UsageError(`--${option} must be true or false, got "${raw}"`);
}

function needId(positionals: string[], what = 'integration id'): string {
  const id = positionals[1];
  if (!id) throw new UsageError(`${command} needs an ${what}\n\n${USAGE[command]}`);
  return id;
}

async function load(repo: IntegrationRepository, id: string): Promise<IntegrationRecord> {
  const found = await repo.getIntegration(id);
  if (!found) throw new RegistryError('not_found', `integration ${id} not found`, { retriable: false, status: 404 });
  return found;
}

function integrationFields(i: IntegrationRecord): Array<[string, string | number | boolean | null]> {
  return [
    ['id', i.id],
    ['company', i.companyId],
    ['platform', i.platform],
    ['name', i.name],
    ['enabled', i.enabled],
    ['version', i.version],
    ['api base url', i.apiBaseUrl],
    ['settings', JSON.stringify(i.settings)],
    ['credentials', JSON.stringify(maskCredentials(i.credentials))],
    ['allow missing resume', i.allowMissingResume],
    ['key id', i.credentialsKeyId],
    ['created', i.createdAt.toISOString()],
    ['updated', i.updatedAt.toISOString()],
    ['last delivery', i.lastDeliveryAt?.toISOString() ?? null],
    ['last error', i.lastError],
  ];
}

function jsonView(i: IntegrationRecord): Record<string, unknown> {
  const { credentials, ...rest } = i;
  return { ...rest, credentials: maskCredentials(credentials) };
}

const options = {
  company: { type: 'string' },
  platform: { type: 'string' },
  name: { type: 'string' },
  settings: { type: 'string' },
  credentials: { type: 'string' },
  'credentials-file': { type: 'string' },
  'api-base-url': { type: 'string' },
  disabled: { type: 'boolean' },
  'allow-missing-resume': { type: 'string' },
  version: { type: 'string' },
  json: { type: 'boolean' },
  remove: { type: 'boolean' },
  admin: { type: 'boolean' },
  rotate: { type: 'boolean' },
  'secret-file': { type: 'string' },
  event: { type: 'string' },
  full: { type: 'boolean' },
} as const;

type Values = { [K in keyof typeof options]?: (typeof options)[K]['type'] extends 'boolean' ? boolean : string };

// `--allow-missing-resume` alone means true on add.
const argv = process.argv.slice(2).flatMap((a, i, all) =>
  a === '--allow-missing-resume' && (all[i + 1] === undefined || all[i + 1]!.startsWith('-')) ? [a, 'true'] : [a],
);

await runMain(
  {
    name: 'integrations',
    usage: USAGE[helpTopic] ?? USAGE['']!,
    options,
    async run({ config, values: parsed, positionals, onShutdown }) {
      const values = parsed as Values;
      command = positionals[0] ?? '';
      if (!(command in ALLOWED)) throw new UsageError(command ? `unknown command "${command}"\n\n${USAGE['']}` : USAGE['']!);
      const unexpected = Object.keys(values).filter((k) => !ALLOWED[command]!.includes(k));
      if (unexpected.length) throw new UsageError(`${command} does not take ${unexpected.map((k) => `--${k}`).join(', ')}\n\n${USAGE[command]}`);

      const keyring = new Keyring(config.crypto.encryptionKeys);
      // import-jobs holds one connection for its lock and one for its transaction.
      const pool = createPool(config.database, { max: 3, applicationName: 'ats-relay-integrations-cli' });
      onShutdown(() => pool.end());
      const repo = createIntegrationRepository({ pool, keyring });
      const out = (s: string): void => void process.stdout.write(`${s}\n`);
      const show = (i: IntegrationRecord): void => out(values.json ? JSON.stringify(jsonView(i), null, 2) : renderFields(integrationFields(i)));

      try {
        switch (command) {
          case 'add': {
            if (!values.company) throw new UsageError(`add needs --company\n\n${USAGE.add}`);
            const body = {
              platform: values.platform,
              name: values.name,
              settings: values.settings === undefined ? undefined : parseJson('settings', values.settings),
              credentials: await readCredentials(values),
              apiBaseUrl: values['api-base-url'] || null,
              enabled: !values.disabled,
              allowMissingResume: parseBool('allow-missing-resume', values['allow-missing-resume']) ?? false,
            };
            const checked = validateNewIntegration(body);
            if (!checked.ok) throw new InvalidInput(checked.errors);
            const created = await repo.createIntegration(values.company, checked.value);
            show(created);
            return;
          }
          case 'list': {
            if (values.platform && !(PLATFORMS as readonly string[]).includes(values.platform)) {
              throw new InvalidInput([{ field: 'platform', message: `must be one of: ${PLATFORMS.join(', ')}` }]);
            }
            const items = await repo.listIntegrations({ companyId: values.company, platform: values.platform as Platform | undefined });
            if (values.json) return out(JSON.stringify(items.map(jsonView), null, 2));
            out(
              renderTable(items, [
                { header: 'ID', value: (i) => i.id },
                { header: 'COMPANY', value: (i) => i.companyId },
                { header: 'PLATFORM', value: (i) => i.platform },
                { header: 'NAME', value: (i) => i.name },
                { header: 'ENABLED', value: (i) => (i.enabled ? 'yes' : 'no') },
                { header: 'VERSION', value: (i) => i.version },
                { header: 'KEY', value: (i) => i.credentialsKeyId },
                { header: 'LAST DELIVERY', value: (i) => i.lastDeliveryAt?.toISOString() },
                { header: 'LAST ERROR', value: (i) => i.lastError?.slice(0, 60) },
              ]),
            );
            out(`${items.length} integration${items.length === 1 ? '' : 's'}`);
            return;
          }
          case 'show': {
            const i = await load(repo, needId(positionals));
            const mappings = await repo.listJobMappings(i.id);
            if (values.json) return out(JSON.stringify({ ...jsonView(i), jobMappings: mappings }, null, 2));
            show(i);
            out('');
            out(mappings.length ? renderTable(mappings, [{ header: 'JOB', value: (m) => m.jobId }, { header: 'ATS JOB', value: (m) => m.externalJobId }]) : 'no job mappings');
            return;
          }
          case 'update': {
            const current = await load(repo, needId(positionals));
            const body: Record<string, unknown> = { version: values.version === undefined ? current.version : Number(values.version) };
            if (values.name !== undefined) body.name = values.name;
            if (values.settings !== undefined) body.settings = parseJson('settings', values.settings);
            const credentials = await readCredentials(values);
            if (credentials !== undefined) body.credentials = credentials;
            if (values['api-base-url'] !== undefined) body.apiBaseUrl = values['api-base-url'] || null;
            const allow = parseBool('allow-missing-resume', values['allow-missing-resume']);
            if (allow !== undefined) body.allowMissingResume = allow;
            if (Object.keys(body).length === 1) throw new UsageError(`update needs at least one change\n\n${USAGE.update}`);
            const checked = validatePatch(current, body);
            if (!checked.ok) throw new InvalidInput(checked.errors);
            const { patch, merged } = checked.value;
            const updated = await repo.updateIntegration(current.id, patch.version, {
              name: patch.name,
              apiBaseUrl: patch.apiBaseUrl,
              settings: patch.settings === undefined ? undefined : merged.settings,
              credentials: patch.credentials,
              allowMissingResume: patch.allowMissingResume,
            });
            show(updated);
            return;
          }
          case 'disable':
          case 'enable': {
            const current = await load(repo, needId(positionals));
            const updated = await repo.updateIntegration(current.id, current.version, { enabled: command === 'enable' });
            out(`integration ${updated.id} ${updated.enabled ? 'enabled' : 'disabled'} (version ${updated.version})`);
            return;
          }
          case 'map-job': {
            const id = needId(positionals);
            const [, , jobId, externalJobId] = positionals;
            if (!jobId) {
              const mappings = await repo.listJobMappings(id);
              out(renderTable(mappings, [{ header: 'JOB', value: (m) => m.jobId }, { header: 'ATS JOB', value: (m) => m.externalJobId }]));
              return;
            }
            if (values.remove) {
              if (externalJobId) throw new UsageError(`--remove takes no ATS job id\n\n${USAGE['map-job']}`);
              const removed = await repo.deleteJobMapping(id, jobId);
              if (!removed) throw new RegistryError('not_found', `job ${jobId} is not mapped on integration ${id}`, { retriable: false, status: 404 });
              out(`removed mapping of job ${jobId}`);
              return;
            }
            if (!externalJobId) throw new UsageError(`map-job needs the ATS job id\n\n${USAGE['map-job']}`);
            const { created } = await repo.putJobMapping(id, jobId, externalJobId);
            out(`${created ? 'mapped' : 're-mapped'} job ${jobId} → ${externalJobId}`);
            return;
          }
          case 'rotate-keys': {
            const { rotated, keyId } = await repo.rotateKeys();
            const secrets = await createWebhookSecrets({ pool, keyring }).reseal();
            out(`re-encrypted ${rotated} integration${rotated === 1 ? '' : 's'} and ${secrets} webhook secret${secrets === 1 ? '' : 's'} with key ${keyId}`);
            return;
          }
          case 'create-token': {
            if (!values.name) throw new UsageError(`create-token needs --name\n\n${USAGE['create-token']}`);
            if (Boolean(values.admin) === Boolean(values.company)) throw new UsageError(`give exactly one of --admin or --company <id>\n\n${USAGE['create-token']}`);
            const scope = values.admin ? ({ kind: 'admin' } as const) : ({ kind: 'company', companyId: values.company! } as const);
            const created = await repo.createApiToken({ name: values.name, scope });
            out(renderFields([['id', created.id], ['name', created.name], ['scope', values.admin ? 'admin' : `company:${values.company}`], ['token', created.token]]));
            out('\nStore the token now: it is not shown again (only its hash is kept).');
            return;
          }
          case 'webhook': {
            const integration = await load(repo, needId(positionals));
            const secrets = createWebhookSecrets({ pool, keyring });
            const url = webhookUrl(config.inbound.publicBaseUrl, integration.id);
            if (values['secret-file'] !== undefined && !values.rotate) throw new UsageError(`--secret-file goes with --rotate\n\n${USAGE.webhook}`);
            const event = values.event;
            if (event !== undefined) {
              // Lever issues the token; a generated one could never match, so --event needs the vendor's value.
              if (!values.rotate || values['secret-file'] === undefined) throw new UsageError(`--event goes with --rotate --secret-file\n\n${USAGE.webhook}`);
              const problem = webhookEventProblem(integration.platform, event);
              if (problem) throw new UsageError(`--event ${problem}`);
            }
            if (!values.rotate) {
              const info = await secrets.info(integration.id);
              const shared = info.shared ? `the webhook secret (set ${info.shared.rotatedAt.toISOString()})` : null;
              const signedWith =
                integration.platform === 'workable' ? 'the account API token' : shared ?? (info.events.length ? 'no integration-wide secret' : 'nothing yet: run with --rotate');
              const fields: Array<[string, string]> = [['url', url], ['platform', integration.platform], ['signed with', signedWith]];
              // Which Lever events have a token of their own (the others are checked with the integration-wide secret).
              for (const e of info.events) fields.push([`token for ${e.event}`, `set ${e.rotatedAt.toISOString()}`]);
              out(renderFields(fields));
              return;
            }
            if (integration.platform === 'workable') throw new UsageError('Workable signs webhooks with the account API token: update the "token" credential instead');
            const file = values['secret-file'];
            const given = file === undefined ? undefined : (file === '-' ? await text(process.stdin) : await readFile(file, 'utf8')).trim();
            if (given !== undefined && given.length < 16) throw new UsageError('the secret must be at least 16 characters');
            const secret = await secrets.rotate(integration.id, given, event);
            if (event) {
              // The token came from Lever: nothing to hand back, so it is not echoed.
              out(renderFields([['url', url], ['event', event], ['token', 'stored']]));
              out(`\n${event} webhooks are now checked with this token; other events keep theirs (or the integration-wide secret).`);
              return;
            }
            out(renderFields([['url', url], ['secret', secret]]));
            out('\nGive the secret to the ATS now: it is not shown again.');
            return;
          }
          case 'import-jobs': {
            const integration = await load(repo, needId(positionals));
            const logger = createLogger({ level: config.log.level, name: 'import-jobs' });
            const connectors = createConnectors({ requestTimeoutMs: config.ats.requestTimeoutMs, allowPrivateNetworks: config.ats.allowPrivateNetworks, resumeMaxBytes: config.ats.resumeMaxBytes, rateLimits: config.ats.rateLimits });
            onShutdown(() => connectors.close());
            let summary;
            try {
              const run = await startJobImport({ pool, lister: connectors, jobsTopic: config.inbound.jobsTopic, policy: config.inbound.jobSync, logger }, integration, 'cli', { full: values.full === true });
              summary = await run.done;
            } catch (err) {
              if (err instanceof JobImportError) {
                process.stderr.write(`integrations import-jobs: ${err.message}\n`);
                return 1;
              }
              throw err;
            }
            out(values.json ? JSON.stringify(summary, null, 2) : renderFields(Object.entries(summary) as Array<[string, string | number | null]>));
            return summary.status === 'succeeded' ? 0 : 1;
          }
          case 'syncs': {
            const integration = await load(repo, needId(positionals));
            const runs = await listSyncRuns(pool, integration.id);
            out(
              values.json
                ? JSON.stringify(runs, null, 2)
                : renderTable(runs, [
                    { header: 'RUN', value: (r) => r.id },
                    { header: 'TRIGGER', value: (r) => r.trigger },
                    { header: 'STATUS', value: (r) => r.status },
                    { header: 'STARTED', value: (r) => r.startedAt },
                    { header: 'MODE', value: (r) => (r.mode === 'full' ? `full (${r.fullReason ?? '?'})` : 'incremental') },
                    { header: 'SINCE', value: (r) => r.sinceMark ?? '' },
                    { header: 'PAGES', value: (r) => r.pages },
                    { header: 'OPENED', value: (r) => r.opened },
                    { header: 'UPDATED', value: (r) => r.updated },
                    { header: 'CLOSED', value: (r) => r.closed },
                    { header: '429s', value: (r) => r.rateLimited },
                    { header: 'ERROR', value: (r) => r.error ?? '' },
                  ]),
            );
            return;
          }
          case 'revoke-token': {
            const id = needId(positionals, 'API token id');
            if (!(await repo.revokeApiToken(id))) throw new RegistryError('not_found', `active token ${id} not found`, { retriable: false, status: 404 });
            out(`revoked token ${id}`);
            return;
          }
        }
      } catch (err) {
        if (err instanceof InvalidInput) {
          process.stderr.write(`integrations ${command}: invalid input:\n${err.fields.map((f) => `  ${f.field || '(input)'} ${f.message}`).join('\n')}\n`);
          return 2;
        }
        if (err instanceof RegistryError) {
          process.stderr.write(`integrations ${command}: ${err.message}\n`);
          return err.code === 'version_conflict' ? 3 : 1;
        }
        throw err;
      }
    },
  },
  argv,
);
