/**
 * How the console shows a throttling episode (consumers/dispatcher/throttle-log.ts): a waiting state
 * of its own, next to — never counted with — failures and dead letters.
 */
import type { ThrottledIntegration } from '../../consumers/dispatcher/throttle-log.ts';
import { html, iso, timeAgo, type Html } from './html.ts';

/** "throttled since …, N deferred, next attempt …", with the data-* attributes tests read. */
export function throttledNote(t: ThrottledIntegration, now = Date.now()): Html {
  const next =
    t.nextAttemptAt === undefined
      ? ''
      : t.nextAttemptAt > now
        ? html`, next attempt <time datetime="${iso(t.nextAttemptAt)}" title="${iso(t.nextAttemptAt)}">in ${Math.max(1, Math.round((t.nextAttemptAt - now) / 1000))} s</time>`
        : html`, next attempt due now`;
  return html`<p class="small" data-throttled="${t.integrationId}" data-deferrals="${t.deferrals}"><span class="badge warn">throttled</span>
    since <time datetime="${iso(t.throttledSince)}">${iso(t.throttledSince)}</time> (${timeAgo(new Date(t.throttledSince), now)}), <b>${t.deferrals}</b> deferred${next}${t.alertedAt !== undefined ? html` · <span class="muted">alerted ${timeAgo(new Date(t.alertedAt), now)}</span>` : ''}</p>`;
}

export const THROTTLED_HINT = 'Throttled is not failed: the ATS asks us to slow down, so its applications wait (no retry used, nothing dead-lettered) and go out at the pace it allows.';
