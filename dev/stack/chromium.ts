/**
 * Chromium for the console's browser tests: Debian's `chromium` package at /usr/bin/chromium,
 * installed with apt-get when it is missing and we run as root (CI containers, fresh machines);
 * otherwise a StackError that says how to install it.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { StackError } from './toolchain.ts';

const run = promisify(execFile);
export const CHROMIUM_PATH = '/usr/bin/chromium';

/**
 * Flags for a headless, offline Chromium (no GPU, no background traffic). Playwright's `launch`
 * gives every run a fresh temporary profile (--user-data-dir) of its own and removes it on close.
 */
export function chromiumArgs(): string[] {
  return [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ];
}

export async function ensureChromium(log: (line: string) => void = () => undefined): Promise<string> {
  if (existsSync(CHROMIUM_PATH)) return CHROMIUM_PATH;
  const root = process.getuid?.() === 0;
  if (!root || !existsSync('/usr/bin/apt-get')) {
    throw new StackError(`Chromium was not found at ${CHROMIUM_PATH}. Install Debian's package: sudo apt-get install -y chromium`);
  }
  log('installing chromium with apt-get (once)…');
  const env = { DEBIAN_FRONTEND: 'noninteractive', PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
  try {
    await run('/usr/bin/apt-get', ['update'], { env, maxBuffer: 64 * 1024 * 1024 });
    await run('/usr/bin/apt-get', ['install', '-y', '--no-install-recommends', 'chromium'], { env, maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    throw new StackError(`apt-get install chromium failed: ${(err as Error).message}`);
  }
  if (!existsSync(CHROMIUM_PATH)) throw new StackError(`apt-get installed chromium, but ${CHROMIUM_PATH} is still missing`);
  return CHROMIUM_PATH;
}
