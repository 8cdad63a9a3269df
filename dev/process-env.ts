/**
 * The environment handed to child processes: ours plus explicit additions. Children read their
 * own config through lib/config.ts; this is only the hand-over.
 */
export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  return { ...env, ...extra };
}
