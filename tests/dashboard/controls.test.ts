/**
 * The operator controls from the dashboard (Debian's chromium, headless, driven by playwright-core),
 * the API and the CLI, on the whole real stack: pause with a host in flight, skip a host not started,
 * resume, and abort; promote a baking deployment and retry a failed host. Each is shown live, refused
 * with a reason where it does not apply (a disabled control says why), and in the audit log with the
 * operator's identity.
 */
import type { Browser, Page } from 'playwright-core';
import type { DeploymentStatus } from '../../src/domain/deployment';
import { run } from '../../src/cli/main';
import { OPERATOR, startStack, VIEWER, type Stack } from '../api/stack';
import { waitFor } from '../support/temporal';
import { launchChromium, openPage, signIn as signInAt } from './browser';


let s: Stack;
let browser: Browser;
beforeAll(async () => {
  s = await startStack('dashboard-controls', [
    { name: 'k1', kind: 'nixos' },
    { name: 'k2', kind: 'nixos' },
    { name: 'k3', kind: 'nixos' },
    { name: 'k4', kind: 'nixos' },
  ]);
  browser = await launchChromium();
  // The stack (dev server, stand-in hosts, GitHub stand-in, API) and chromium: minutes on a loaded machine.
}, 300_000);
afterAll(async () => {
  await browser?.close();
  await s?.stop();
});

const signIn = (page: Page, token: string): Promise<void> => signInAt(page, s.base, token);

const cli = async (...argv: string[]): Promise<{ code: number; out: string; err: string }> => {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(argv, { out: (x) => out.push(x), err: (x) => err.push(x), confirm: () => Promise.resolve(false), env: { NIXFLEET_API_URL: s.base, NIXFLEET_TOKEN: OPERATOR } }).catch((e: Error) => {
    err.push(e.message);
    return -1;
  });
  return { code, out: out.join('\n'), err: err.join('\n') };
};

test('when an operator pauses, skips a host, resumes from the CLI and aborts from the dashboard, then each is shown live, refused where it does not apply, and audited with the operator', async () => {
  const w = s.world;
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('k1').hangBuild(true);
  const id = await s.deploy(pr.number, { revert: 'commit', rollbackHosts: true });
  await waitFor("k1's build to block", () => (w.fleet.host('k1').commandLog().some((e) => e.tool === 'hang-build') ? true : undefined), 60_000);

  // The API: what applies now, a refusal with its reason (409), and no control for a viewer (403).
  const view = await s.call<{ allowed: string[]; skippable: string[] }>('GET', `/api/deployments/${id}/controls`);
  expect(view.body).toMatchObject({ allowed: ['pause', 'abort', 'skip'], skippable: ['k2', 'k3', 'k4'] });
  const refused = await s.call<{ message: string }>('POST', `/api/deployments/${id}/control`, { control: 'promote' });
  expect(refused.status).toBe(409);
  expect(refused.body.message).toBe('the deployment is deploying; promote applies only while a wave bakes');
  expect((await s.call('POST', `/api/deployments/${id}/control`, { control: 'pause' }, VIEWER)).status).toBe(403);
  expect((await s.call<{ message: string }>('POST', `/api/deployments/${id}/control`, { control: 'pause', requestedBy: 'mallory' })).status).toBe(400);

  const { context, page, errors } = await openPage(browser);
  try {
    await signIn(page, OPERATOR);
    await page.locator('#live.on').waitFor();
    await page.locator(`#deployments tr[data-id="${id}"]`).click();
    const panel = page.locator('#controls-panel');
    await panel.getByRole('button', { name: 'Pause', disabled: false }).waitFor({ timeout: 30_000 });
    expect(await panel.getByRole('button', { name: 'Resume' }).isDisabled()).toBe(true);
    expect(await panel.getByRole('button', { name: 'Promote' }).isDisabled()).toBe(true);

    await panel.getByRole('button', { name: 'Pause' }).click();
    await panel.locator('#c-state', { hasText: 'Paused by olga' }).waitFor();
    await panel.getByRole('button', { name: 'Resume', disabled: false }).waitFor();
    expect(await panel.getByRole('button', { name: 'Pause' }).isDisabled()).toBe(true);

    // Skip k3 (not started): shown held, live.
    await panel.locator('#c-skip-host').selectOption('k3');
    await panel.getByRole('button', { name: 'Skip host' }).click();
    await page.locator('#hosts tr[data-host="k3"][data-state="held"]').waitFor({ timeout: 30_000 });
    await panel.locator('#c-state', { hasText: 'Skipped: k3.' }).waitFor();

    // k1 finishes while paused; k2 does not start.
    w.fleet.host('k1').hangBuild(false);
    await page.locator('#hosts tr[data-host="k1"][data-state="switched"]').waitFor({ timeout: 60_000 });
    expect(await page.locator('#hosts tr[data-host="k2"]').getAttribute('data-state')).toBe('pending');

    // Resume from the CLI (the same API), and it is shown: k2 starts.
    w.fleet.host('k2').hangBuild(true);
    const resumed = await cli('control', id, 'resume');
    expect(resumed).toMatchObject({ code: 0 });
    expect(resumed.out).toContain('resumed');
    const again = await cli('control', id, 'resume');
    expect(again.err).toContain('the deployment is not paused');
    await waitFor("k2's build to block", () => (w.fleet.host('k2').commandLog().some((e) => e.tool === 'hang-build') ? true : undefined), 60_000);

    // Abort from the dashboard, through its confirmation; the deployment is compensated and shown so.
    page.once('dialog', (d) => void d.accept());
    await page.reload();
    await page.locator(`#deployments tr[data-id="${id}"]`).click();
    await panel.getByRole('button', { name: 'Abort', disabled: false }).waitFor({ timeout: 30_000 });
    await panel.getByRole('button', { name: 'Abort' }).click();
    await panel.locator('#c-state', { hasText: 'Aborted by olga.' }).waitFor({ timeout: 30_000 });
    w.fleet.host('k2').hangBuild(false);
    await page.locator('#failed-panel').getByText('⚠️ Deployment Failed').waitFor({ timeout: 90_000 });
    for (const h of ['k1', 'k2']) await page.locator(`#hosts tr[data-host="${h}"][data-state="rolled-back"]`).waitFor({ timeout: 90_000 });
    expect(await page.locator('#hosts tr[data-host="k4"]').getAttribute('data-state')).toBe('not-attempted');
    await page.locator('#p-failure', { hasText: 'aborted by olga' }).waitFor();
    for (const a of ['pause', 'skip', 'resume', 'abort']) await page.locator('#audit tr', { hasText: a }).first().waitFor({ timeout: 30_000 });
    expect(await page.locator('#audit tr', { hasText: 'abort' }).first().textContent()).toContain('olga');
    expect(errors).toEqual([]);
  } finally {
    await context.close();
  }
  const final = (await s.call<DeploymentStatus>('GET', `/api/deployments/${id}`)).body;
  // The CLI's resume too many is in the trail too, refused with its reason.
  expect(final.audit.filter((a) => ['pause', 'skip', 'resume', 'abort'].includes(a.action)).map((a) => `${a.actor}:${a.action}`)).toEqual(['olga:pause', 'olga:skip', 'olga:resume', 'olga:resume', 'olga:abort']);
  expect(final.audit.filter((a) => a.action === 'resume').map((a) => a.outcome)).toEqual(['resumed', 'refused: the deployment is not paused']);
  expect(w.fleet.host('k3').sshdLog()).not.toContain('Accepted publickey');
});

/** Starts a deployment through the API with a rollout (the stack's deploy() takes none). */
async function deployWith(pr: number, rollout: unknown, onFailure: { revert: 'off' | 'commit'; rollbackHosts: boolean }): Promise<string> {
  const res = await s.call<{ deploymentId: string; message?: string }>('POST', '/api/deployments', { fleet: { ...s.world.fleetFile(onFailure), rollout }, change: { pullRequest: pr } });
  if (res.status !== 201) throw new Error(`deploy: ${res.status} ${res.body.message ?? ''}`);
  return res.body.deploymentId;
}

/** The deployments still open for an operator are dismissed (they hold the fleet's lock). */
async function dismissOpen(): Promise<void> {
  const list = (await s.call<{ deployments: Array<{ deploymentId: string; phase?: string }> }>('GET', '/api/deployments')).body.deployments;
  for (const d of list.filter((x) => x.phase === 'awaiting-operator')) {
    expect((await s.call('POST', `/api/deployments/${d.deploymentId}/dismiss`, {})).status).toBe(200);
    await s.waitPhase(d.deploymentId, ['closed']);
  }
}

test('when an operator promotes a baking deployment and retries a failed host from the dashboard, then each ends as asked, the controls that do not apply say why, and both are audited with the operator', async () => {
  await dismissOpen();
  const w = s.world;
  const { context, page, errors } = await openPage(browser);
  try {
    await signIn(page, OPERATOR);
    await page.locator('#live.on').waitFor();
    const panel = page.locator('#controls-panel');
    const button = (name: string) => panel.getByRole('button', { name, exact: true });

    // --- promote: the canary bakes for an hour; only the promote can end it within the test's bound.
    const pr = await w.openLockUpdate('v3');
    w.fleet.host('k1').hangBuild(true);
    const id = await deployWith(pr.number, { waves: [{ name: 'canary', hosts: ['k1'], bake: 3600 }, { name: 'rest', hosts: ['k2', 'k3', 'k4'] }] }, { revert: 'commit', rollbackHosts: true });
    await waitFor("k1's build to block", () => (w.fleet.host('k1').commandLog().some((e) => e.tool === 'hang-build') ? true : undefined), 60_000);
    await page.locator(`#deployments tr[data-id="${id}"]`).click();
    await button('Pause').and(page.locator(':enabled')).waitFor({ timeout: 30_000 });
    // Not baking yet: Promote is disabled and says why; so does Retry failed hosts.
    expect(await button('Promote').isDisabled()).toBe(true);
    expect(await button('Promote').getAttribute('title')).toBe('the deployment is deploying; promote applies only while a wave bakes');
    expect(await button('Retry failed hosts').getAttribute('title')).toBe('the deployment is deploying; retry-failed applies only to a deployment awaiting an operator after host failures');
    w.fleet.host('k1').hangBuild(false);
    await page.locator('#hosts tr[data-host="k1"][data-state="switched"]').waitFor({ timeout: 60_000 });
    await button('Promote').and(page.locator(':enabled')).waitFor({ timeout: 60_000 });
    expect(await page.locator('#hosts tr[data-host="k2"]').getAttribute('data-state')).toBe('pending');
    await button('Promote').click();
    await panel.locator('#c-result', { hasText: 'promoted: the bake ends now' }).waitFor({ timeout: 30_000 });
    for (const h of ['k2', 'k3', 'k4']) await page.locator(`#hosts tr[data-host="${h}"][data-state="switched"]`).waitFor({ timeout: 90_000 });
    const promoted = await s.waitPhase(id, ['succeeded', 'closed']);
    expect(promoted.outcome).toBe('succeeded');
    await page.locator('#audit tr', { hasText: 'promote' }).first().waitFor({ timeout: 30_000 });
    expect(await page.locator('#audit tr', { hasText: 'promote' }).first().textContent()).toContain('olga');
    expect(promoted.audit.filter((a) => a.action === 'promote').map((a) => `${a.actor}:${a.outcome}`)).toEqual(['olga:promoted: the bake ends now']);

    // No kernel change: read (without rollout.reboot) and no reboot needed, so the row says nothing of one.
    expect(await page.locator('#hosts tr[data-host="k2"] td[data-reboot]').getAttribute('data-reboot')).toBe('not-needed');

    // --- retry-failed: k3 fails its activation (failed units) within a budget of one; the others switch.
    // The update brings a new kernel: each switched host's row says it needs a reboot (not asked for: none happens).
    const pr2 = await w.openLockUpdate('v4', { kernel: '6.10.1' });
    w.fleet.host('k3').failActivation('units', { onlyVersion: 'v4' });
    const id2 = await deployWith(pr2.number, { failureBudget: 1 }, { revert: 'commit', rollbackHosts: false });
    await s.waitPhase(id2, ['awaiting-operator']);
    await page.locator(`#deployments tr[data-id="${id2}"]`).click();
    await page.locator('#hosts tr[data-host="k3"][data-state="failed"]').waitFor({ timeout: 30_000 });
    await button('Retry failed hosts').and(page.locator(':enabled')).waitFor({ timeout: 30_000 });
    expect(await button('Promote').getAttribute('title')).toBe('the deployment is awaiting-operator; promote applies only while a wave bakes');
    expect(await button('Abort').getAttribute('title')).toBe('the deployment has already stopped and awaits an operator: use rollback (revert, revert-and-rollback) or dismiss');
    // The operator repairs the unit that failed on k3; the retry deploys k3 alone.
    w.fleet.host('k3').failActivation(false);
    w.fleet.host('k3').setFailedUnits([]);
    const activations = (n: string) => w.fleet.host(n).activations().length;
    const before = Object.fromEntries(['k1', 'k2', 'k4'].map((n) => [n, activations(n)]));
    await button('Retry failed hosts').click();
    await panel.locator('#c-result', { hasText: 'retried k3: all switched' }).waitFor({ timeout: 90_000 });
    await page.locator('#hosts tr[data-host="k3"][data-state="switched"]').waitFor({ timeout: 30_000 });
    const retried = await s.waitPhase(id2, ['succeeded', 'closed']);
    expect(retried.outcome).toBe('succeeded');
    expect(retried.hosts.map((h) => `${h.name}:${h.state}`)).toEqual(['k1:switched', 'k2:switched', 'k3:switched', 'k4:switched']);
    for (const n of ['k1', 'k2', 'k4']) expect(activations(n)).toBe(before[n]);
    for (const n of ['k1', 'k3']) await page.locator(`#hosts tr[data-host="${n}"] td[data-reboot="needed"]`, { hasText: 'reboot needed (kernel, initrd, kernelModules)' }).waitFor({ timeout: 30_000 });
    expect(retried.hosts.find((h) => h.name === 'k3')?.reboot).toEqual({ needed: true, differs: ['kernel', 'initrd', 'kernelModules'] });
    expect(w.fleet.host('k3').reboots).toBe(0);
    await page.locator('#audit tr', { hasText: 'retry-failed' }).first().waitFor({ timeout: 30_000 });
    expect(await page.locator('#audit tr', { hasText: 'retry-failed' }).first().textContent()).toContain('olga');
    expect(retried.audit.filter((a) => a.action === 'retry-failed').map((a) => `${a.actor}:${a.hosts.join(',')}:${a.outcome}`)).toEqual(['olga:k3:retried k3: all switched']);
    expect(errors).toEqual([]);
  } finally {
    await context.close();
  }
}, 300_000);
