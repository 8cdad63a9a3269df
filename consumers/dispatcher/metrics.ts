/**
 * Prometheus metrics of the consumers, one registry per process (served on /metrics).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface ConsumerMetrics {
  registry: Registry;
  delivered: Counter<'platform'>;
  duplicates: Counter<'reason'>;
  retried: Counter<'tier'>;
  deferred: Counter<'reason' | 'where'>;
  deadLettered: Counter<'code'>;
  inFlight: Gauge;
  atsLatency: Histogram<'platform' | 'outcome'>;
  lag: Gauge<'topic' | 'partition'>;
  handlerRetries: Counter;
  fetched: Counter;
}

export function createConsumerMetrics(role: string): ConsumerMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ role });
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    delivered: new Counter({ name: 'ats_relay_delivered_total', help: 'Applications delivered to an ATS', labelNames: ['platform'], registers: [registry] }),
    duplicates: new Counter({ name: 'ats_relay_duplicates_total', help: 'Records acknowledged without an ATS call (already delivered)', labelNames: ['reason'], registers: [registry] }),
    retried: new Counter({ name: 'ats_relay_retried_total', help: 'Records sent to a retry tier', labelNames: ['tier'], registers: [registry] }),
    deferred: new Counter({
      name: 'ats_relay_deferred_total',
      help: 'Records deferred without using a try (throttled, or the application held by another process), waiting in process or parked on a tier',
      labelNames: ['reason', 'where'],
      registers: [registry],
    }),
    deadLettered: new Counter({ name: 'ats_relay_dead_lettered_total', help: 'Records sent to the DLQ, by error code', labelNames: ['code'], registers: [registry] }),
    inFlight: new Gauge({ name: 'ats_relay_in_flight', help: 'Deliveries in flight in this process', registers: [registry] }),
    atsLatency: new Histogram({
      name: 'ats_relay_ats_request_seconds',
      help: 'Duration of one delivery to an ATS (all its API calls)',
      labelNames: ['platform', 'outcome'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    lag: new Gauge({ name: 'ats_relay_consumer_lag', help: 'Records behind the high watermark, per partition', labelNames: ['topic', 'partition'], registers: [registry] }),
    handlerRetries: new Counter({ name: 'ats_relay_handler_retries_total', help: 'Outcomes that could not be made durable at once (Kafka/Postgres trouble)', registers: [registry] }),
    fetched: new Counter({
      name: 'ats_relay_records_fetched_total',
      help: 'Records received from Kafka, each time it sends one (a record fetched again after a rebalance or a due-time wait counts again): well above the records handled means fetches are wasted',
      registers: [registry],
    }),
  };
}
