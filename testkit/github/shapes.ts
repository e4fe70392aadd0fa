/**
 * Builders for GitHub-shaped JSON replies (validated against the OpenAPI schemas by the server).
 */

export interface RepoMeta {
  id: number;
  owner: string;
  name: string;
  defaultBranch: string;
  protectedBranches: string[];
  /** Branches whose updates must consist of verified (GitHub-signed) commits. */
  signedBranches?: string[];
  /** Commits GitHub signed: made through the API by an app without a custom author or committer, and merges. */
  signedCommits?: string[];
  createdAt: string;
  nextNumber: number;
  pulls: PullRecord[];
  /** The repository's merge settings (GitHub's allow_merge_commit, …); absent = allowed, GitHub's default. */
  allowMergeCommit?: boolean;
  allowSquashMerge?: boolean;
  allowRebaseMerge?: boolean;
}

export interface PullRecord {
  number: number;
  id: number;
  title: string;
  body: string | null;
  user: string;
  state: 'open' | 'closed';
  headRef: string;
  baseRef: string;
  /** Head and base shas frozen when the pull request was merged or closed. */
  headSha?: string;
  baseSha?: string;
  merged: boolean;
  mergedAt: string | null;
  mergeCommitSha: string | null;
  mergeMethod?: 'merge' | 'squash' | 'rebase';
  mergedBy: string | null;
  commits: number;
  createdAt: string;
  updatedAt: string;
  closedAt: string | null;
  /** Label names on the pull request. */
  labels?: string[];
}

export interface CommitInfo {
  sha: string;
  tree: string;
  parents: string[];
  author: { name: string; email: string; date: string };
  committer: { name: string; email: string; date: string };
  message: string;
}

export function nodeId(kind: string, id: string | number): string {
  return Buffer.from(`${kind}:${id}`).toString('base64');
}

function userId(login: string): number {
  let h = 0;
  for (const c of login) h = (h * 31 + c.charCodeAt(0)) % 100_000_000;
  return h + 1;
}

export function simpleUser(base: string, login: string): Record<string, unknown> {
  const enc = encodeURIComponent(login);
  const u = `${base}/users/${enc}`;
  return {
    login,
    id: userId(login),
    node_id: nodeId('User', login),
    avatar_url: `${base}/avatars/${enc}`,
    gravatar_id: '',
    url: u,
    html_url: `${base}/${enc}`,
    followers_url: `${u}/followers`,
    following_url: `${u}/following{/other_user}`,
    gists_url: `${u}/gists{/gist_id}`,
    starred_url: `${u}/starred{/owner}{/repo}`,
    subscriptions_url: `${u}/subscriptions`,
    organizations_url: `${u}/orgs`,
    repos_url: `${u}/repos`,
    events_url: `${u}/events{/privacy}`,
    received_events_url: `${u}/received_events`,
    type: login.endsWith('[bot]') ? 'Bot' : 'User',
    site_admin: false,
    user_view_type: 'public',
  };
}

export function repository(base: string, meta: RepoMeta): Record<string, unknown> {
  const full = `${meta.owner}/${meta.name}`;
  const api = `${base}/repos/${full}`;
  return {
    id: meta.id,
    node_id: nodeId('Repository', meta.id),
    name: meta.name,
    full_name: full,
    owner: simpleUser(base, meta.owner),
    private: false,
    html_url: `${base}/${full}`,
    description: null,
    fork: false,
    url: api,
    archive_url: `${api}/{archive_format}{/ref}`,
    assignees_url: `${api}/assignees{/user}`,
    blobs_url: `${api}/git/blobs{/sha}`,
    branches_url: `${api}/branches{/branch}`,
    collaborators_url: `${api}/collaborators{/collaborator}`,
    comments_url: `${api}/comments{/number}`,
    commits_url: `${api}/commits{/sha}`,
    compare_url: `${api}/compare/{base}...{head}`,
    contents_url: `${api}/contents/{+path}`,
    contributors_url: `${api}/contributors`,
    deployments_url: `${api}/deployments`,
    downloads_url: `${api}/downloads`,
    events_url: `${api}/events`,
    forks_url: `${api}/forks`,
    git_commits_url: `${api}/git/commits{/sha}`,
    git_refs_url: `${api}/git/refs{/sha}`,
    git_tags_url: `${api}/git/tags{/sha}`,
    git_url: `git://127.0.0.1/${full}.git`,
    issue_comment_url: `${api}/issues/comments{/number}`,
    issue_events_url: `${api}/issues/events{/number}`,
    issues_url: `${api}/issues{/number}`,
    keys_url: `${api}/keys{/key_id}`,
    labels_url: `${api}/labels{/name}`,
    languages_url: `${api}/languages`,
    merges_url: `${api}/merges`,
    milestones_url: `${api}/milestones{/number}`,
    notifications_url: `${api}/notifications{?since,all,participating}`,
    pulls_url: `${api}/pulls{/number}`,
    releases_url: `${api}/releases{/id}`,
    ssh_url: `git@127.0.0.1:${full}.git`,
    stargazers_url: `${api}/stargazers`,
    statuses_url: `${api}/statuses/{sha}`,
    subscribers_url: `${api}/subscribers`,
    subscription_url: `${api}/subscription`,
    tags_url: `${api}/tags`,
    teams_url: `${api}/teams`,
    trees_url: `${api}/git/trees{/sha}`,
    clone_url: `${base}/git/${full}.git`,
    mirror_url: null,
    hooks_url: `${api}/hooks`,
    svn_url: `${base}/${full}`,
    homepage: null,
    language: 'Nix',
    forks_count: 0,
    forks: 0,
    stargazers_count: 0,
    watchers_count: 0,
    watchers: 0,
    size: 1,
    default_branch: meta.defaultBranch,
    open_issues_count: meta.pulls.filter((p) => p.state === 'open').length,
    open_issues: meta.pulls.filter((p) => p.state === 'open').length,
    is_template: false,
    topics: [],
    has_issues: true,
    has_projects: false,
    has_wiki: false,
    has_pages: false,
    has_downloads: true,
    has_discussions: false,
    archived: false,
    disabled: false,
    visibility: 'public',
    pushed_at: meta.createdAt,
    created_at: meta.createdAt,
    updated_at: meta.createdAt,
    allow_forking: true,
    web_commit_signoff_required: false,
    license: null,
  };
}

/** repos/get ("full-repository"): the repository with its merge settings, as a caller with push access sees it. */
export function fullRepository(base: string, meta: RepoMeta): Record<string, unknown> {
  return {
    ...repository(base, meta),
    network_count: 0,
    subscribers_count: 0,
    permissions: { admin: false, maintain: false, push: true, triage: true, pull: true },
    allow_merge_commit: meta.allowMergeCommit ?? true,
    allow_squash_merge: meta.allowSquashMerge ?? true,
    allow_rebase_merge: meta.allowRebaseMerge ?? true,
    allow_auto_merge: false,
    delete_branch_on_merge: false,
    allow_update_branch: false,
    use_squash_pr_title_as_default: false,
  };
}

/** One entry of repos/compare-commits' `files` ("diff-entry"). */
export function diffEntry(base: string, meta: RepoMeta, head: string, f: { filename: string; status: string; sha: string; additions: number; deletions: number; previousFilename?: string }): Record<string, unknown> {
  const api = `${base}/repos/${meta.owner}/${meta.name}`;
  const path = f.filename.split('/').map(encodeURIComponent).join('/');
  return {
    sha: f.sha,
    filename: f.filename,
    status: f.status,
    additions: f.additions,
    deletions: f.deletions,
    changes: f.additions + f.deletions,
    blob_url: `${base}/${meta.owner}/${meta.name}/blob/${head}/${path}`,
    raw_url: `${base}/${meta.owner}/${meta.name}/raw/${head}/${path}`,
    contents_url: `${api}/contents/${path}?ref=${head}`,
    ...(f.previousFilename ? { previous_filename: f.previousFilename } : {}),
  };
}

export interface PullLive {
  headSha: string;
  baseSha: string;
  mergeable: boolean | null;
  /** Commits between base and head (merge commits included); frozen at the merge. */
  commits: number;
}

function branchRef(base: string, meta: RepoMeta, ref: string, sha: string): Record<string, unknown> {
  return { label: `${meta.owner}:${ref}`, ref, sha, user: simpleUser(base, meta.owner), repo: repository(base, meta) };
}

/** A label as pulls and webhook payloads carry it. */
export function label(base: string, meta: RepoMeta, name: string): Record<string, unknown> {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) % 1_000_000;
  return {
    id: h + 1,
    node_id: nodeId('Label', `${meta.id}:${name}`),
    url: `${base}/repos/${meta.owner}/${meta.name}/labels/${encodeURIComponent(name)}`,
    name,
    description: null,
    color: 'ededed',
    default: false,
  };
}

/** The shape shared by pulls/list (pull-request-simple) and pulls/get (pull-request). */
export function pullRequestSimple(base: string, meta: RepoMeta, pr: PullRecord, live: PullLive): Record<string, unknown> {
  const full = `${meta.owner}/${meta.name}`;
  const api = `${base}/repos/${full}`;
  const html = `${base}/${full}/pull/${pr.number}`;
  return {
    url: `${api}/pulls/${pr.number}`,
    id: pr.id,
    node_id: nodeId('PullRequest', pr.id),
    html_url: html,
    diff_url: `${html}.diff`,
    patch_url: `${html}.patch`,
    issue_url: `${api}/issues/${pr.number}`,
    commits_url: `${api}/pulls/${pr.number}/commits`,
    review_comments_url: `${api}/pulls/${pr.number}/comments`,
    review_comment_url: `${api}/pulls/comments{/number}`,
    comments_url: `${api}/issues/${pr.number}/comments`,
    statuses_url: `${api}/statuses/${live.headSha}`,
    number: pr.number,
    state: pr.state,
    locked: false,
    title: pr.title,
    user: simpleUser(base, pr.user),
    body: pr.body,
    labels: (pr.labels ?? []).map((name) => label(base, meta, name)),
    milestone: null,
    active_lock_reason: null,
    created_at: pr.createdAt,
    updated_at: pr.updatedAt,
    closed_at: pr.closedAt,
    merged_at: pr.mergedAt,
    merge_commit_sha: pr.mergeCommitSha,
    assignee: null,
    assignees: [],
    requested_reviewers: [],
    requested_teams: [],
    head: branchRef(base, meta, pr.headRef, live.headSha),
    base: branchRef(base, meta, pr.baseRef, live.baseSha),
    _links: {
      self: { href: `${api}/pulls/${pr.number}` },
      html: { href: html },
      issue: { href: `${api}/issues/${pr.number}` },
      comments: { href: `${api}/issues/${pr.number}/comments` },
      review_comments: { href: `${api}/pulls/${pr.number}/comments` },
      review_comment: { href: `${api}/pulls/comments{/number}` },
      commits: { href: `${api}/pulls/${pr.number}/commits` },
      statuses: { href: `${api}/statuses/${live.headSha}` },
    },
    author_association: 'OWNER',
    auto_merge: null,
    draft: false,
  };
}

export function pullRequest(base: string, meta: RepoMeta, pr: PullRecord, live: PullLive): Record<string, unknown> {
  return {
    ...pullRequestSimple(base, meta, pr, live),
    merged: pr.merged,
    mergeable: pr.state === 'open' ? live.mergeable : null,
    rebaseable: pr.state === 'open' ? live.mergeable : null,
    mergeable_state: pr.state === 'open' ? (live.mergeable === false ? 'dirty' : 'clean') : 'unknown',
    merged_by: pr.mergedBy ? simpleUser(base, pr.mergedBy) : null,
    comments: 0,
    review_comments: 0,
    maintainer_can_modify: false,
    commits: live.commits,
    additions: 0,
    deletions: 0,
    changed_files: 0,
  };
}

/**
 * The commit's `verification`. GitHub signs commits it creates itself (an app's API commit without a
 * custom author and committer, merges); the stand-in records which, without a real signature.
 */
function verification(meta: RepoMeta, sha: string): Record<string, unknown> {
  return meta.signedCommits?.includes(sha)
    ? { verified: true, reason: 'valid', signature: null, payload: null, verified_at: null }
    : { verified: false, reason: 'unsigned', signature: null, payload: null, verified_at: null };
}

export function gitCommit(base: string, meta: RepoMeta, c: CommitInfo): Record<string, unknown> {
  const api = `${base}/repos/${meta.owner}/${meta.name}`;
  return {
    sha: c.sha,
    node_id: nodeId('Commit', c.sha),
    url: `${api}/git/commits/${c.sha}`,
    html_url: `${base}/${meta.owner}/${meta.name}/commit/${c.sha}`,
    author: c.author,
    committer: c.committer,
    tree: { sha: c.tree, url: `${api}/git/trees/${c.tree}` },
    message: c.message,
    parents: c.parents.map((p) => ({ sha: p, url: `${api}/git/commits/${p}`, html_url: `${base}/${meta.owner}/${meta.name}/commit/${p}` })),
    verification: verification(meta, c.sha),
  };
}

/** repos/list-commits item ("commit" schema). */
export function listedCommit(base: string, meta: RepoMeta, c: CommitInfo): Record<string, unknown> {
  const api = `${base}/repos/${meta.owner}/${meta.name}`;
  return {
    url: `${api}/commits/${c.sha}`,
    sha: c.sha,
    node_id: nodeId('Commit', c.sha),
    html_url: `${base}/${meta.owner}/${meta.name}/commit/${c.sha}`,
    comments_url: `${api}/commits/${c.sha}/comments`,
    commit: {
      url: `${api}/git/commits/${c.sha}`,
      author: c.author,
      committer: c.committer,
      message: c.message,
      comment_count: 0,
      tree: { sha: c.tree, url: `${api}/git/trees/${c.tree}` },
      verification: verification(meta, c.sha),
    },
    author: null,
    committer: null,
    parents: c.parents.map((p) => ({ sha: p, url: `${api}/commits/${p}`, html_url: `${base}/${meta.owner}/${meta.name}/commit/${p}` })),
  };
}

export function gitRef(base: string, meta: RepoMeta, ref: string, sha: string): Record<string, unknown> {
  const api = `${base}/repos/${meta.owner}/${meta.name}`;
  return {
    ref,
    node_id: nodeId('Ref', `${meta.id}:${ref}`),
    url: `${api}/git/${ref}`,
    object: { type: 'commit', sha, url: `${api}/git/commits/${sha}` },
  };
}
