/**
 * The activities of durable reboots and offline hosts (contract: RebootActivities in
 * src/domain/reboot.ts). Each is safe to run twice (src/hosts/reboot.ts) and short: the waiting is the
 * workflow's (durable timers between probes), never an activity's.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { FailureType } from '../src/domain/activities';
import type { HostSpec } from '../src/domain/deployment';
import { needsReboot, type RebootActivities } from '../src/domain/reboot';
import { AuthenticationFailedError, CommandTimeoutError, ConnectionLostError, HostKeyMismatchError, HostSession, HostUnreachableError, readGeneration, type TimeoutOptions } from '../src/hosts';
import { bootInto, bootRecorded, readBootState, requestReboot } from '../src/hosts/reboot';
import type { SessionPool, SshCredentials } from './sessions';

export interface RebootActivityDeps {
  pool: SessionPool;
  ssh: SshCredentials;
  limits(host: HostSpec): TimeoutOptions;
  /** Host errors → Temporal failures (activities/index.ts). */
  hostFailure(err: unknown, host: string): never;
  /** Runs fn with periodic heartbeats. */
  heartbeating<T>(fn: () => Promise<T>): Promise<T>;
  cancellation(): { signal?: AbortSignal };
  /** Whether an earlier attempt of this activity reached the host (its heartbeat said so). */
  earlierAttemptConnected(): boolean;
  markConnected(): void;
}

/** A probe's handshake limit: a host that does not answer within it counts as unreachable now. */
const PROBE_READY_MS = 5_000;

export function createRebootActivities(d: RebootActivityDeps): RebootActivities {
  const fresh = (host: HostSpec): Promise<HostSession> =>
    HostSession.connect({
      address: host.address,
      port: host.port,
      user: host.user,
      privateKey: d.ssh.privateKey,
      knownHosts: d.ssh.knownHosts,
      label: host.name,
      readyTimeoutMs: Math.min(d.ssh.readyTimeoutMs ?? PROBE_READY_MS, PROBE_READY_MS),
      keepaliveIntervalMs: 0,
    });
  /** A changed host key or a refused login is not "offline": it fails the step (non-retryable). */
  const unreachable = (err: unknown, host: HostSpec): string => {
    if (err instanceof HostKeyMismatchError || err instanceof AuthenticationFailedError) d.hostFailure(err, host.name);
    if (err instanceof HostUnreachableError || err instanceof ConnectionLostError || err instanceof CommandTimeoutError) return err.message;
    d.hostFailure(err, host.name);
  };
  const nixosOnly = (host: HostSpec): void => {
    if (host.kind !== 'nixos') throw ApplicationFailure.nonRetryable(`${host.name}: reboots are for NixOS hosts`, FailureType.InvalidInput);
  };

  return {
    async probeHost({ host }) {
      let s: HostSession | undefined;
      try {
        s = await fresh(host);
        await readGeneration(s, host.kind, { readTimeoutMs: d.limits(host).readTimeoutMs ?? 30_000 });
        return { reachable: true };
      } catch (err) {
        return { reachable: false, error: unreachable(err, host) };
      } finally {
        await s?.close().catch(() => undefined);
      }
    },

    async readBootState({ host, target }) {
      nixosOnly(host);
      try {
        const st = await d.heartbeating(() => d.pool.use(host, (s) => readBootState(s, target, d.limits(host))));
        return { bootId: st.bootId, bootedSystem: st.bootedSystem, currentSystem: st.currentSystem, need: needsReboot(st.booted, st.target) };
      } catch (err) {
        d.hostFailure(err, host.name);
      }
    },

    async bootHost({ host, target }) {
      nixosOnly(host);
      try {
        const g = await d.heartbeating(() => d.pool.use(host, (s) => bootInto(s, target, { ...d.limits(host), ...d.cancellation() })));
        return { number: g.number, storePath: g.storePath };
      } catch (err) {
        d.hostFailure(err, host.name);
      }
    },

    async bootRecordedHost({ host, recorded }) {
      nixosOnly(host);
      try {
        const g = await d.heartbeating(() => d.pool.use(host, (s) => bootRecorded(s, recorded, { ...d.limits(host), ...d.cancellation() })));
        return { number: g.number, storePath: g.storePath };
      } catch (err) {
        d.hostFailure(err, host.name);
      }
    },

    async rebootHost({ host, bootId }) {
      nixosOnly(host);
      try {
        return await d.heartbeating(() =>
          d.pool.use(host, (s) => {
            d.markConnected();
            return requestReboot(s, bootId, d.limits(host));
          }),
        );
      } catch (err) {
        // The host goes down as it reboots: a connection that drops once the request was sent is the
        // reboot happening. A retry that finds the host down after an attempt reached it: the same.
        // (The wait then tells a reboot from none by the boot id.)
        if (err instanceof ConnectionLostError) return 'requested';
        if (err instanceof HostUnreachableError && d.earlierAttemptConnected()) return 'requested';
        d.hostFailure(err, host.name);
      }
    },

    async probeBoot({ host, target }) {
      nixosOnly(host);
      let s: HostSession | undefined;
      try {
        s = await fresh(host);
        const st = await readBootState(s, target, d.limits(host));
        return { reachable: true, bootId: st.bootId, bootedSystem: st.bootedSystem, currentSystem: st.currentSystem };
      } catch (err) {
        return { reachable: false, error: unreachable(err, host) };
      } finally {
        await s?.close().catch(() => undefined);
      }
    },
  };
}
