/**
 * Per-fleet host timeouts (the fleet file's `timeouts`) and the activity timeouts derived from them.
 * Pure: used by the wave and build workflows to proxy host steps and by the activities for the limits
 * of their remote commands, so both always agree. Tested in tests/property/host-timeouts.property.test.ts.
 *
 * The rule: an attempt's startToClose is longer than the most its remote commands may take (each
 * command's own limit, summed over the commands the step can send, plus room for the reads), so the
 * activity's own limit fires first and stops its remote command (the activation by its lock or its
 * unit) before Temporal abandons the attempt and starts another. Long steps heartbeat; a dead worker
 * is noticed within the heartbeat timeout, whatever the build takes.
 */

export interface HostTimeouts {
  /** Evaluation and build of one host's closure. */
  buildSeconds: number;
  /** One profile move or activation (switch-to-configuration, Home Manager's activate). */
  activationSeconds: number;
  /** One round of the host's health checks. */
  healthSeconds: number;
}

/** Defaults that fit a 40-minute build without a binary cache (nixpkgs bumps take 5 to 60 minutes). */
export const DEFAULT_HOST_TIMEOUTS: HostTimeouts = { buildSeconds: 60 * 60, activationSeconds: 10 * 60, healthSeconds: 5 * 60 };

/** One read (generation, marker, GC root) on the host. */
export const READ_TIMEOUT_MS = 30_000;
/** Room for the reads and small writes a step makes around its long commands. */
export const READS_ALLOWANCE_MS = 12 * READ_TIMEOUT_MS;
/** Host steps heartbeat (the worker every few seconds); this is the server's limit. */
export const HEARTBEAT_TIMEOUT_MS = 20_000;

export type HostStepKind = 'build' | 'switch' | 'rollback' | 'health' | 'read';

export interface RemoteLimits {
  readTimeoutMs: number;
  buildTimeoutMs: number;
  activateTimeoutMs: number;
}

export interface HostStepTimeouts {
  startToCloseMs: number;
  /** Set for the steps that heartbeat (all but a round of health checks). */
  heartbeatMs?: number;
  /** The limits of the step's remote commands (the activities' TimeoutOptions). */
  remote: RemoteLimits;
}

/** How many activation-sized commands a step may send, at most, one after the other. */
const ACTIVATIONS: Record<HostStepKind, number> = {
  // profile move, activation (or a resumed one), boot default
  switch: 3,
  // switch-generation or set, activation, boot default
  rollback: 3,
  build: 0,
  health: 0,
  read: 0,
};

/** Fills what a host spec leaves out with the defaults. */
export function hostTimeoutsOf(t: Partial<HostTimeouts> | undefined): HostTimeouts {
  return {
    buildSeconds: t?.buildSeconds ?? DEFAULT_HOST_TIMEOUTS.buildSeconds,
    activationSeconds: t?.activationSeconds ?? DEFAULT_HOST_TIMEOUTS.activationSeconds,
    healthSeconds: t?.healthSeconds ?? DEFAULT_HOST_TIMEOUTS.healthSeconds,
  };
}

/** The activity timeouts of a host step and the limits of its remote commands, from the fleet's timeouts. */
export function hostStepTimeouts(step: HostStepKind, fleet?: Partial<HostTimeouts>): HostStepTimeouts {
  const t = hostTimeoutsOf(fleet);
  const remote: RemoteLimits = { readTimeoutMs: READ_TIMEOUT_MS, buildTimeoutMs: t.buildSeconds * 1000, activateTimeoutMs: t.activationSeconds * 1000 };
  const builds = step === 'switch' || step === 'build' ? 1 : 0;
  const checks = step === 'health' ? t.healthSeconds * 1000 : 0;
  const longest = builds * remote.buildTimeoutMs + ACTIVATIONS[step] * remote.activateTimeoutMs + checks;
  const startToCloseMs = longest + READS_ALLOWANCE_MS;
  // Every step but a round of health checks heartbeats, reads too: a worker that dies mid-read is
  // noticed within the heartbeat timeout, not after the read's whole startToClose (6 minutes), and a
  // cancellation reaches the attempt (it is delivered with a heartbeat).
  return { startToCloseMs, ...(step !== 'health' ? { heartbeatMs: HEARTBEAT_TIMEOUT_MS } : {}), remote };
}
