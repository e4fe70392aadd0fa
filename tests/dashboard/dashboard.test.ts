/**
 * The dashboard in a real browser (Debian's chromium, headless, driven by playwright-core; no browser
 * download): from a failed deployment, through the confirmation dialog, to the hosts shown rolled back;
 * what it shows (a failed outcome never green, the generation trail, a list that fits its columns even
 * for a long repository name) and what Temporal Web shows for the deployment (its static summary).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { DeploymentStatus } from '../../src/domain/deployment';
import { generationTrail, outcomeTone } from '../../src/domain/presentation';
import { OPERATOR, startStack, VIEWER, type Stack } from '../api/stack';
import { launchChromium, openPage, signIn as signInAt } from './browser';

const SHOTS = join(__dirname, '..', '..', '.nixfleet', 'screenshots');

let s: Stack;
let browser: Browser;
beforeAll(async () => {
  s = await startStack('dashboard', [
    { name: 'gpc0', kind: 'nixos' },
    { name: 'hsb0', kind: 'nixos' },
    { name: 'hsb1', kind: 'nixos' },
    { name: 'csb0', kind: 'nixos' },
  ], {
    // A long repository name makes a long deployment id (with escapes): the list must still fit.
    world: { owner: 'acme-infrastructure-platform', repo: 'nixos_fleet.configuration-for-every-datacenter-and-edge-site' },
  });
  browser = await launchChromium();
  mkdirSync(SHOTS, { recursive: true });
  // The stack (dev server, stand-in hosts, GitHub stand-in, API) and chromium: minutes on a loaded machine.
}, 300_000);
afterAll(async () => {
  await browser?.close();
  await s?.stop();
});

const signIn = (page: Page, token: string): Promise<void> => signInAt(page, s.base, token);

const hostState = (page: Page, host: string) => page.locator(`#hosts tr[data-host="${host}"]`);

test('when an operator rolls back a failed deployment from the dashboard, then the dialog lists the hosts and they are shown rolled back live', async () => {
  const pr = await s.world.openLockUpdate('v2');
  s.world.fleet.host('hsb1').failActivation('units', { onlyVersion: 'v2' });
  const id = await s.deploy(pr.number, { revert: 'off', rollbackHosts: false });
  await s.waitPhase(id, ['awaiting-operator']);

  const { context, page, errors } = await openPage(browser);
  try {
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
    const items = await dialog.locator('#confirm-list > li').allTextContents();
    expect(items[0]).toMatch(/^Revert merge commit [0-9a-f]{12} on acme-infrastructure-platform\/nixos_fleet\.configuration-for-every-datacenter-and-edge-site@main$/);
    expect(items.slice(1)).toEqual(['Roll back hsb1 (failed) from generation 43 to 42', 'Roll back hsb0 (switched) from generation 43 to 42', 'Roll back gpc0 (switched) from generation 43 to 42']);
    // What the rollback will undo on each host: its closure change reversed, read on the host itself.
    const undo = dialog.locator('#confirm-changes li[data-host="hsb0"][data-ready="true"]');
    await undo.waitFor({ timeout: 60_000 });
    expect(await undo.locator('li').allTextContents()).toEqual(['+ nixos-system-hsb0-seed 42', '- nixos-system-hsb0-v2 ε']);
    expect(await undo.textContent()).toMatch(/^hsb0: 1 added, 1 removed, 0 upgraded; closure [+-]?\d/);
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

    // The generation column says where each host is now, by the rules the CLI uses too.
    const status = (await s.call<DeploymentStatus>('GET', `/api/deployments/${id}`)).body;
    const shown = Object.fromEntries(await page.locator('#hosts tbody tr').evaluateAll((rows) => rows.map((r) => [r.getAttribute('data-host'), r.querySelector('td.generation')?.textContent])));
    expect(shown).toEqual(Object.fromEntries(status.hosts.map((h) => [h.name, generationTrail(h)])));
    expect(shown).toEqual({ gpc0: '42 → 43 → 42', hsb0: '42 → 43 → 42', hsb1: '42 → 43 → 42', csb0: '–' }); // csb0 was never contacted: its generation is not known

    // The host row says what the deployment changed on the host (nix store diff-closures on it).
    await page.locator('#hosts tr[data-host="hsb0"] td.changes').getByRole('button', { name: 'what changed' }).click();
    const changed = page.locator('#hosts tr[data-host="hsb0"] td.changes details');
    await changed.waitFor({ timeout: 60_000 });
    const api = (await s.call<{ diff: { changes: unknown[]; added: number; removed: number } }>('GET', `/api/deployments/${id}/hosts/hsb0/changes`)).body.diff;
    expect({ added: api.added, removed: api.removed }).toEqual({ added: 1, removed: 1 });
    await changed.locator('summary').click();
    expect(await changed.locator('li').allTextContents()).toEqual(['- nixos-system-hsb0-seed 42', '+ nixos-system-hsb0-v2 ε']); // Nix's order: by name
    expect(await page.locator('#hosts tr[data-host="csb0"] td.changes button').count()).toBe(0);

    // A failed outcome is never green: not in the list, not in the detail's badge, not a rolled-back host.
    await page.getByRole('button', { name: 'Refresh' }).click();
    expect(status.outcome).toMatch(/^failed-/);
    // The list is redrawn by the refresh (and every 10 s): wait for the row to show the outcome now.
    const listed = page.locator(`#deployments tr[data-id="${id}"] .badge.outcome`, { hasText: new RegExp(`^${status.outcome}$`) });
    await listed.waitFor({ timeout: 30_000 });
    expect(await listed.getAttribute('data-tone')).toBe(outcomeTone(status.outcome));
    for (const sel of [`#deployments tr[data-id="${id}"] .badge.outcome`, '#detail-phase', '#hosts tr[data-host="hsb1"] .state']) {
      await page.locator(sel).waitFor();
      const colours = (await page.evaluate(`(() => { const cs = getComputedStyle(document.querySelector(${JSON.stringify(sel)})); return [cs.backgroundColor, cs.color]; })()`)) as string[];
      for (const c of colours) expect({ sel, c, green: isGreen(c) }).toEqual({ sel, c, green: false });
    }

    // The list fits its column: no cell's content runs past it, the table not past its section.
    await expectListFits(page);
    await page.setViewportSize({ width: 1024, height: 900 });
    await expectListFits(page);

    // Temporal Web: the summary and details given where the deployment was started.
    const described = await s.t.client.workflow.getHandle(id).describe();
    expect(await described.staticSummary()).toBe(`flake.lock update ${s.world.owner}/${s.world.repo}@main · PR #${pr.number} · 4 hosts`);
    expect(await described.staticDetails()).toContain('- all: gpc0, hsb0, hsb1, csb0');
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

/** A CSS colour (rgb()/rgba()) whose green channel clearly leads: what "shown green" means here. */
function isGreen(css: string): boolean {
  const m = /rgba?\((\d+), (\d+), (\d+)(?:, ([\d.]+))?\)/.exec(css);
  if (!m) throw new Error(`not a colour: ${JSON.stringify(css)}`);
  const [r, g, b, a] = [Number(m[1]), Number(m[2]), Number(m[3]), m[4] === undefined ? 1 : Number(m[4])];
  return a > 0 && g - Math.max(r, b) > 12;
}

async function expectListFits(page: Page): Promise<void> {
  // A string: the test's TypeScript has no DOM types.
  const overflow = (await page.evaluate(`(() => {
    const table = document.getElementById('deployments');
    const section = document.getElementById('list');
    const out = [];
    if (table.getBoundingClientRect().right > section.getBoundingClientRect().right - 1) out.push('table ' + table.getBoundingClientRect().right + ' > section ' + section.getBoundingClientRect().right);
    for (const e of Array.from(table.querySelectorAll('td, td > *'))) {
      if (e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).textOverflow !== 'ellipsis') out.push(e.tagName + '.' + e.className + ': ' + e.scrollWidth + ' > ' + e.clientWidth + ': ' + e.textContent);
      const parent = e.closest('td');
      if (e !== parent && e.getBoundingClientRect().right > parent.getBoundingClientRect().right + 1) out.push(e.className + ' runs past its cell: ' + e.textContent);
    }
    return out;
  })()`)) as string[];
  expect(overflow).toEqual([]);
}
