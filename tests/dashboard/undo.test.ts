/**
 * Undo a deployment that succeeded, from the dashboard (Debian's chromium, headless, driven by
 * playwright-core), on the whole real stack (dev server, worker with a SQLite audit store, the API,
 * the stand-in fleet, the GitHub stand-in): the button is there for a closed, successful deployment
 * (off for a viewer); the dialog shows the plan as the CLI does: the hosts it rolls back with what it
 * undoes on each (closure diffs), a host changed since left alone until ticked, the merge's revert;
 * confirmed, the merge is reverted, the hosts are back, and the audit log names the operator.
 */
import { readFileSync } from 'node:fs';
import pino from 'pino';
import type { Browser, Page } from 'playwright-core';
import { createActivities } from '../../activities';
import { FleetFile, hostsOf, parseWith } from '../../src/schemas/fleet.schema';
import { fleetFlakeLock } from '../../testkit/fleet';
import { OPERATOR, startStack, VIEWER, type Stack } from '../api/stack';
import { revertCommits } from '../support/saga';
import { waitFor } from '../support/temporal';
import { launchChromium, signIn as signInAt } from './browser';


let s: Stack;
let browser: Browser;
beforeAll(async () => {
  s = await startStack('dashboard-undo', [
    { name: 'u1', kind: 'nixos' },
    { name: 'u2', kind: 'nixos' },
  ]);
  browser = await launchChromium();
  // The stack (dev server, stand-in hosts, GitHub stand-in, API) and chromium: minutes on a loaded machine.
}, 300_000);
afterAll(async () => {
  await browser?.close();
  await s?.stop();
});

async function signIn(page: Page, token: string, id: string): Promise<void> {
  await signInAt(page, s.base, token);
  await page.locator(`#deployments tr[data-id="${id}"]`).click();
}

test('when an operator undoes a deployment that succeeded from the dashboard, then the dialog shows the plan, a host changed since is undone only when ticked, and the undo is carried out and audited with the operator', async () => {
  const w = s.world;
  const pr = await w.openLockUpdate('v2');
  const before = Object.fromEntries(['u1', 'u2'].map((h) => [h, w.fleet.host(h).profileGeneration()]));
  const onFailure = { revert: 'commit' as const, rollbackHosts: true };
  const id = await s.deploy(pr.number, onFailure);
  await waitFor(`${id}'s results in the audit store`, async () => ((await s.audit.results(id)).length > 0 ? true : undefined), 300_000, 250);
  const mergeSha = (await s.audit.results(id))[0]?.mergeSha as string;
  const after = Object.fromEntries(['u1', 'u2'].map((h) => [h, w.fleet.host(h).profileGeneration()]));

  // u1 is switched by hand since (to its generation before the one before: a real profile move).
  const u1 = hostsOf(parseWith(FleetFile, w.fleetFile(onFailure))).find((h) => h.name === 'u1');
  const older = w.fleet.host('u1').generations().find((g) => g.number === (before.u1?.number ?? 0) - 1);
  if (!u1 || !older) throw new Error('no u1 or no older generation');
  const { activities, close } = createActivities({ ...w.activityDeps(pino({ level: 'silent' })) });
  try {
    await activities.rollbackHost({ deploymentId: 'by-hand', host: u1, to: { number: older.number, storePath: older.storePath } });
  } finally {
    await close();
  }
  const u1Since = w.fleet.host('u1').profileGeneration();

  // A viewer sees the panel with the button off.
  const viewer = await browser.newPage();
  try {
    await signIn(viewer, VIEWER, id);
    await viewer.locator('#undo-panel').waitFor();
    expect(await viewer.locator('#act-undo').isDisabled()).toBe(true);
    expect(await viewer.locator('#act-undo').getAttribute('title')).toBe('needs the operator role');
  } finally {
    await viewer.close();
  }

  const page = await browser.newPage();
  try {
    await signIn(page, OPERATOR, id);
    await page.getByRole('button', { name: 'Undo deployment', disabled: false }).click();
    const dialog = page.locator('dialog#undo-dialog');
    await dialog.waitFor();
    // No fleet file, and the API knows none: the reason, and nothing started.
    await dialog.getByRole('button', { name: 'Show plan' }).click();
    await dialog.locator('#undo-intro', { hasText: 'Failed: fleet: required: the API knows no fleet file' }).waitFor({ timeout: 60_000 });
    // The operator picks the fleet file (its text, as read from disk).
    await dialog.locator('#undo-fleet-file').setInputFiles(s.fleetFile(onFailure));
    await waitFor('the fleet file in the box', async () => ((await dialog.locator('#undo-fleet').inputValue()) === readFileSync(s.fleetFile(onFailure), 'utf8') ? true : undefined), 10_000, 100);
    await dialog.getByRole('button', { name: 'Show plan' }).click();
    await dialog.locator('#undo-hosts li[data-host="u2"]').waitFor({ timeout: 120_000 });
    expect(await dialog.locator('#undo-intro').textContent()).toMatch(/^Deployment closed \S+ \(succeeded\); undo possible until \S+\. Merge: the merge [0-9a-f]{12} is still on the branch: it will be reverted\.$/);
    expect(await dialog.locator('#undo-hosts > li > span').allTextContents()).toEqual([`Roll back u2 from generation ${after.u2?.number} to generation ${before.u2?.number}`]);
    // What the undo undoes on u2: its closure back to the recorded generation, read on the host.
    expect(await dialog.locator('#undo-hosts li[data-host="u2"] ul.closure li').allTextContents()).toEqual(['+ nixos-system-u2-seed 42', '- nixos-system-u2-v2 ε']);
    const skipped = dialog.locator('#undo-skipped li[data-host="u1"][data-why="changed-since"]');
    expect(await skipped.textContent()).toContain(`u1: left alone: changed since: runs generation ${u1Since.number}`);
    expect(await dialog.locator('#undo-ok').isDisabled()).toBe(false);

    // Ticking u1 names it: a new plan (the one awaiting confirmation is cancelled first) with u1 in it.
    await dialog.getByLabel('undo u1 anyway').check();
    await dialog.locator('#undo-hosts li[data-host="u1"]').waitFor({ timeout: 120_000 });
    expect(await dialog.locator('#undo-hosts > li > span').allTextContents()).toEqual([
      `Roll back u2 from generation ${after.u2?.number} to generation ${before.u2?.number}`,
      `Roll back u1 from generation ${u1Since.number} to generation ${before.u1?.number} (named: changed since)`,
    ]);
    await dialog.getByRole('button', { name: 'Undo', exact: true }).click();
    await page.locator('#undo-result', { hasText: 'Done: reverted by' }).waitFor({ timeout: 180_000 });
    expect(await page.locator('#undo-result').textContent()).toMatch(/^Done: reverted by [0-9a-f]{12}; rolled back: u1, u2$|^Done: reverted by [0-9a-f]{12}; rolled back: u2, u1$/);
  } finally {
    await page.close();
  }

  for (const h of ['u1', 'u2'] as const) {
    expect(w.fleet.host(h).profileGeneration().storePath).toBe(before[h]?.storePath);
    expect(w.fleet.host(h).currentSystem()).toBe(before[h]?.storePath);
  }
  expect(after.u2?.storePath).not.toBe(before.u2?.storePath);
  expect(await revertCommits(w, mergeSha)).toHaveLength(1);
  expect(await w.github.readFile(w.owner, w.repo, w.branch, 'flake.lock')).toBe(fleetFlakeLock({ version: 'v1' }));
  // The audit trail: the operator (the token's identity) asked, cancelled the first plan by naming u1, and undid it.
  const trail = await waitFor('the undo in the audit log', async () => {
    const t = (await s.audit.list({ deploymentId: id })).filter((e) => e.action === 'undo');
    return t.some((e) => e.outcome.startsWith('undone')) ? t : undefined;
  }, 60_000, 250);
  expect(trail.map((e) => `${e.actor}: ${e.outcome.split(':')[0]}`)).toEqual(['olga: requested', 'olga: cancelled', 'olga: requested', 'olga: undone']);
  expect(trail.at(-1)?.hosts.slice().sort()).toEqual(['u1', 'u2']);
}, 600_000);
