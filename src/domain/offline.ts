/**
 * Offline hosts (pure; bundled into workflow code): before a host is built and switched, a probe
 * tells whether it answers; `rollout.offline` decides what an unreachable host means.
 * Tested in tests/domain/reboot-offline.test.ts (unit and fast-check properties).
 */

/** `rollout.offline`: fail (the default: an unreachable host fails), skip (not attempted, reported), or wait up to `waitSeconds`. */
export type OfflinePolicy = { mode: 'fail' } | { mode: 'skip' } | { mode: 'wait'; waitSeconds: number };

export type OfflineDecision =
  /** The host answered: deploy it. */
  | { kind: 'deploy' }
  /** Probe again after `delayMs` (a durable timer). */
  | { kind: 'wait'; delayMs: number }
  /** Not deployed and reported as skipped (offline). */
  | { kind: 'skip'; reason: string }
  /** The host fails (counts against the failure budget). */
  | { kind: 'fail'; reason: string };

/**
 * What to do with a host after a probe, `waitedMs` after the first probe. A host that comes back
 * within the wait is deployed; past the deadline it fails with the reason (never skipped silently).
 */
export function offlineDecision(policy: OfflinePolicy | undefined, probe: { reachable: boolean; error?: string }, waitedMs: number, attempt = 0): OfflineDecision {
  if (probe.reachable) return { kind: 'deploy' };
  const why = probe.error ? `: ${probe.error}` : '';
  const p = policy ?? { mode: 'fail' };
  if (p.mode === 'fail') return { kind: 'fail', reason: `unreachable before its build (rollout.offline: fail)${why}` };
  if (p.mode === 'skip') return { kind: 'skip', reason: `offline: skipped, not deployed (rollout.offline: skip)${why}` };
  const remaining = p.waitSeconds * 1000 - waitedMs;
  if (remaining <= 0) return { kind: 'fail', reason: `still unreachable after waiting ${p.waitSeconds}s for it (rollout.offline: wait ${p.waitSeconds}s)${why}` };
  const delayMs = Math.max(1000, Math.min(30_000, 1000 * 2 ** Math.max(0, Math.min(attempt, 10)), remaining));
  return { kind: 'wait', delayMs };
}

/** A host the build-first phase did not build because of its probe (rollout.offline). */
export interface OfflineGate {
  host: string;
  kind: 'skip' | 'fail';
  reason: string;
}

/**
 * With build-first, the probe comes before the build (in the build phase): a host skipped there
 * leaves the rollout (not attempted, reported as offline); one that fails there (rollout.offline:
 * fail, or still unreachable past its wait) is a build failure, so nothing is switched. The rest go on
 * to the waves (which probe again before each host's switch).
 */
export function offlineBuildGates(gates: readonly OfflineGate[]): { skipped: Array<{ host: string; reason: string }>; failures: Array<{ host: string; error: string }> } {
  const skipped: Array<{ host: string; reason: string }> = [];
  const failures: Array<{ host: string; error: string }> = [];
  for (const g of gates) {
    if (g.kind === 'skip') skipped.push({ host: g.host, reason: g.reason });
    else failures.push({ host: g.host, error: g.reason });
  }
  return { skipped, failures };
}
