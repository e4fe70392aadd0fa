/**
 * Telling the on-call: which of a deployment's changes of phase are events worth a message, and the
 * message. Pure (bundled into workflow code); the activity signs and posts it (activities/notify.ts).
 */
import type { DeploymentStatus, Phase } from './deployment';

export const NOTIFY_EVENTS = ['waiting-for-window', 'failed', 'awaiting-operator', 'reminder', 'rolled-back', 'succeeded'] as const;
export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];

/**
 * A webhook to tell, as the fleet file names it: by a target name the worker resolves to its URL and
 * signing secret from its own configuration (src/domain/notify-targets.ts), so neither reaches the
 * workflow's input nor its history. The older form (`url` + `secretEnv`) is still taken, deprecated:
 * its URL travels in the input (a Slack URL's path is a token).
 */
export type NotifyTarget = NamedNotifyTarget | UrlNotifyTarget;
export interface NamedNotifyTarget {
  /** A name in the worker's notification targets (NIXFLEET_NOTIFY_TARGETS_FILE). */
  target: string;
  events: NotifyEvent[];
  /** Seconds before the manual window closes that the reminder goes out. */
  remindBefore: number;
}
/** @deprecated the URL travels in the workflow's input and history; name a target instead. */
export interface UrlNotifyTarget {
  url: string;
  /** The environment variable (on the worker) holding the HMAC-SHA256 key. */
  secretEnv: string;
  events: NotifyEvent[];
  remindBefore: number;
}

/** What the status and the audit trail call a target: its name, or an old-form URL's origin only. */
export function notifyTargetLabel(t: NotifyTarget | { target: string } | { url: string }): string {
  return 'target' in t ? `target ${t.target}` : targetLabel(t.url);
}

/** What one notification carries; `text` is what Slack-compatible receivers show. */
export interface NotifyBody {
  /** Unique per deployment run and notification: receivers drop a redelivery by it. */
  id: string;
  event: NotifyEvent;
  at: string;
  deploymentId: string;
  repository: string;
  change: string;
  phase: Phase;
  outcome?: string;
  failure?: string;
  failedHost?: string;
  hosts: Record<string, string[]>;
  /** When the manual window closes (awaiting-operator, reminder), or the maintenance window opens (waiting-for-window). */
  deadline?: string;
  text: string;
}

/** The origin of a webhook URL: what the status and the audit trail show (the path may hold a token, as Slack's do). */
export function targetLabel(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return '(invalid URL)';
  }
}

const FAILED = (o: string | undefined): boolean => o === 'refused' || (o !== undefined && o.startsWith('failed'));

/**
 * The events a change of phase from `from` to `to` raises, in order, given the events already sent
 * (each of failed, rolled-back and succeeded at most once; awaiting-operator once per deployment).
 * The status is read after the change (its outcome is set before the phase moves).
 */
export function eventsFor(from: Phase, to: Phase, status: Pick<DeploymentStatus, 'outcome'>, sent: ReadonlySet<NotifyEvent>): NotifyEvent[] {
  if (from === to) return [];
  const out: NotifyEvent[] = [];
  const once = (e: NotifyEvent): void => {
    if (!sent.has(e) && !out.includes(e)) out.push(e);
  };
  if (to === 'awaiting-window') once('waiting-for-window');
  if (to === 'succeeded') once('succeeded');
  if (to === 'compensating') once('failed');
  // Closed without passing through the compensation (the merge failed, refused): failed all the same.
  if (to === 'closed' && from !== 'awaiting-operator' && from !== 'rolling-back' && FAILED(status.outcome)) once('failed');
  if ((from === 'compensating' || from === 'rolling-back') && status.outcome === 'failed-rolled-back') once('rolled-back');
  if (to === 'awaiting-operator' && from !== 'rolling-back') once('awaiting-operator');
  return out;
}

const HEADLINE: Record<NotifyEvent, string> = {
  'waiting-for-window': 'is waiting for its maintenance window',
  failed: 'failed',
  'awaiting-operator': 'is waiting for an operator',
  reminder: 'is still waiting for an operator: the manual window closes soon',
  'rolled-back': 'was rolled back',
  succeeded: 'succeeded',
};

/** The notification for `event` about the deployment as `status` shows it now. */
export function notificationBody(event: NotifyEvent, status: DeploymentStatus, at: string, id: string, deadline?: string): NotifyBody {
  const repository = `${status.repository.owner}/${status.repository.name}@${status.repository.branch}`;
  const change = status.change.kind === 'pull-request' ? `PR #${status.change.number}` : `commit ${status.change.sha.slice(0, 12)}`;
  const hosts: Record<string, string[]> = {};
  for (const h of status.hosts) (hosts[h.state] ??= []).push(h.name);
  const lines = [`Deployment ${status.deploymentId} (${repository}, ${change}) ${HEADLINE[event]}.`];
  if (status.outcome) lines.push(`Outcome: ${status.outcome}.`);
  if (status.failure && event !== 'succeeded' && event !== 'waiting-for-window') lines.push(`Failure: ${status.failure.slice(0, 500)}`);
  const shown = (['failed', 'switched', 'rolled-back', 'rollback-failed', 'not-attempted'] as const).filter((s) => hosts[s]?.length);
  for (const s of shown) lines.push(`${s}: ${(hosts[s] as string[]).slice(0, 20).join(', ')}${(hosts[s] as string[]).length > 20 ? ' …' : ''}`);
  if (deadline) lines.push(event === 'waiting-for-window' ? `Window opens: ${deadline}` : `Manual window closes: ${deadline}`);
  return {
    id,
    event,
    at,
    deploymentId: status.deploymentId,
    repository,
    change,
    phase: status.phase,
    ...(status.outcome ? { outcome: status.outcome } : {}),
    ...(status.failure ? { failure: status.failure.slice(0, 2000) } : {}),
    ...(status.failedHost ? { failedHost: status.failedHost } : {}),
    hosts,
    ...(deadline ? { deadline } : {}),
    text: lines.join('\n'),
  };
}

/** When the reminder goes out: `remindBefore` seconds before the window closes, never before it opened. */
export function reminderAt(windowOpened: number, windowSeconds: number, remindBefore: number): number | undefined {
  if (remindBefore <= 0 || remindBefore >= windowSeconds) return undefined;
  return windowOpened + (windowSeconds - remindBefore) * 1000;
}
