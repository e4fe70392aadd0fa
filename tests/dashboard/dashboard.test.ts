/**
 * The dashboard in a real browser (Debian's chromium, headless, driven by playwright-core; no browser
 * download): from a failed deployment, through the confirmation dialog, to the hosts shown rolled back.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { OPERATOR, startStack, VIEWER, type Stack } from '../api/stack';

const CHROMIUM = process.env.NIXFLEET_CHROMIUM ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const SHOTS = join(__dirname, '..', '..', '.nixfleet', 'screenshots');

let s: Stack;
let browser: Browser;
beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/setup.sh (scripts/install-browser-deps.sh installs Debian's chromium)`);
  s = await startStack('dashboard', [
    { name: 'gpc0', kind: 'nixos' },
    { name: 'hsb0', kind: 'nixos' },
    { name: 'hsb1', kind: 'nixos' },
    { name: 'csb0', kind: 'nixos' },
  ]);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  mkdirSync(SHOTS, { recursive: true });
});
afterAll(async () => {
  await browser?.close();
  await s?.stop();
});

async function signIn(page: Page, token: string): Promise<void> {
  await page.goto(`${s.base}/`);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#identity').waitFor();
}

const hostState = (page: Page, host: string) => page.locator(`#hosts tr[data-host="${host}"]`);

test('when an operator rolls back a failed deployment from the dashboard, then the dialog lists the hosts and they are shown rolled back live', async () => {
  const pr = await s.world.openLockUpdate('v2');
  s.world.fleet.host('hsb1').failActivation('units', { onlyVersion: 'v2' });
  const id = await s.deploy(pr.number, { revert: 'off', rollbackHosts: false });
  await s.waitPhase(id, ['awaiting-operator']);

  const context = await browser.newContext({ viewport: { width: 1360, height: 980 } });
  const errors: string[] = [];
  try {
    const page = await context.newPage();
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => (m.type() === 'error' ? errors.push(m.text()) : undefined));
    await signIn(page, OPERATOR);
    await page.getByText('olga (operator)').waitFor();
    await page.locator('#live.on').waitFor();

    // The list, then the deployment's panel as the card draws it.
    await page.locator(`#deployments tr[data-id="${id}"]`).click();
    const panel = page.locator('#failed-panel');
    await panel.getByText('⚠️ Deployment Failed').waitFor();
    await expectText(page, '#p-failed', 'hsb1');
    await expectText(page, '#p-deployed', 'gpc0, hsb0');
    await expectText(page, '#p-not-attempted', 'csb0');
    await expectText(page, '#p-rolled-back', 'none');
    // The buttons follow the rollback preview, read after the status: wait for them to be enabled.
    for (const b of ['Revert Merge', 'Rollback Deployed Hosts', 'Dismiss']) await panel.getByRole('button', { name: b, disabled: false }).waitFor({ timeout: 30_000 });

    // The confirmation lists what the action will touch (the rollbackPreview); Cancel changes nothing.
    await panel.getByRole('button', { name: 'Rollback Deployed Hosts' }).click();
    const dialog = page.locator('dialog#confirm');
    await dialog.waitFor();
    const items = await dialog.locator('li').allTextContents();
    expect(items[0]).toMatch(/^Revert merge commit [0-9a-f]{12} on acme\/fleet-\w+@main$/);
    expect(items.slice(1)).toEqual(['Roll back hsb1 (failed) from generation 43 to 42', 'Roll back hsb0 (switched) from generation 43 to 42', 'Roll back gpc0 (switched) from generation 43 to 42']);
    await page.screenshot({ path: join(SHOTS, 'dashboard-confirm.png') });
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await expectText(page, '#action-result', 'Cancelled; nothing was changed.');
    expect((await s.call<{ phase: string }>('GET', `/api/deployments/${id}`)).body.phase).toBe('awaiting-operator');

    await panel.getByRole('button', { name: 'Rollback Deployed Hosts' }).click();
    await dialog.getByRole('button', { name: 'Roll back hosts' }).click();
    // Live: each host passes through rolling-back on the way (pushed over the WebSocket).
    await page.locator('#events li[data-host="hsb1"][data-to="rolling-back"]').waitFor({ timeout: 60_000 });
    for (const h of ['hsb1', 'hsb0', 'gpc0']) await page.locator(`#hosts tr[data-host="${h}"][data-state="rolled-back"]`).waitFor({ timeout: 60_000 });
    // Every transition once, in order: each host went through rolling-back, in reverse deployment
    // order, numbered without a gap. (The table may be drawn from the request's answer first: wait for
    // the feed's last host line.)
    await page.locator('#events li[data-host="gpc0"][data-to="rolled-back"]').waitFor({ timeout: 60_000 });
    const hostLines = await page.locator('#events li[data-host]').evaluateAll((els) => els.map((e) => `${e.getAttribute('data-host')}:${e.getAttribute('data-to')}`));
    expect(hostLines).toEqual(['hsb1:rolling-back', 'hsb1:rolled-back', 'hsb0:rolling-back', 'hsb0:rolled-back', 'gpc0:rolling-back', 'gpc0:rolled-back']);
    const seqs = await page.locator('#events li[data-seq]').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-seq'))));
    expect(seqs).toEqual(seqs.map((_, i) => (seqs[0] as number) + i));
    await expectText(page, '#p-rolled-back', 'gpc0, hsb0, hsb1');
    await expectText(page, '#p-rollback-failed', 'none');
    await page.locator('#action-result', { hasText: 'Done: reverted in' }).waitFor({ timeout: 60_000 });
    await page.locator('#audit td', { hasText: 'revert-and-rollback' }).waitFor();
    expect(await page.locator('#audit tr', { hasText: 'revert-and-rollback' }).textContent()).toContain('olga');
    // The entries sit under a row naming their run: one run of this deployment id, so one such row, first.
    const auditRows = await page.locator('#audit tbody tr').evaluateAll((els) => els.map((e) => (e.classList.contains('run') ? 'run' : 'entry')));
    expect(auditRows[0]).toBe('run');
    expect(auditRows.filter((r) => r === 'run')).toHaveLength(1);
    expect(auditRows.length).toBeGreaterThan(2);
    expect(await hostState(page, 'csb0').getAttribute('data-state')).toBe('not-attempted');
    // Nothing else applies now: the buttons are off.
    await page.waitForFunction("[...document.querySelectorAll('#failed-panel .actions button')].every((b) => b.disabled)");
    await page.screenshot({ path: join(SHOTS, 'dashboard-rolled-back.png'), fullPage: true });

    // The hosts themselves are back.
    for (const h of ['gpc0', 'hsb0', 'hsb1']) expect(s.world.fleet.host(h).profileGeneration().number).toBe(42);
    expect(errors).toEqual([]);
  } finally {
    await context.close();
  }
});

test('when a viewer opens the dashboard, then the actions are disabled, and a bad token is refused', async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await signIn(page, VIEWER);
    await page.getByText('victor (viewer)').waitFor();
    await page.locator('#deployments tbody tr').first().click();
    await page.locator('#hosts tbody tr').first().waitFor();
    for (const b of await page.locator('#failed-panel .actions button').all()) expect(await b.isDisabled()).toBe(true);

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API token').fill('not-a-real-token-0123456789');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#login-error', { hasText: 'Sign-in failed' }).waitFor();
    expect(await page.evaluate("sessionStorage.getItem('nixfleet.token')")).toBeNull();
  } finally {
    await context.close();
  }
});

async function expectText(page: Page, selector: string, text: string): Promise<void> {
  await page.locator(selector, { hasText: new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) }).waitFor({ timeout: 30_000 });
}
