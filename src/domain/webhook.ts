/**
 * Which GitHub webhook deliveries start a deployment (issue 17: start from GitHub). Pure: the API
 * verifies the signature and the delivery id first, then asks this, then checks that the pull
 * request changes flake.lock (which needs GitHub) and starts the deployment.
 */

/** What a fleet file says about starting from GitHub (its repository and `autoDeploy`). */
export interface AutoDeployFleet {
  owner: string;
  name: string;
  branch: string;
  autoDeploy?: { onApproval: boolean; label?: string };
}

/** The parts of a `pull_request` or `pull_request_review` payload the decision reads. */
export interface WebhookPayload {
  action?: unknown;
  repository?: { full_name?: unknown };
  pull_request?: {
    number?: unknown;
    state?: unknown;
    draft?: unknown;
    merged?: unknown;
    base?: { ref?: unknown };
    head?: { sha?: unknown };
    labels?: Array<{ name?: unknown }>;
  };
  review?: { state?: unknown; commit_id?: unknown; user?: { login?: unknown } };
  sender?: { login?: unknown };
}

export type WebhookDecision =
  | { kind: 'ignore'; reason: string }
  | { kind: 'deploy'; fleet: number; pullRequest: number; headSha: string; trigger: 'approval' | 'label'; actor: string };

const LABEL_ACTIONS = new Set(['opened', 'reopened', 'labeled', 'synchronize', 'ready_for_review']);
const SHA = /^[0-9a-f]{40}$/;

/**
 * `event` is the X-GitHub-Event header. A pull request starts its deployment when it is open, not a
 * draft, into the fleet's branch, and either approved at its current head (a `pull_request_review`
 * `submitted` with state `approved`, when the fleet allows onApproval) or carrying the fleet's label.
 */
export function decideWebhook(event: string, payload: WebhookPayload, fleets: readonly AutoDeployFleet[]): WebhookDecision {
  if (event === 'ping') return { kind: 'ignore', reason: 'ping' };
  if (event !== 'pull_request' && event !== 'pull_request_review') return { kind: 'ignore', reason: `event ${event} is not handled` };
  const full = typeof payload.repository?.full_name === 'string' ? payload.repository.full_name.toLowerCase() : '';
  const pr = payload.pull_request;
  const number = pr?.number;
  const headSha = pr?.head?.sha;
  if (typeof number !== 'number' || !Number.isSafeInteger(number) || number < 1 || typeof headSha !== 'string' || !SHA.test(headSha)) {
    return { kind: 'ignore', reason: 'no pull request in the payload' };
  }
  const base = pr?.base?.ref;
  const index = fleets.findIndex((f) => `${f.owner}/${f.name}`.toLowerCase() === full && f.branch === base && f.autoDeploy !== undefined);
  const fleet = fleets[index];
  if (!fleet?.autoDeploy) return { kind: 'ignore', reason: `no fleet with autoDeploy for ${full || '?'}@${typeof base === 'string' ? base : '?'}` };
  if (pr?.state !== 'open' || pr.merged === true) return { kind: 'ignore', reason: `pull request #${number} is not open` };
  if (pr.draft === true) return { kind: 'ignore', reason: `pull request #${number} is a draft` };
  const senderLogin = typeof payload.sender?.login === 'string' ? payload.sender.login : 'unknown';
  if (event === 'pull_request_review') {
    const review = payload.review;
    if (payload.action !== 'submitted' || review?.state !== 'approved') return { kind: 'ignore', reason: 'not an approving review' };
    if (!fleet.autoDeploy.onApproval) return { kind: 'ignore', reason: 'the fleet does not deploy on approval (autoDeploy.onApproval)' };
    // An approval of an older head approves nothing that would be merged now.
    if (review.commit_id !== headSha) return { kind: 'ignore', reason: `the approval is for ${String(review.commit_id)}, not the head ${headSha}` };
    const by = typeof review.user?.login === 'string' ? review.user.login : senderLogin;
    return { kind: 'deploy', fleet: index, pullRequest: number, headSha, trigger: 'approval', actor: `github:${by}` };
  }
  const label = fleet.autoDeploy.label;
  if (typeof payload.action !== 'string' || !LABEL_ACTIONS.has(payload.action)) return { kind: 'ignore', reason: `pull_request ${String(payload.action)} is not handled` };
  if (label === undefined) return { kind: 'ignore', reason: 'the fleet sets no autoDeploy.label' };
  if (!(pr.labels ?? []).some((l) => l.name === label)) return { kind: 'ignore', reason: `pull request #${number} does not carry the label ${label}` };
  return { kind: 'deploy', fleet: index, pullRequest: number, headSha, trigger: 'label', actor: `github:${senderLogin}` };
}
