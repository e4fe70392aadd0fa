/**
 * The worker's SSH pool has a bound (issue 13): at most maxConnections open, idle ones closed after
 * idleMs. Counted at the simulated fleet's endpoints (the server side), not by the pool itself.
 */
import { buildDeployInput, FleetFile, parseWith } from '../../src/schemas/fleet.schema';
import { readGeneration } from '../../src/hosts';
import { SessionPool, indexKnownHosts } from '../../activities/sessions';
import type { HostSpec } from '../../src/domain/deployment';
import { createDeployWorker } from '../../workers/worker';
import { deployWorkflow } from '../../workflows';
import { startSimFleet, type SimFleet } from '../../testkit/simfleet';
import { startSimWorld } from '../../testkit/simfleet/world';
import { startTestTemporal, taskQueueFor, waitFor, workflowBundle } from '../support/temporal';

function spec(fleet: SimFleet, name: string): HostSpec {
  const h = fleet.host(name);
  return { name, address: h.address, port: h.port, user: h.user, kind: h.kind } as HostSpec;
}

test('when 20 steps at a time use 60 hosts through a pool bounded at 5, then at most 5 connections are ever open, every step runs, and idle ones close', async () => {
  const fleet = await startSimFleet(Array.from({ length: 60 }, (_, i) => ({ name: `p${i}`, kind: 'nixos' as const, generations: [1, 2 + i] })), { latency: { commandMs: 5 } });
  const pool = new SessionPool({ privateKey: fleet.clientPrivateKey, knownHosts: fleet.knownHosts, maxConnections: 5, idleMs: 300, keepaliveIntervalMs: 0 });
  try {
    const names = fleet.hosts.map((h) => h.name);
    const read = new Map<string, number>();
    let next = 0;
    // Each host twice (record, then verify), the second time while others wait for a connection.
    const work = [...names, ...names];
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        while (next < work.length) {
          const name = work[next++] as string;
          const g = await pool.use(spec(fleet, name), (s) => readGeneration(s, 'nixos'));
          read.set(name, g.number);
        }
      }),
    );
    expect(read.size).toBe(60);
    for (const [i, n] of names.entries()) expect(read.get(n)).toBe(2 + i);
    expect(fleet.stats().commands).toBe(120);
    expect(fleet.stats().peakOpen).toBeLessThanOrEqual(5);
    expect(fleet.stats().peakOpen).toBeGreaterThanOrEqual(2);
    expect(pool.openConnections).toBeLessThanOrEqual(5);
    // Idle connections close by themselves (no closeAll).
    await waitFor('idle connections to close', () => (fleet.stats().open === 0 ? true : undefined), 20_000, 50);
    expect(pool.openConnections).toBe(0);
  } finally {
    await pool.closeAll();
    await fleet.stop();
  }
});

test('when a host is used again within the idle time, then its connection is reused, not reopened', async () => {
  const fleet = await startSimFleet([{ name: 'r1', kind: 'nixos' }]);
  const pool = new SessionPool({ privateKey: fleet.clientPrivateKey, knownHosts: fleet.knownHosts, maxConnections: 2, idleMs: 60_000, keepaliveIntervalMs: 0 });
  try {
    for (let i = 0; i < 5; i++) await pool.use(spec(fleet, 'r1'), (s) => readGeneration(s, 'nixos'));
    expect(fleet.stats().accepted).toBe(1);
  } finally {
    await pool.closeAll();
    await fleet.stop();
  }
});

test('when a step waits for a connection at the bound and is cancelled, then it stops waiting and the pool goes on', async () => {
  const fleet = await startSimFleet([{ name: 'c1', kind: 'nixos' }, { name: 'c2', kind: 'nixos' }]);
  const pool = new SessionPool({ privateKey: fleet.clientPrivateKey, knownHosts: fleet.knownHosts, maxConnections: 1, idleMs: 60_000, keepaliveIntervalMs: 0 });
  try {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const first = pool.use(spec(fleet, 'c1'), async (s) => {
      await readGeneration(s, 'nixos');
      await held;
    });
    await waitFor('c1 connected', () => (fleet.stats().open === 1 ? true : undefined), 10_000, 10);
    const abort = new AbortController();
    const waiting = pool.use(spec(fleet, 'c2'), (s) => readGeneration(s, 'nixos'), abort.signal);
    abort.abort();
    await expect(waiting).rejects.toThrow(/cancelled/i);
    expect(fleet.host('c2').host.commandLog()).toEqual([]);
    release();
    await first;
    // The bound still holds and the next step gets c1's connection once idle.
    await expect(pool.use(spec(fleet, 'c2'), (s) => readGeneration(s, 'nixos'))).resolves.toMatchObject({ number: 42 });
    expect(fleet.stats().peakOpen).toBe(1);
  } finally {
    await pool.closeAll();
    await fleet.stop();
  }
});

test('known_hosts indexed by host keeps wildcard, hashed and marker lines for every host and literal ones for theirs', () => {
  const text = [
    '[127.0.0.1]:2001 ssh-ed25519 AAAA1',
    '[127.0.0.1]:2002,Alias ssh-ed25519 AAAA2',
    '*.example.org ssh-ed25519 AAAA3',
    '|1|c2FsdA==|aGFzaA== ssh-ed25519 AAAA4',
    '@revoked [127.0.0.1]:2001 ssh-ed25519 AAAA5',
    '# comment',
  ].join('\n');
  const f = indexKnownHosts(text);
  expect(f('127.0.0.1', 2001).trim().split('\n').sort()).toEqual(['*.example.org ssh-ed25519 AAAA3', '@revoked [127.0.0.1]:2001 ssh-ed25519 AAAA5', '[127.0.0.1]:2001 ssh-ed25519 AAAA1', '|1|c2FsdA==|aGFzaA== ssh-ed25519 AAAA4']);
  expect(f('alias', 22)).toContain('AAAA2');
  expect(f('127.0.0.1', 2003)).not.toContain('AAAA1');
});

test('when the real worker deploys 40 simulated hosts with maxParallel 8 and its pool bounded at 10, then the fleet never sees more than 10 connections and all hosts switch', async () => {
  const t = await startTestTemporal();
  const w = await startSimWorld({ hosts: Array.from({ length: 40 }, (_, i) => ({ name: `d${i}`, kind: 'nixos' as const })), latency: { commandMs: 2, activationMs: 20 } });
  try {
    const pr = await w.openLockUpdate('v2');
    const fleetFile = parseWith(FleetFile, { ...w.fleetFile(), rollout: { waves: [{ name: 'all', hosts: w.fleet.hosts.map((h) => h.name), maxParallel: 8 }] }, manualWindow: 0 });
    const input = buildDeployInput(fleetFile, { pullRequest: pr.number }, 'alice');
    const taskQueue = taskQueueFor('pool-bound-deploy');
    const deps = w.activityDeps();
    const { worker, close } = await createDeployWorker({
      connection: t.nativeConnection,
      namespace: t.server.namespace,
      taskQueue,
      deps: { ...deps, ssh: { ...deps.ssh, maxConnections: 10, idleMs: 500 } },
      workflowBundle: await workflowBundle(),
    });
    let s;
    try {
      s = await worker.runUntil(t.client.workflow.execute(deployWorkflow, { taskQueue, workflowId: input.deploymentId, args: [input], searchAttributes: { NixfleetRepository: [`${w.owner}/${w.repo}`] } }));
      expect(s.outcome).toBe('succeeded');
      expect(s.hosts.every((h) => h.state === 'switched')).toBe(true);
      for (const e of w.fleet.hosts) expect(e.host.profileGeneration().number).toBe(43);
      expect(w.fleet.stats().peakOpen).toBeLessThanOrEqual(10);
      await waitFor('the worker to close its idle connections', () => (w.fleet.stats().open === 0 ? true : undefined), 20_000, 50);
    } finally {
      await close();
    }
  } finally {
    await w.stop();
    await t.stop();
  }
}, 600_000); // a 40-host deployment: jest's bound under load, not a timing assertion
