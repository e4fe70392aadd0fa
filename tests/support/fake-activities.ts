/**
 * In-memory activities for tests of the control flow, the API and the CLI. Tests of the real behaviour
 * (sshd hosts, Nix generations, git-backed GitHub) live in tests/saga and use the real activities.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { FailureType, type DeployActivities } from '../../src/domain/activities';
import type { DeployInput, Generation, HostSpec } from '../../src/domain/deployment';
import { needsReboot, type BootParts, type RebootActivities } from '../../src/domain/reboot';
import { createFleetSnapshotActivities, type FleetSnapshotActivities } from '../../activities/fleet-snapshot';

export interface FakeHost {
  gen: Generation;
  gens: Generation[];
  failActivation?: boolean;
  /**
   * What /run/booted-system points at (readBootState). Unset: the system readBootState is asked about,
   * as on a host that booted the new system (no reboot needed). Set it to another path and the
   * kernel, initrd and modules differ, so a reboot is needed.
   */
  bootedSystem?: string;
  /** /proc/sys/kernel/random/boot_id (default `boot-<name>-1`); no fake reboots change it. */
  bootId?: string;
}

/** The fake's boot parts of a system: each system has its own kernel, initrd and modules. */
const bootPartsOf = (system: string): BootParts => ({ kernel: `${system}/kernel`, initrd: `${system}/initrd`, kernelModules: `${system}/kernel-modules` });

export function fakeWorld(names: string[]) {
  const hosts = new Map<string, FakeHost>();
  for (const n of names) {
    const gen = { number: 42, storePath: `/nix/store/${n}-old` };
    hosts.set(n, { gen, gens: [gen] });
  }
  const calls: string[] = [];
  const hostOf = (name: string): FakeHost => {
    let h = hosts.get(name);
    if (!h) {
      const gen = { number: 42, storePath: `/nix/store/${name}-old` };
      h = { gen, gens: [gen] };
      hosts.set(name, h);
    }
    return h;
  };
  // The children's hosts are read from the deployment's input as the product reads them (its start event).
  const activities: DeployActivities & FleetSnapshotActivities & Pick<RebootActivities, 'readBootState'> = {
    ...createFleetSnapshotActivities(),
    async notify({ body }) {
      calls.push(`notify:${body.event}`);
    },
    async resolveChange() {
      calls.push('merge');
      return { mergeSha: 'a'.repeat(40), pullRequest: 7, how: 'merged-now' };
    },
    async recordGeneration({ host }) {
      calls.push(`record:${host.name}`);
      return hostOf(host.name).gen;
    },
    async releaseHost() {
      // GC roots are not modelled here (tests/fleet/real-host.test.ts covers them on real hosts).
    },
    async switchHost({ host }) {
      calls.push(`switch:${host.name}`);
      const h = hostOf(host.name);
      const next = { number: h.gens.length + 42, storePath: `/nix/store/${host.name}-new` };
      h.gens.push(next);
      h.gen = next;
      if (h.failActivation) {
        throw ApplicationFailure.create({
          type: 'SwitchFailed',
          message: 'switch-to-configuration exited 4',
          nonRetryable: true,
          details: [{ exitCode: 4, profileMoved: true, after: next, failedUnits: true }],
        });
      }
      return next;
    },
    async verifyHost({ host }) {
      return hostOf(host.name).gen;
    },
    async rollbackHost({ host, to }) {
      calls.push(`rollback:${host.name}:${to.number}`);
      hostOf(host.name).gen = to;
      return to;
    },
    async recordAudit() {},
    async recordDeploymentResults() {},
    async recordDeploymentResultsByRef() {},
    async readDeploymentResults() {
      return null;
    },
    async confirmHost() {
      return 'confirmed' as const;
    },
    async describeHost() {
      return { commands: [] };
    },
    async rereadRecorded({ host }) {
      // No GC roots here: a host this fake recorded reports its first generation as the pinned one.
      const h = hosts.get(host.name);
      if (!h) return { current: hostOf(host.name).gen };
      return { current: h.gen, recorded: h.gens[0] as Generation };
    },
    async buildHost({ host }) {
      calls.push(`build:${host.name}`);
      return { target: `/nix/store/${host.name}-new` };
    },
    // As activities/reboot.ts answers: NixOS only, the booted and active systems, and whether `target`
    // needs a reboot (src/domain/reboot.ts needsReboot on the booted system's parts against the target's).
    async readBootState({ host, target }) {
      if (host.kind !== 'nixos') throw ApplicationFailure.nonRetryable(`${host.name}: reboots are for NixOS hosts`, FailureType.InvalidInput);
      const h = hostOf(host.name);
      const booted = h.bootedSystem ?? target;
      return { bootId: h.bootId ?? `boot-${host.name}-1`, bootedSystem: booted, currentSystem: h.gen.storePath, need: needsReboot(bootPartsOf(booted), bootPartsOf(target)) };
    },
    async checkHealth() {
      return { healthy: true, problems: [] };
    },
    async quarantineStatus() {
      return { quarantined: false };
    },
    async revertMerge({ mode, requestedBy }) {
      calls.push(`revert:${mode}:${requestedBy}`);
      return { kind: 'commit', commitSha: 'b'.repeat(40), alreadyReverted: false };
    },
  };
  return { hosts, calls, activities };
}

export function fakeInput(names: string[], over: Partial<DeployInput> = {}): DeployInput {
  const hosts: HostSpec[] = names.map((n) => ({ name: n, address: '127.0.0.1', port: 22, user: 'root', kind: 'nixos', attr: n }));
  return {
    deploymentId: `deploy-acme-fleet-pr7-${Math.random().toString(36).slice(2, 8)}`,
    repository: { owner: 'acme', name: `fleet-${Math.random().toString(36).slice(2, 8)}`, branch: 'main' },
    change: { kind: 'pull-request', number: 7 },
    hosts,
    flakeRefTemplate: 'git+http://x/{owner}/{repo}?rev={sha}',
    onFailure: { revert: 'commit', rollbackHosts: true },
    manualWindowSeconds: 3600,
    requestedBy: 'alice',
    searchAttributes: true,
    ...over,
  };
}
