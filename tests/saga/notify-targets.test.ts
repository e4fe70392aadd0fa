/**
 * Notification targets by name, and the reminder before the manual window closes, on Temporal's
 * time-skipping test server (testkit/time-skipping.ts) with the real activities, the stand-in fleet
 * and the GitHub stand-in, and a local receiver that checks every delivery's HMAC-SHA256 signature:
 * - the fleet file names targets (`oncall` from the worker's targets file with a secretFile, `pager`
 *   from the worker's environment); the worker resolves them, and the deployment's history holds
 *   neither a URL nor a secret;
 * - a failed deployment waiting for an operator through a 24 h manual window is reminded 1 h before
 *   it closes (the server skips the day), and not reminded when an operator acts before.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowHandle } from '@temporalio/client';
import type { DeploymentStatus, Phase } from '../../src/domain/deployment';
import type { NotifyBody } from '../../src/domain/notify';
import { buildDeployInput, FleetFile, parseWith } from '../../src/schemas/fleet.schema';
import { timeSkippingServer } from '../../testkit/time-skipping';
import { startWorld, type World } from '../../testkit/world';
import { createDeployWorker } from '../../workers/worker';
import { deployWorkflow } from '../../workflows';
import { rollbackUpdate, statusQuery } from '../../workflows/messages';
import { saveHistory } from '../support/saga';
import { taskQueueFor, waitFor, workflowBundle } from '../support/temporal';
import { historyText } from '../support/history-text';

const ONCALL_SECRET = 'oncall-secret-from-a-file-5f1c';
const PAGER_SECRET = 'pager-secret-from-the-env-9a2e';

interface Delivery {
  path: string;
  event: string;
  body: NotifyBody;
}

/** A receiver with one secret per path; a delivery whose signature does not verify gets 401. */
async function receiver(secrets: Record<string, string>): Promise<{ base: string; deliveries: Delivery[]; refused: () => number; close(): Promise<void> }> {
  const deliveries: Delivery[] = [];
  let refused = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const secret = secrets[req.url ?? ''];
      const expected = Buffer.from(`sha256=${createHmac('sha256', secret ?? '').update(raw).digest('hex')}`);
      const got = Buffer.from(String(req.headers['x-nixfleet-signature-256'] ?? ''));
      if (!secret || req.method !== 'POST' || got.length !== expected.length || !timingSafeEqual(got, expected)) {
        refused += 1;
        res.writeHead(401).end();
        return;
      }
      deliveries.push({ path: req.url ?? '', event: String(req.headers['x-nixfleet-event']), body: JSON.parse(raw.toString('utf8')) as NotifyBody });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    deliveries,
    refused: () => refused,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The history as text with every payload decoded (payload data is base64 or bytes in the raw history). */
let env: TestWorkflowEnvironment;
let world: World | undefined;
let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nixfleet-notify-targets-'));
  env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: timeSkippingServer() } } });
}, 120_000);
afterAll(async () => {
  await env?.teardown();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(async () => {
  const w = world;
  world = undefined;
  if (w) {
    try {
      expect(w.github.validationFailures).toEqual([]);
    } finally {
      await w.stop();
    }
  }
});

type Handle = WorkflowHandle<typeof deployWorkflow>;
const phaseOf = async (handle: Handle, phases: Phase[]): Promise<DeploymentStatus> =>
  waitFor(`phase ${phases.join('/')}`, async () => {
    const s = await handle.query(statusQuery);
    return phases.includes(s.phase) ? s : undefined;
  }, 120_000, 200);
const seq = (d: Delivery): number => Number(d.body.id.split('/').pop());

async function failedDeployment(title: string, hook: { base: string }, fn: (handle: Handle) => Promise<void>): Promise<void> {
  const w = await startWorld({ hosts: [{ name: 'r1', kind: 'nixos' }, { name: 'r2', kind: 'nixos' }] });
  world = w;
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('r2').failActivation('script', { onlyVersion: 'v2' });
  // The worker's own configuration: a targets file (the secret in a file of its own) and the environment.
  const secretFile = join(dir, `${title}-oncall.secret`);
  writeFileSync(secretFile, `${ONCALL_SECRET}\n`, { mode: 0o600 });
  const targetsFile = join(dir, `${title}-targets.json`);
  writeFileSync(targetsFile, JSON.stringify({ oncall: { url: `${hook.base}/hooks/T000/B000/oncall-token`, secretFile } }), { mode: 0o600 });
  const notifyEnv = { NIXFLEET_NOTIFY_TARGETS_FILE: targetsFile, NIXFLEET_NOTIFY_PAGER_URL: `${hook.base}/pager/pager-token`, NIXFLEET_NOTIFY_PAGER_SECRET: PAGER_SECRET };
  const fleet = parseWith(FleetFile, {
    ...w.fleetFile({ revert: 'commit', rollbackHosts: true }),
    manualWindow: '24h',
    notify: [
      { target: 'oncall', remindBefore: '1h' },
      { target: 'pager', events: ['failed'] },
    ],
  });
  const input = buildDeployInput(fleet, { pullRequest: pr.number }, 'alice', { searchAttributes: false });
  expect(JSON.stringify(input)).not.toContain(hook.base);
  const taskQueue = taskQueueFor(title);
  const { worker, close } = await createDeployWorker({ connection: env.nativeConnection, namespace: env.namespace ?? 'default', taskQueue, deps: { ...w.activityDeps(), notifyEnv }, workflowBundle: await workflowBundle() });
  try {
    await worker.runUntil(async () => {
      const handle = await env.client.workflow.start(deployWorkflow, { taskQueue, workflowId: input.deploymentId, args: [input] });
      await fn(handle);
    });
  } finally {
    await close();
  }
}

test('when a failed deployment waits through its 24 h manual window, then the named targets are told, the on-call is reminded 1 h before it closes, and no URL or secret is in the history', async () => {
  const hook = await receiver({ '/hooks/T000/B000/oncall-token': ONCALL_SECRET, '/pager/pager-token': PAGER_SECRET });
  try {
    await failedDeployment('notify-targets-reminder', hook, async (handle) => {
      // Awaiting the result lets the test server skip the manual window's day.
      const s = await handle.result();
      expect(s.outcome).toBe('failed-rolled-back');
      expect(hook.refused()).toBe(0);
      const oncall = hook.deliveries.filter((d) => d.path.startsWith('/hooks/')).sort((a, b) => seq(a) - seq(b));
      const pager = hook.deliveries.filter((d) => d.path.startsWith('/pager/'));
      expect(oncall.map((d) => d.event)).toEqual(['failed', 'rolled-back', 'awaiting-operator', 'reminder']);
      expect(pager.map((d) => d.event)).toEqual(['failed']);
      const waiting = oncall[2]?.body as NotifyBody;
      const reminder = oncall[3]?.body as NotifyBody;
      // The deadline is the manual window's end, 24 h after the wait began; the reminder goes out 1 h before it, by the workflow's clock.
      expect(Date.parse(waiting.deadline as string) - Date.parse(waiting.at)).toBe(24 * 3600_000);
      expect(reminder.deadline).toBe(waiting.deadline);
      expect(Date.parse(reminder.at)).toBeGreaterThanOrEqual(Date.parse(waiting.deadline as string) - 3600_000);
      expect(Date.parse(reminder.at)).toBeLessThan(Date.parse(waiting.deadline as string) - 3600_000 + 60_000);
      expect(reminder.text).toMatch(/still waiting for an operator: the manual window closes soon/);
      expect(reminder.text).toContain(`Manual window closes: ${waiting.deadline}`);
      // The status and the audit trail name the targets, never their URLs.
      expect(s.notifications?.map((n) => `${n.event}:${n.target}:${n.delivered}`).sort()).toEqual(
        ['awaiting-operator:target oncall:true', 'failed:target oncall:true', 'failed:target pager:true', 'reminder:target oncall:true', 'rolled-back:target oncall:true'],
      );
      // Neither URL nor secret reached Temporal: not in the input, the activities' inputs, nor anywhere in the history.
      const history = historyText(await handle.fetchHistory());
      for (const secret of [hook.base, '127.0.0.1:' + new URL(hook.base).port, 'oncall-token', 'pager-token', ONCALL_SECRET, PAGER_SECRET]) expect(history).not.toContain(secret);
      // The check reads the decoded payloads: the target's name is there (the decoding works), its URL is not.
      expect(history).toContain('"notify":[{"target":"oncall"');
      expect(history).toContain('"target":{"name":"oncall"}');
      await saveHistory(handle, 'd-around-notify-targets');
    });
  } finally {
    await hook.close();
  }
}, 300_000);

test('when an operator acts within the manual window, then no reminder goes out', async () => {
  const hook = await receiver({ '/hooks/T000/B000/oncall-token': ONCALL_SECRET, '/pager/pager-token': PAGER_SECRET });
  try {
    await failedDeployment('notify-targets-no-reminder', hook, async (handle) => {
      await phaseOf(handle, ['awaiting-operator']);
      // Time skips only while the test awaits a result: the window is still at its start.
      const out = await handle.executeUpdate(rollbackUpdate, { args: [{ action: 'dismiss', requestedBy: 'olga', reason: 'seen' }] });
      expect(out).toBeDefined();
      const s = await handle.result();
      expect(s.phase).toBe('closed');
      await waitFor('the awaiting-operator notification', async () => (hook.deliveries.some((d) => d.event === 'awaiting-operator') ? true : undefined), 60_000, 100);
      expect(hook.deliveries.map((d) => d.event)).not.toContain('reminder');
      expect(s.notifications?.map((n) => n.event)).not.toContain('reminder');
    });
  } finally {
    await hook.close();
  }
}, 300_000);
