/**
 * Options of the outbox relay, with their defaults next to each field. The CLI exposes each as a flag.
 */
export interface RelayTuning {
  /** Rows claimed, encoded and sent per batch (one transaction holds their row locks). */
  batchSize: number;
  /** Upper bound of bytes per produce request; a batch is split into sends of at most this size. */
  maxSendBytes: number;
  /** Polling fallback: how often to look for rows when no NOTIFY arrived. */
  pollIntervalMs: number;
  /** Sent rows older than this are deleted. */
  retentionMs: number;
  /** How often to prune sent rows. */
  pruneIntervalMs: number;
  /** Longest wait between retries after a failed batch (backoff doubles from pollIntervalMs / 2). */
  maxBackoffMs: number;
  /**
   * Batches claimed ahead of the broker's acks (each holds its rows' locks and a pool connection until
   * it is marked sent). Sends stay one after another, in id order.
   */
  pipelineDepth: number;
}

export const DEFAULT_RELAY_TUNING: RelayTuning = {
  batchSize: 1_000,
  maxSendBytes: 512 * 1024,
  pollIntervalMs: 1_000,
  retentionMs: 7 * 24 * 3_600_000,
  pruneIntervalMs: 60_000,
  maxBackoffMs: 30_000,
  pipelineDepth: 3,
};
