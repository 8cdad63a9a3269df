/**
 * The demo's way back: a recruiter at Acme moves one delivered candidate to "Interview" in their
 * Greenhouse; the sandbox fires Greenhouse's signed `candidate_stage_change` web hook at the API,
 * which verifies it and makes it durable (inbox + outbox); the outbox relay publishes
 * ApplicationStatusChanged on the status topic, keyed by our application id — which the demo
 * reads back and decodes through the registry.
 */
import type { Config } from '../../lib/config.ts';
import type { Keyring } from '../../registry/keyring.ts';
import type { Pool } from '../../lib/db.ts';
import type { KafkaClient } from '../../lib/kafka/index.ts';
import type { Logger } from '../../lib/logger.ts';
import { noFilters, readRecords } from '../../api/console/topic-reader.ts';
import { createTopicCodecs } from '../../producers/outbox/codecs.ts';
import { createWebhookSecrets, webhookUrl } from '../../producers/webhooks/secrets.ts';
import type { SandboxClient } from '../../sandbox/client.ts';
import type { DemoCustomer } from './customers.ts';

export interface WayBackContext {
  config: Config;
  pool: Pool;
  keyring: Keyring;
  kafka: KafkaClient;
  logger: Logger;
  sandbox: SandboxClient;
  /** Acme, whose Greenhouse fires the web hook. */
  customer: DemoCustomer;
  /** Where the API listens (the web hook URL's base). */
  apiUrl: string;
  timeoutMs: number;
  out(line: string): void;
}

export async function showWayBack(ctx: WayBackContext): Promise<void> {
  const { customer, out } = ctx;
  const integrationId = customer.integration.id;
  // What the customer pastes into Greenhouse's web hook form; the secret is shown to them once, not here.
  const secret = await createWebhookSecrets({ pool: ctx.pool, keyring: ctx.keyring }).rotate(integrationId);
  const url = webhookUrl(ctx.apiUrl, integrationId);
  out(`   ${customer.name}'s Greenhouse web hook "Candidate has changed stage" → ${url} (secret set, sealed like credentials)`);

  const { rows } = await ctx.pool.query<{ application_id: string; external_application_id: string; external_candidate_id: string }>(
    `SELECT application_id, external_application_id, external_candidate_id FROM deliveries
      WHERE integration_id = $1 AND status = 'delivered' AND external_application_id IS NOT NULL ORDER BY delivered_at LIMIT 1`,
    [integrationId],
  );
  const delivered = rows[0];
  if (!delivered) throw new Error(`demo: no delivered application of ${customer.name} to move`);
  out(`   a recruiter moves application ${delivered.external_application_id} (ours: ${delivered.application_id}) to "Interview" in Greenhouse`);
  const [result] = await ctx.sandbox.fireWebhooks([
    {
      platform: customer.platform,
      url,
      secret,
      kind: 'stage_change',
      stage: 'Interview',
      externalApplicationId: delivered.external_application_id,
      externalCandidateId: delivered.external_candidate_id,
    },
  ]);
  out(`   the sandbox POSTs the signed candidate_stage_change web hook → ${result?.status} ${result?.body ?? ''}`);
  if (result?.status !== 200) throw new Error(`demo: the API refused the web hook (${result?.status} ${result?.body})`);

  const topic = ctx.config.inbound.statusTopic;
  const codec = createTopicCodecs(ctx.config)(topic);
  const deadline = Date.now() + ctx.timeoutMs;
  for (;;) {
    const { records } = await readRecords({ kafka: ctx.kafka, topic, filters: noFilters(), logger: ctx.logger, max: 100, stallTimeoutMs: 5_000 });
    const record = records.find((r) => r.key?.toString('utf8') === delivered.application_id);
    if (record?.value) {
      const event = (await codec.decode(record.value)) as Record<string, unknown>;
      out(`   ApplicationStatusChanged on ${topic} (partition ${record.partition}, offset ${record.offset}, key = our application id):`);
      for (const field of ['applicationId', 'companyId', 'platform', 'status', 'rawStage', 'vendorEvent', 'externalApplicationId']) out(`   | ${field.padEnd(22)} ${String(event[field])}`);
      return;
    }
    if (Date.now() > deadline) throw new Error(`demo: no ApplicationStatusChanged for ${delivered.application_id} on ${topic} after ${ctx.timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
