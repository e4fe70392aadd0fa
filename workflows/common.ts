import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure, defineSignal, log, patched, proxyActivities } from '@temporalio/workflow';
import type { ActivityOptions } from '@temporalio/workflow';
import { NON_RETRYABLE_FAILURES, type DeployActivities } from '../src/domain/activities';
import { refusalRecorded, type RawAuditEntry } from '../src/domain/audit';
import type { AuditEntry, HostSpec, HostStatus } from '../src/domain/deployment';
import { hostStepTimeouts, type HostStepKind } from '../src/domain/host-timeouts';

/** The one list of failure types no retry can fix (src/domain/activities.ts), as the SDK takes it. */
export const NON_RETRYABLE: string[] = [...NON_RETRYABLE_FAILURES];

const HOST_RETRY: ActivityOptions['retry'] = { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE };

/**
 * A host step's activity options, derived from the host's (the fleet's) build, activation and health
 * timeouts by hostStepTimeouts, so an attempt outlasts its remote commands and the activity's own
 * limits stop them first. Retried when the connection drops (the next attempt re-inspects the host).
 */
export function hostStepFor(step: HostStepKind, host?: Pick<HostSpec, 'timeouts'>): ActivityOptions {
  const t = hostStepTimeouts(step, host?.timeouts);
  return { startToCloseTimeout: t.startToCloseMs, ...(t.heartbeatMs !== undefined ? { heartbeatTimeout: t.heartbeatMs } : {}), retry: HOST_RETRY };
}

/** Host steps on the default timeouts (a switch's: the longest). Prefer hostStepFor(step, host). */
export const hostStep: ActivityOptions = hostStepFor('switch');
/** Reads and checks: short. */
export const readStep: ActivityOptions = {
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '10 seconds', maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
};
/** GitHub calls: rate limits come back with the delay GitHub asked for (nextRetryDelay). */
export const githubStep: ActivityOptions = {
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10, nonRetryableErrorTypes: NON_RETRYABLE },
};
/**
 * Audit writes retry until the store takes them (a store that is down loses no entry); an entry the
 * store refuses (`AuditRefused`) fails at once, and the workflow reports it.
 */
export const auditStep: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute', nonRetryableErrorTypes: NON_RETRYABLE },
};

/** Activity stubs whose ids say the host and the step (`7-hsb0/switch`), as the Web UI shows them. */
export function stepper(): (options: ActivityOptions, id: string, summary: string) => DeployActivities {
  let seq = 0;
  return (options, id, summary) => {
    seq += 1;
    return proxyActivities<DeployActivities>({ ...options, activityId: `${seq}-${id}`, summary });
  };
}

export function failureOf(err: unknown): { type: string; message: string; details?: unknown } {
  let cause: unknown = err;
  while (cause instanceof ActivityFailure || cause instanceof ChildWorkflowFailure) cause = cause.cause;
  if (cause instanceof ApplicationFailure) {
    return { type: cause.type ?? 'Error', message: cause.message, details: cause.details?.[0] };
  }
  if (cause instanceof Error) return { type: cause.name, message: cause.message };
  return { type: 'Error', message: String(cause) };
}

/** A wave's change to one host's state, sent to the deployment as it happens. */
export type HostUpdate = Partial<HostStatus> & { name: string };
export const hostUpdateSignal = defineSignal<[HostUpdate]>('hostUpdate');

/** Runs `fn` over `items` with at most `limit` at once, in order of start; stops starting when `stop()`. */
export async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>, stop: () => boolean = () => false): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length && !stop()) {
      const item = items[next] as T;
      next += 1;
      await fn(item);
    }
  });
  await Promise.all(lanes);
}

/**
 * A refused request (a signal, whose own event is in the history whatever happens here; a queued
 * request refused when its turn came): written through `audit` while the trail's refusals stay within
 * REFUSAL_AUDIT_LIMITS (refusalRecorded, src/domain/audit.ts); past them only counted in
 * `status.refusalsNotRecorded` and logged, so a flood of refused signals adds no audit activity to the
 * history. patched('refusals-bounded'): before it every refusal was an entry and a write.
 */
export function auditRefusal(status: { audit: AuditEntry[]; refusalsNotRecorded?: number }, entry: Omit<RawAuditEntry, 'at'>, audit: (entry: Omit<RawAuditEntry, 'at'>) => void): void {
  if (!patched('refusals-bounded') || refusalRecorded(status.audit, entry)) return audit(entry);
  status.refusalsNotRecorded = (status.refusalsNotRecorded ?? 0) + 1;
  log.warn('refusal not recorded: the trail holds its limit of refusals', { actor: String(entry.actor).slice(0, 200), action: String(entry.action).slice(0, 40), notRecorded: status.refusalsNotRecorded });
}
