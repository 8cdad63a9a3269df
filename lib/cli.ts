/**
 * One entrypoint shape for every process: parse args, print --help, build the config (a bad value
 * exits 2 naming the variable), run, and on SIGTERM/SIGINT close once within a bounded time.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, loadConfig, type Config } from './config.ts';

export class UsageError extends Error {
  override name = 'UsageError';
}

/** A numeric flag's value: undefined when the flag is absent, a UsageError naming it unless a number ≥ min. */
export function numberFlag(flag: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < min) throw new UsageError(`--${flag}: expected a number ≥ ${min}, got "${value}"`);
  return n;
}

/** The same for a whole number (digits only) ≥ min, 1 unless said. */
export function wholeNumberFlag(flag: string, value: string | undefined, min = 1): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min) throw new UsageError(`--${flag}: expected a whole number ≥ ${min}, got "${value}"`);
  return Number(value);
}

type Options = NonNullable<ParseArgsConfig['options']>;

export interface MainContext<O extends Options> {
  config: Config;
  values: ReturnType<typeof parseArgs<{ options: O; allowPositionals: true; strict: true }>>['values'];
  positionals: string[];
  /** Register cleanup run once on SIGTERM/SIGINT (last registered runs first). */
  onShutdown(fn: () => Promise<void> | void): void;
  /** Resolves when a shutdown signal arrives. */
  shutdownRequested: Promise<NodeJS.Signals>;
}

export interface MainSpec<O extends Options> {
  name: string;
  usage: string;
  options: O;
  run(ctx: MainContext<O>): Promise<number | void>;
}

export async function runMain<O extends Options>(spec: MainSpec<O>, argv = process.argv.slice(2)): Promise<void> {
  const options = { ...spec.options, help: { type: 'boolean', short: 'h' } } as O & { help: { type: 'boolean'; short: 'h' } };
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    process.stderr.write(`${spec.name}: ${(err as Error).message}\n\n${spec.usage}\n`);
    process.exit(2);
  }
  if ((parsed.values as Record<string, unknown>).help) {
    process.stdout.write(`${spec.usage.trimEnd()}\n`);
    process.exit(0);
  }

  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${spec.name}: invalid configuration: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }

  const cleanups: Array<() => Promise<void> | void> = [];
  let signalled: (s: NodeJS.Signals) => void = () => {};
  const shutdownRequested = new Promise<NodeJS.Signals>((resolve) => (signalled = resolve));
  let closing: Promise<void> | undefined;
  const closeAll = (): Promise<void> =>
    (closing ??= (async () => {
      for (const fn of cleanups.reverse()) {
        try {
          await fn();
        } catch (err) {
          process.stderr.write(`${spec.name}: error during shutdown: ${(err as Error).message}\n`);
        }
      }
    })());

  /** Whatever the reason for stopping, closing is bounded: past SHUTDOWN_TIMEOUT_MS the process just exits. */
  const boundShutdown = (): void => {
    const timer = setTimeout(() => {
      process.stderr.write(`${spec.name}: shutdown took longer than ${config.http.shutdownTimeoutMs} ms, exiting\n`);
      process.exit(1);
    }, config.http.shutdownTimeoutMs);
    timer.unref();
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    signalled(sig);
    boundShutdown();
    void closeAll().then(() => process.exit(0));
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);

  try {
    const code = await spec.run({
      config,
      values: parsed.values as MainContext<O>['values'],
      positionals: parsed.positionals,
      onShutdown: (fn) => cleanups.push(fn),
      shutdownRequested,
    });
    await closeAll();
    process.exit(code ?? 0);
  } catch (err) {
    boundShutdown();
    if (err instanceof UsageError || err instanceof ConfigError) {
      process.stderr.write(`${spec.name}: ${err.message}\n`);
      await closeAll();
      process.exit(2);
    }
    process.stderr.write(`${spec.name}: ${(err as Error).stack ?? String(err)}\n`);
    await closeAll();
    process.exit(1);
  }
}
