/**
 * Issue 17 item 1, start from GitHub, on the real stack: the GitHub stand-in sends real signed
 * deliveries (X-Hub-Signature-256, X-GitHub-Delivery) to the API's webhook route; an approved (or
 * labelled) flake.lock update starts its deployment exactly once however often it is redelivered;
 * unsigned, badly signed, replayed and oversized deliveries are refused before anything is parsed,
 * and every delivery is counted in nixfleet_api_webhook_deliveries_total.
 */
import { createHmac, randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { decideWebhook, type AutoDeployFleet } from '../../src/domain/webhook';
import { FleetFile, parseWith } from '../../src/schemas/fleet.schema';
import { WEBHOOK_ROUTE } from '../../src/api/webhook';
import { startStack, VIEWER, type Stack } from './stack';

const SECRET = 'whsec-standin-0123456789abcdef';
const LABEL = 'deploy-now';
let s: Stack;

beforeAll(async () => {
  s = await startStack('webhook', [{ name: 'w1', kind: 'nixos', generations: [20, 21] }], {
    metrics: true,
    webhook: { secret: SECRET, fleets: (world) => [parseWith(FleetFile, { ...world.fleetFile(), autoDeploy: { label: LABEL } })] },
  });
  s.world.github.addWebhook(s.world.owner, s.world.repo, { url: `${s.base}${WEBHOOK_ROUTE}`, secret: SECRET });
});
afterAll(async () => {
  await s?.stop();
});

/** The webhook counter's value for one result. */
async function counted(result: string): Promise<number> {
  const res = await fetch(`${s.base}/metrics`, { headers: { authorization: `Bearer ${VIEWER}` } });
  const line = (await res.text()).split('\n').find((l) => l.startsWith(`nixfleet_api_webhook_deliveries_total{result="${result}"}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** A delivery sent by hand (not the stand-in): to check the refusals. */
async function send(body: string | Buffer, headers: Record<string, string>): Promise<{ status: number; body: { result?: string; message?: string } }> {
  const res = await fetch(`${s.base}${WEBHOOK_ROUTE}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as { result?: string }) : {} };
}
const sign = (body: string | Buffer, secret = SECRET): string => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

async function runsOf(id: string): Promise<number> {
  let n = 0;
  for await (const _ of s.t.client.workflow.list({ query: `WorkflowId = '${id}'` })) n += 1;
  return n;
}

test('an approved flake.lock update starts its deployment once: redelivered, approved again, it does not start again', async () => {
  const startedBefore = await counted('started');
  const pr = await s.world.openLockUpdate('v2');
  const opened = s.world.github.deliveries.filter((d) => d.event === 'pull_request' && d.action === 'opened').pop();
  // Opened: a signed delivery, accepted and ignored (not approved, no label).
  expect(opened?.status).toBe(200);

  await s.world.github.submitReview(s.world.owner, s.world.repo, pr.number, { user: 'alice', state: 'APPROVED' });
  const approval = s.world.github.deliveries.filter((d) => d.event === 'pull_request_review').pop();
  expect(approval?.status).toBe(202);
  expect(await counted('started')).toBe(startedBefore + 1);

  // GitHub's redelivery keeps the GUID: refused as a replay.
  const again = await s.world.github.redeliver(approval?.guid as string);
  expect(again).toMatchObject({ status: 409, attempts: 2 });
  // A second approval (a new delivery) while it runs: accepted, nothing started.
  await s.world.github.submitReview(s.world.owner, s.world.repo, pr.number, { user: 'bob', state: 'APPROVED' });
  expect(s.world.github.deliveries.filter((d) => d.event === 'pull_request_review').pop()?.status).toBe(200);

  const { body } = await s.call<{ deployments: Array<{ deploymentId: string }> }>('GET', '/api/deployments', undefined, VIEWER);
  const id = body.deployments.map((d) => d.deploymentId).find((x) => x.endsWith(`.pr${pr.number}`)) as string;
  expect(id).toBeDefined();
  const closed = await s.waitPhase(id, ['succeeded', 'closed', 'awaiting-operator']);
  expect({ phase: closed.phase, outcome: closed.outcome, failure: closed.failure }).toEqual({ phase: 'succeeded', outcome: 'succeeded', failure: undefined });
  expect(closed.audit[0]).toMatchObject({ actor: 'github:alice', action: 'deploy' });
  expect(await runsOf(id)).toBe(1);
  // After it closed, a late delivery that still sees the pull request open and approved: Temporal
  // refuses to reuse the deployment's id (REJECT_DUPLICATE), so nothing starts again.
  const late = JSON.stringify({
    action: 'submitted',
    repository: { full_name: `${s.world.owner}/${s.world.repo}` },
    pull_request: { number: pr.number, state: 'open', draft: false, base: { ref: s.world.branch }, head: { sha: pr.headSha } },
    review: { state: 'approved', commit_id: pr.headSha, user: { login: 'carol' } },
  });
  expect(await send(late, { 'x-hub-signature-256': sign(late), 'x-github-event': 'pull_request_review', 'x-github-delivery': randomUUID() })).toMatchObject({ status: 200, body: { result: 'already-started' } });
  expect(await runsOf(id)).toBe(1);
  expect(await counted('started')).toBe(startedBefore + 1);
  expect(await counted('replayed')).toBeGreaterThanOrEqual(1);
  expect(await counted('already-started')).toBeGreaterThanOrEqual(1);
}, 300_000);

test('the fleet\'s label starts it too; an approval of an older head, or a pull request without flake.lock, does not', async () => {
  const pr = await s.world.openLockUpdate('v3');
  // A pull request that leaves flake.lock alone, approved: ignored after GitHub lists its files.
  const docs = await s.world.github.openPullRequest(s.world.owner, s.world.repo, { title: 'docs', base: s.world.branch, headBranch: 'docs-2', files: { 'README.md': '# more docs\n' } });
  const ignoredBefore = await counted('ignored');
  await s.world.github.submitReview(s.world.owner, s.world.repo, docs.number, { user: 'alice', state: 'APPROVED' });
  expect(s.world.github.deliveries.at(-1)?.status).toBe(200);
  expect(await counted('ignored')).toBe(ignoredBefore + 1);
  expect(await counted('started')).toBeGreaterThanOrEqual(1);
  const startedBefore = await counted('started');

  await s.world.github.addLabel(s.world.owner, s.world.repo, pr.number, LABEL);
  expect(s.world.github.deliveries.at(-1)).toMatchObject({ event: 'pull_request', action: 'labeled', status: 202 });
  expect(await counted('started')).toBe(startedBefore + 1);
  const { body } = await s.call<{ deployments: Array<{ deploymentId: string }> }>('GET', '/api/deployments', undefined, VIEWER);
  const id = body.deployments.map((d) => d.deploymentId).find((x) => x.endsWith(`.pr${pr.number}`)) as string;
  const closed = await s.waitPhase(id, ['succeeded', 'closed', 'awaiting-operator']);
  expect({ phase: closed.phase, outcome: closed.outcome, failure: closed.failure }).toEqual({ phase: 'succeeded', outcome: 'succeeded', failure: undefined });
}, 300_000);

test('unsigned, badly signed, replayed and oversized deliveries are refused before parsing, and counted', async () => {
  const before = { unsigned: await counted('unsigned'), bad: await counted('bad-signature'), replayed: await counted('replayed'), oversized: await counted('oversized') };
  const notJson = '{ this is not json';
  // Unsigned: refused as unsigned, not as bad JSON (nothing was parsed).
  expect(await send(notJson, { 'x-github-event': 'pull_request', 'x-github-delivery': randomUUID() })).toMatchObject({ status: 401, body: { result: 'unsigned' } });
  // Signed with another secret, or a tampered body, or a malformed header.
  expect((await send(notJson, { 'x-hub-signature-256': sign(notJson, 'another-secret-0123456789'), 'x-github-event': 'pull_request', 'x-github-delivery': randomUUID() })).body.result).toBe('bad-signature');
  expect((await send(`${notJson} `, { 'x-hub-signature-256': sign(notJson), 'x-github-event': 'pull_request', 'x-github-delivery': randomUUID() })).body.result).toBe('bad-signature');
  expect((await send(notJson, { 'x-hub-signature-256': 'sha256=zz', 'x-github-event': 'pull_request', 'x-github-delivery': randomUUID() })).body.result).toBe('bad-signature');
  // Signed: now it is parsed (and refused as not JSON); sent again with the same GUID, a replay.
  const guid = randomUUID();
  expect(await send(notJson, { 'x-hub-signature-256': sign(notJson), 'x-github-event': 'pull_request', 'x-github-delivery': guid })).toMatchObject({ status: 400, body: { result: 'invalid' } });
  expect(await send(notJson, { 'x-hub-signature-256': sign(notJson), 'x-github-event': 'pull_request', 'x-github-delivery': guid })).toMatchObject({ status: 409, body: { result: 'replayed' } });
  // Over 1 MiB, even correctly signed.
  const big = JSON.stringify({ action: 'opened', filler: 'x'.repeat(1024 * 1024) });
  expect(await send(big, { 'x-hub-signature-256': sign(big), 'x-github-event': 'pull_request', 'x-github-delivery': randomUUID() })).toMatchObject({ status: 413 });
  expect(await counted('unsigned')).toBe(before.unsigned + 1);
  expect(await counted('bad-signature')).toBe(before.bad + 3);
  expect(await counted('replayed')).toBe(before.replayed + 1);
  expect(await counted('oversized')).toBe(before.oversized + 1);
});

describe('decideWebhook (pure)', () => {
  const fleet: AutoDeployFleet = { owner: 'acme', name: 'fleet', branch: 'main', autoDeploy: { onApproval: true, label: 'deploy-now' } };
  const head = 'a'.repeat(40);
  const pr = (extra: Record<string, unknown> = {}) => ({ number: 7, state: 'open', draft: false, base: { ref: 'main' }, head: { sha: head }, labels: [], ...extra });
  const review = (state: string, commit = head) => ({ action: 'submitted', repository: { full_name: 'acme/fleet' }, pull_request: pr(), review: { state, commit_id: commit, user: { login: 'alice' } } });

  test('approval at the head deploys; other states, older heads, other branches, drafts, closed pull requests do not', () => {
    expect(decideWebhook('pull_request_review', review('approved'), [fleet])).toEqual({ kind: 'deploy', fleet: 0, pullRequest: 7, headSha: head, trigger: 'approval', actor: 'github:alice' });
    expect(decideWebhook('pull_request_review', review('commented'), [fleet]).kind).toBe('ignore');
    expect(decideWebhook('pull_request_review', review('approved', 'b'.repeat(40)), [fleet]).kind).toBe('ignore');
    expect(decideWebhook('pull_request_review', { ...review('approved'), pull_request: pr({ base: { ref: 'staging' } }) }, [fleet]).kind).toBe('ignore');
    expect(decideWebhook('pull_request_review', { ...review('approved'), pull_request: pr({ draft: true }) }, [fleet]).kind).toBe('ignore');
    expect(decideWebhook('pull_request_review', { ...review('approved'), pull_request: pr({ state: 'closed' }) }, [fleet]).kind).toBe('ignore');
    expect(decideWebhook('pull_request_review', review('approved'), [{ ...fleet, autoDeploy: { onApproval: false } }]).kind).toBe('ignore');
    expect(decideWebhook('pull_request_review', review('approved'), [{ ...fleet, autoDeploy: undefined }]).kind).toBe('ignore');
  });

  test('the label deploys on pull_request events when the fleet sets it', () => {
    const labelled = { action: 'labeled', repository: { full_name: 'ACME/fleet' }, pull_request: pr({ labels: [{ name: 'deploy-now' }] }), sender: { login: 'bob' } };
    expect(decideWebhook('pull_request', labelled, [fleet])).toMatchObject({ kind: 'deploy', trigger: 'label', actor: 'github:bob' });
    expect(decideWebhook('pull_request', { ...labelled, action: 'closed' }, [fleet]).kind).toBe('ignore');
    expect(decideWebhook('pull_request', labelled, [{ ...fleet, autoDeploy: { onApproval: true } }]).kind).toBe('ignore');
    expect(decideWebhook('push', labelled, [fleet]).kind).toBe('ignore');
  });

  test('property: any payload is decided without throwing, and deploys only an open pull request of a configured fleet', () => {
    fc.assert(
      fc.property(fc.constantFrom('pull_request', 'pull_request_review', 'push', 'ping'), fc.anything(), (event, payload) => {
        const d = decideWebhook(event, (typeof payload === 'object' && payload !== null ? payload : {}) as never, [fleet]);
        expect(d.kind).toBe('ignore');
      }),
    );
    fc.assert(
      fc.property(fc.constantFrom('approved', 'commented', 'changes_requested', 'dismissed'), fc.boolean(), fc.constantFrom('open', 'closed'), (state, atHead, prState) => {
        const p = { ...review(state, atHead ? head : 'c'.repeat(40)), pull_request: pr({ state: prState }) };
        const d = decideWebhook('pull_request_review', p, [fleet]);
        expect(d.kind === 'deploy').toBe(state === 'approved' && atHead && prState === 'open');
      }),
    );
  });
});
