/**
 * One codec per topic for the outbox relay, each with its topic's contract: ApplicationSubmitted by
 * default, ApplicationStatusChanged on the status topic, JobSynced on the jobs topic.
 */
import type { Config } from '../../lib/config.ts';
import { createEventCodec, JOB_SCHEMA_FILE, loadSchemaFile, STATUS_SCHEMA_FILE, type EventCodec } from '../../lib/serde.ts';

export function createTopicCodecs(config: Pick<Config, 'schemaRegistry' | 'inbound'>): (topic: string) => EventCodec<unknown> {
  const codecs = new Map<string, EventCodec<unknown>>();
  const schemaFiles = new Map([
    [config.inbound.statusTopic, STATUS_SCHEMA_FILE],
    [config.inbound.jobsTopic, JOB_SCHEMA_FILE],
  ]);
  return (topic) => {
    let codec = codecs.get(topic);
    if (!codec) {
      const file = schemaFiles.get(topic);
      codec = createEventCodec<unknown>({ registryUrl: config.schemaRegistry.url, topic, ...(file ? { schema: loadSchemaFile(file) } : {}) });
      codecs.set(topic, codec);
    }
    return codec;
  };
}
