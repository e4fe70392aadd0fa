/**
 * Several workers (issue 13, item 4): three worker processes (workers/main.ts, as the crash matrix
 * runs it) poll one task queue and share one large deployment to the simulated fleet, against the real
 * Temporal dev server. Once the deployment is well under way (a share of the hosts switched, and the
 * victim itself has switched hosts), one worker is SIGKILLed; the two others finish it.
 *
 * Asserted on outcomes and on the simulated fleet's own state, not on the deployment's event shapes:
 * the deployment succeeded; every host ends on exactly one new generation (its seeded ones plus one),
 * which is the one activated and the boot default; every host's profile was set once (`nix-env --set`
 * counted in the host's own command log) and no host activated a second store path; the surviving
 * workers switched hosts after the kill; every audit entry is in the shared SQLite store once; the
 * fleet never saw more SSH connections than the three pools' bound allows.
 *
 * Size: NIXFLEET_SEVERAL_WORKERS_HOSTS (default 300: what finished in about 3 minutes on the 2-core
 * CI machine while other jobs loaded it, at about 2 hosts a second; 1,000 did not finish in 20 minutes
 * there at a load average of 25. The issue's 5,000 is NIXFLEET_SEVERAL_WORKERS_HOSTS=5000.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteAuditStore } from '../../src/audit/sqlite-audit-store';
import type { DeploymentStatus } from '../../src/domain/deployment';
import { buildDeployInput, FleetFile, parseWith } from '../../src/schemas/fleet.schema';
import { startSimWorld, type SimWorld } from '../../testkit/simfleet/world';
import { deployWorkflow } from '../../workflows';
import { startTestTemporal, taskQueueFor, waitFor, type TestTemporal } from '../support/temporal';

const HOSTS = Number(process.env.NIXFLEET_SEVERAL_WORKERS_HOSTS ?? 300);
/** Hosts in flight at once: the three workers' activity slots (50 each) are the real bound. */
const MAX_PARALLEL = 120;
/** Each worker's SSH pool (NIXFLEET_SSH_MAX_CONNECTIONS). */
const SSH_BOUND = 60;
/** The kill comes once this share of the hosts has switched. */
const KILL_AT = 0.3;

let t: TestTemporal;
let w: SimWorld;
let dir: string;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  t = await startTestTemporal();
  dir = mkdtempSync(join(tmpdir(), 'nixfleet-several-workers-'));
}, 120_000);
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await w?.stop();
  await t?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface WorkerProcess {
  tag: string;
  child: ChildProcess;
  /** Hosts this worker's switch activity reported switched (its "switched" log lines). */
  switched(): number;
  output(): string;
}

/** `workers/main.ts` in its own process, on the shared queue and audit file; resolves once it polls. */
async function startWorkerProcess(taskQueue: string, auditDb: string, tag: string): Promise<WorkerProcess> {
  const keyFile = join(dir, 'client.key');
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(keyFile, w.fleet.clientPrivateKey, { mode: 0o600 });
  writeFileSync(knownHosts, w.fleet.knownHosts);
  const child = spawn(process.execPath, ['--require', 'tsx/cjs', join(__dirname, '..', '..', 'workers', 'main.ts')], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: t.server.address,
      TEMPORAL_NAMESPACE: t.server.namespace,
      TEMPORAL_TASK_QUEUE: taskQueue,
      GITHUB_API_URL: w.github.baseUrl,
      GITHUB_TOKEN: w.token,
      NIXFLEET_SSH_KEY: keyFile,
      NIXFLEET_KNOWN_HOSTS: knownHosts,
      NIXFLEET_SSH_MAX_CONNECTIONS: String(SSH_BOUND),
      NIXFLEET_AUDIT_DB: auditDb,
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  // Only the lines that matter are kept (thousands of hosts log thousands of lines).
  let head = '';
  let switched = 0;
  let partial = '';
  const onData = (d: Buffer): void => {
    const text = partial + d.toString();
    const lines = text.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (line.includes('"msg":"switched"')) switched += 1;
      else if (head.length < 20_000 && !line.includes('"level":30')) head += `${line}\n`;
      if (line.includes('"msg":"worker started"')) head += `${line}\n`;
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  await waitFor(`worker ${tag} to start`, () => {
    if (child.exitCode !== null) throw new Error(`worker ${tag} exited ${child.exitCode}: ${head}`);
    return head.includes('worker started') ? true : undefined;
  }, 240_000, 200);
  return { tag, child, switched: () => switched, output: () => head };
}

const newGeneration = (name: string): boolean => w.fleet.host(name).host.profileGeneration().number === 43;
const switchedNow = (): number => w.fleet.hosts.filter((e) => newGeneration(e.name)).length;

test(`when one of three worker processes sharing a ${HOSTS}-host deployment is SIGKILLed mid-deployment, then the others finish it: nothing lost, no host switched twice`, async () => {
  const t0 = Date.now();
  w = await startSimWorld({ hosts: Array.from({ length: HOSTS }, (_, i) => ({ name: `w${i + 1}`, kind: 'nixos' as const })), latency: { commandMs: 1, activationMs: 5 } });
  const fleetUpMs = Date.now() - t0;
  const seeded = new Map(w.fleet.hosts.map((e) => [e.name, e.host.generations().length]));
  const pr = await w.openLockUpdate('v2');
  const taskQueue = taskQueueFor('several-workers');
  const auditDb = join(dir, 'audit.db');
  const workers = await Promise.all(['a', 'b', 'c'].map((tag) => startWorkerProcess(taskQueue, auditDb, tag)));
  const workersUpMs = Date.now() - t0 - fleetUpMs;

  const names = w.fleet.hosts.map((e) => e.name);
  const fleetFile = parseWith(FleetFile, { ...w.fleetFile(), rollout: { waves: [{ name: 'all', hosts: names, maxParallel: MAX_PARALLEL }] }, manualWindow: 0 });
  const input = buildDeployInput(fleetFile, { pullRequest: pr.number }, 'alice');
  const tDeploy = Date.now();
  const handle = await t.client.workflow.start(deployWorkflow, { taskQueue, workflowId: input.deploymentId, args: [input], searchAttributes: { NixfleetRepository: [`${w.owner}/${w.repo}`] } });

  // Kill the worker that is doing the most work, once a share of the fleet has switched: the kill
  // lands mid-deployment with its activity slots full, not after a guessed sleep.
  const victim = await waitFor(
    `${Math.round(KILL_AT * 100)}% of the hosts to switch`,
    () => {
      if (switchedNow() < HOSTS * KILL_AT) return undefined;
      const busiest = [...workers].sort((a, b) => b.switched() - a.switched())[0];
      return busiest && busiest.switched() > 0 ? busiest : undefined;
    },
    600_000,
    50,
  );
  const switchedAtKill = switchedNow();
  const victimSwitched = victim.switched();
  victim.child.kill('SIGKILL');
  await waitFor('the worker to die', () => (victim.child.exitCode !== null || victim.child.signalCode !== null ? true : undefined));
  const killedAtMs = Date.now() - tDeploy;
  const others = workers.filter((x) => x !== victim);
  const othersAtKill = others.map((x) => x.switched());

  // Progress to the terminal as it happens (a loaded machine is slow: this shows it is not stuck).
  const progress = setInterval(() => process.stdout.write(`several workers +${((Date.now() - tDeploy) / 1000).toFixed(0)} s: ${switchedNow()}/${HOSTS} hosts switched; after the kill ${others.map((x, i) => `${x.tag} ${x.switched() - (othersAtKill[i] ?? 0)}`).join(', ')}\n`), 30_000);
  let s: DeploymentStatus;
  try {
    s = await handle.result();
  } finally {
    clearInterval(progress);
  }
  const deployMs = Date.now() - tDeploy;

  // The deployment: succeeded, every host switched, in the workflow's own account.
  expect({ outcome: s.outcome, phase: s.phase, failure: s.failure }).toEqual({ outcome: 'succeeded', phase: 'succeeded', failure: undefined });
  const notSwitched = s.hosts.filter((h) => h.state !== 'switched').map((h) => `${h.name}:${h.state}`);
  expect(notSwitched).toEqual([]);
  expect(s.hosts).toHaveLength(HOSTS);

  // The fleet, from its own state and logs: one new generation per host, set once, activated once.
  const problems: string[] = [];
  for (const e of w.fleet.hosts) {
    const h = e.host;
    const log = h.commandLog();
    const sets = log.filter((l) => l.verb === 'nix-env-set').length;
    const rollbacks = log.filter((l) => l.verb === 'nix-env-switch-generation').length;
    const gens = h.generations();
    const now = h.profileGeneration();
    const activated = new Set(h.activations().map((a) => a.storePath));
    const bad: string[] = [];
    if (sets !== 1) bad.push(`nix-env --set ${sets}×`);
    if (rollbacks !== 0) bad.push(`--switch-generation ${rollbacks}×`);
    if (gens.length !== (seeded.get(e.name) ?? 0) + 1) bad.push(`${gens.length} generations`);
    if (now.number !== 43 || h.currentSystem() !== now.storePath || h.bootDefault()?.storePath !== now.storePath) bad.push(`on ${now.number}, active ${h.currentSystem()}`);
    if (activated.size !== 1 || !activated.has(now.storePath)) bad.push(`activated ${[...activated].join(', ')}`);
    if (bad.length > 0) problems.push(`${e.name}: ${bad.join('; ')}`);
  }
  expect(problems.slice(0, 20)).toEqual([]);
  const reactivated = w.fleet.hosts.filter((e) => e.host.activations().length > 1).length;

  // The others finished it: each surviving worker switched hosts after the kill.
  const afterKill = others.map((x, i) => x.switched() - (othersAtKill[i] ?? 0));
  expect(afterKill.every((n) => n > 0)).toBe(true);
  expect(switchedAtKill).toBeLessThan(HOSTS);

  // Every SSH connection came from a bounded pool.
  expect(w.fleet.stats().peakOpen).toBeLessThanOrEqual(3 * SSH_BOUND);

  // The audit trail: in the shared SQLite store, once each, seqs 1..n.
  const store = new SqliteAuditStore(auditDb);
  try {
    const rows = await store.list({ deploymentId: s.deploymentId });
    expect(rows.map((r) => r.seq)).toEqual(s.audit.map((_, i) => i + 1));
    expect(rows.map((r) => r.action)).toEqual(s.audit.map((a) => a.action));
  } finally {
    await store.close();
  }

  process.stdout.write(
    [
      `several workers: ${HOSTS} simulated hosts, one wave, maxParallel ${MAX_PARALLEL}, SSH pool ${SSH_BOUND} per worker`,
      `  fleet up ${(fleetUpMs / 1000).toFixed(1)} s, 3 workers up ${(workersUpMs / 1000).toFixed(1)} s`,
      `  worker ${victim.tag} SIGKILLed ${(killedAtMs / 1000).toFixed(1)} s in, with ${switchedAtKill}/${HOSTS} hosts switched (${victimSwitched} by it)`,
      `  the others switched ${afterKill.join(' + ')} hosts after the kill; deployment succeeded in ${(deployMs / 1000).toFixed(1)} s (${((HOSTS / deployMs) * 1000).toFixed(1)} hosts/s)`,
      `  hosts activated more than once (an interrupted activation resumed, same store path): ${reactivated}; peak SSH connections ${w.fleet.stats().peakOpen}`,
      '',
    ].join('\n'),
  );
}, 1_200_000);
