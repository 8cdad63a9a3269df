/**
 * Options of a delivery consumer (the dispatcher or one retry tier), with their defaults.
 */
import type { Config, RetryTier } from '../../lib/config.ts';
import { HEADER, headerInt, type HeaderMap } from '../../lib/headers.ts';

export const GROUP_PREFIX = 'ats-relay';

export type DeliveryRole = { role: 'dispatcher' } | { role: 'retry'; tier: string };

export interface DeliveryOptions {
  /** Consumer group (default `ats-relay.dispatcher` / `ats-relay.<tier>`); tests pass unique ones. */
  groupId: string;
  /** The topic read (default: the main topic, or the tier's topic). */
  topic: string;
  /** Deliveries in flight per process, across partitions (DISPATCHER_MAX_IN_FLIGHT, default 256). */
  maxInFlight: number;
  /** KAFKA_SESSION_TIMEOUT_MS (default 10 s). */
  sessionTimeoutMs: number;
  /** Time allowed for in-flight deliveries at shutdown before they are handed to the next tier (default SHUTDOWN_TIMEOUT_MS − 10 s, at least 1 s). */
  drainTimeoutMs: number;
  /** When a record may run (retry tiers: its `ats-due-at` header; the dispatcher: at once, undefined). */
  dueAt: ((headers: HeaderMap) => number | undefined) | undefined;
}

export function groupIdFor(role: DeliveryRole): string {
  return role.role === 'dispatcher' ? `${GROUP_PREFIX}.dispatcher` : `${GROUP_PREFIX}.${role.tier}`;
}

export function tierByName(config: Config, name: string): RetryTier {
  const tier = config.topics.retryTiers.find((t) => t.name === name || t.topic === name);
  if (!tier) throw new Error(`unknown retry tier "${name}" (configured: ${config.topics.retryTiers.map((t) => t.name).join(', ')})`);
  return tier;
}

export function deliveryOptions(config: Config, role: DeliveryRole, overrides: Partial<DeliveryOptions> = {}): DeliveryOptions {
  return {
    groupId: groupIdFor(role),
    topic: role.role === 'dispatcher' ? config.topics.applications : tierByName(config, role.tier).topic,
    maxInFlight: config.dispatcher.maxInFlight,
    sessionTimeoutMs: config.kafka.sessionTimeoutMs,
    drainTimeoutMs: Math.max(1_000, config.http.shutdownTimeoutMs - 10_000),
    dueAt: role.role === 'retry' ? (headers) => headerInt(headers, HEADER.dueAt) : undefined,
    ...overrides,
  };
}
