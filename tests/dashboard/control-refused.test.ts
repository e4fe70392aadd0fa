/**
 * A dashboard control the server refuses (Debian's chromium, headless, driven by playwright-core, on
 * the whole real stack): the button is enabled when the page renders, and by the time the operator's
 * click reaches the API the deployment no longer allows it: another operator acted first through the
 * API, or the deployment moved on (it succeeded). The click's request is held on its way (the real
 * request, sent on once the other change has landed), so the refusal is certain, not a race. The page
 * shows the server's reason, then what is true now; nothing is lost: the deployment goes on as it
 * would have, and the audit log holds what was accepted and the refusal with its actor and reason
 * (patched 'h-ops-audit-refusals'; a request that reaches a deployment already closed has no trail to
 * join: tests/controls/refusals.test.ts).
 */
import type { Browser, Page, Route } from 'playwright-core';
import type { DeploymentStatus } from '../../src/domain/deployment';
import { OPERATOR, OPERATOR2, startStack, type Stack } from '../api/stack';
import { waitFor } from '../support/temporal';
import { launchChromium, openPage, signIn } from './browser';

let s: Stack;
let browser: Browser;
beforeAll(async () => {
  s = await startStack('dashboard-control-refused', [
    { name: 'r1', kind: 'nixos' },
    { name: 'r2', kind: 'nixos' },
  ]);
  browser = await launchChromium();
  // The stack (dev server, stand-in hosts, GitHub stand-in, API) and chromium: minutes on a loaded machine.
}, 300_000);
afterAll(async () => {
  await browser?.close();
  await s?.stop();
});

const onFailure = { revert: 'commit' as const, rollbackHosts: true };
const buildBlocked = (host: string) => waitFor(`${host}'s build to block`, () => (s.world.fleet.host(host).commandLog().some((e) => e.tool === 'hang-build') ? true : undefined), 60_000);

/**
 * Holds the page's next control request until `meanwhile` has run, then sends it on to the API as it
 * was. Resolves once the route is in place; `sent` resolves with the request's body once it has gone on.
 */
async function holdNextControl(page: Page, meanwhile: () => Promise<void>): Promise<{ sent: Promise<unknown> }> {
  let resolve!: (body: unknown) => void;
  let reject!: (err: Error) => void;
  const sent = new Promise<unknown>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  let held = false;
  const handler = async (route: Route): Promise<void> => {
    if (route.request().method() !== 'POST' || held) return route.continue();
    held = true;
    try {
      await meanwhile();
      await route.continue();
      resolve(route.request().postDataJSON());
    } catch (err) {
      await route.abort().catch(() => undefined);
      reject(err as Error);
    }
  };
  await page.route(CONTROL_URL, handler);
  return { sent };
}
const CONTROL_URL = /\/api\/deployments\/[^/]+\/control$/;

/** The page's errors, chromium's console line for the refused request (a 409 it loaded) named as such. */
const pageErrors = (errors: string[]): string[] => errors.map((e) => (/^Failed to load resource: the server responded with a status of 409 \(Conflict\)$/.test(e) ? 'the refused request (409)' : e));

const auditOf = async (id: string): Promise<string[]> => (await s.call<DeploymentStatus>('GET', `/api/deployments/${id}`)).body.audit.map((a) => `${a.actor}:${a.action}:${a.outcome}`);

test('when another operator pauses through the API before the dashboard operator\'s Pause reaches it, then the page shows the refusal with the reason and what is true now, follows the other operator\'s resume live, and the deployment finishes', async () => {
  const w = s.world;
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('r1').hangBuild(true);
  const id = await s.deploy(pr.number, onFailure);
  await buildBlocked('r1');

  const { context, page, errors } = await openPage(browser);
  try {
    await signIn(page, s.base, OPERATOR);
    await page.locator('#live.on').waitFor();
    await page.locator(`#deployments tr[data-id="${id}"]`).click();
    const panel = page.locator('#controls-panel');
    const button = (name: string) => panel.getByRole('button', { name, exact: true });
    await button('Pause').and(page.locator(':enabled')).waitFor({ timeout: 30_000 });

    // olga clicks Pause; before her request lands, otto pauses through the API.
    const { sent } = await holdNextControl(page, async () => {
      const first = await s.call<{ accepted: boolean; summary: string }>('POST', `/api/deployments/${id}/control`, { control: 'pause' }, OPERATOR2);
      expect(first).toMatchObject({ status: 200, body: { accepted: true } });
    });
    await button('Pause').click();
    expect(await sent).toEqual({ control: 'pause' });
    await panel.locator('#c-result', { hasText: 'Refused: the deployment is already paused' }).waitFor({ timeout: 30_000 });
    // What is true now: otto's pause, and the controls that apply to it.
    await panel.locator('#c-state', { hasText: 'Paused by otto' }).waitFor({ timeout: 30_000 });
    await button('Resume').and(page.locator(':enabled')).waitFor({ timeout: 30_000 });
    expect(await button('Pause').isDisabled()).toBe(true);
    expect(await button('Pause').getAttribute('title')).toBe('the deployment is already paused');

    // otto resumes through the API: the page follows live (no host moved meanwhile: r1 is still building).
    expect((await s.call('POST', `/api/deployments/${id}/control`, { control: 'resume' }, OPERATOR2)).status).toBe(200);
    await panel.locator('#c-state', { hasText: 'Running.' }).waitFor({ timeout: 30_000 });
    await button('Pause').and(page.locator(':enabled')).waitFor({ timeout: 30_000 });
    expect(await button('Resume').isDisabled()).toBe(true);
    expect(w.fleet.host('r1').commandLog().filter((e) => e.tool === 'hang-build').length).toBe(1);

    // Nothing lost: the deployment goes on and succeeds; the trail holds otto's controls and olga's refusal, with its reason.
    w.fleet.host('r1').hangBuild(false);
    for (const h of ['r1', 'r2']) await page.locator(`#hosts tr[data-host="${h}"][data-state="switched"]`).waitFor({ timeout: 90_000 });
    const done = await s.waitPhase(id, ['succeeded', 'closed']);
    expect(done.outcome).toBe('succeeded');
    const trail = await auditOf(id);
    expect(trail.filter((a) => /:(pause|resume):/.test(a))).toEqual(['otto:pause:paused: no further host starts; the hosts in flight finish', 'olga:pause:refused: the deployment is already paused', 'otto:resume:resumed']);
    await page.locator('#audit tr', { hasText: 'resume' }).first().waitFor({ timeout: 30_000 });
    expect(pageErrors(errors)).toEqual(['the refused request (409)']);
  } finally {
    await context.close();
  }
}, 300_000);

test('when the deployment succeeds before the dashboard operator\'s Abort reaches the API, then the page shows the refusal with the reason, nothing is aborted or rolled back, and the deployment stays succeeded', async () => {
  const w = s.world;
  const pr = await w.openLockUpdate('v3');
  w.fleet.host('r1').hangBuild(true);
  const id = await s.deploy(pr.number, onFailure);
  await buildBlocked('r1');

  const { context, page, errors } = await openPage(browser);
  try {
    await signIn(page, s.base, OPERATOR);
    await page.locator('#live.on').waitFor();
    await page.locator(`#deployments tr[data-id="${id}"]`).click();
    const panel = page.locator('#controls-panel');
    const button = (name: string) => panel.getByRole('button', { name, exact: true });
    await button('Abort').and(page.locator(':enabled')).waitFor({ timeout: 30_000 });

    // olga confirms Abort; before her request lands, r1's build finishes and the deployment succeeds.
    let done: DeploymentStatus | undefined;
    const { sent } = await holdNextControl(page, async () => {
      w.fleet.host('r1').hangBuild(false);
      done = await s.waitPhase(id, ['succeeded', 'closed']);
    });
    page.once('dialog', (d) => void d.accept());
    await button('Abort').click();
    expect(await sent).toEqual({ control: 'abort' });
    expect(done?.outcome).toBe('succeeded');
    const result = panel.locator('#c-result');
    await result.filter({ hasText: /^Refused: (the deployment is (succeeded|closed); abort applies only while it builds, deploys or bakes|deployment .* is closed.*)$/ }).waitFor({ timeout: 30_000 });
    // The page has asked what applies now (nothing: every control is off, Abort says why), and the
    // operator still sees the refusal: the panel holding it stays on screen.
    await button('Abort').and(page.locator(':disabled')).waitFor({ state: 'attached', timeout: 30_000 });
    expect(await button('Abort').getAttribute('title')).toMatch(/^(the deployment is (succeeded|closed); abort applies only while it builds, deploys or bakes|.*deployment .* is closed.*)$/);
    expect(await panel.isVisible()).toBe(true);
    expect(await result.isVisible()).toBe(true);
    expect(await panel.locator('#c-state').textContent()).not.toContain('Aborted');

    // Nothing lost: both hosts switched and stay so; no abort accepted (olga's refusal is in the trail
    // when it reached the workflow before it closed), no rollback on a host.
    for (const h of ['r1', 'r2']) await page.locator(`#hosts tr[data-host="${h}"][data-state="switched"]`).waitFor({ timeout: 30_000 });
    const final = (await s.call<DeploymentStatus>('GET', `/api/deployments/${id}`)).body;
    expect(final.outcome).toBe('succeeded');
    expect(final.hosts.map((h) => `${h.name}:${h.state}`)).toEqual(['r1:switched', 'r2:switched']);
    for (const a of (await auditOf(id)).filter((x) => /:(abort|rollback|revert|revert-and-rollback):/.test(x))) expect(a).toMatch(/^olga:abort:refused: the deployment is (succeeded|closed); abort applies only while it builds, deploys or bakes$/);
    expect(await page.locator('#p-failure').isVisible()).toBe(false);
    expect(pageErrors(errors)).toEqual(['the refused request (409)']);
  } finally {
    await context.close();
  }
}, 300_000);
