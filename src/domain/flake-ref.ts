/**
 * The flake reference template of a fleet file, made ready for the workflow: `{branch}` is filled in,
 * and a `git+…` reference that pins `rev=` without naming a `ref=` gets `ref=<branch>`. Nix (2.8 and
 * others) fetching `git+https:`/`git+file:` with only `?rev=` fetches the branch `master`, so on a
 * repository whose branch is `main` every host's build would fail with "couldn't find remote ref".
 * `{owner}`, `{repo}` and `{sha}` stay for the workflow to fill in once the merge commit is known.
 */
export function pinFlakeRefTemplate(template: string, branch: string): string {
  const ref = encodeURIComponent(branch).replace(/%2F/g, '/');
  const filled = template.replace(/\{branch\}/g, ref);
  if (!filled.startsWith('git+')) return filled;
  const q = filled.indexOf('?');
  if (q < 0) return filled;
  const params = filled.slice(q + 1).split('&');
  if (params.some((p) => p.startsWith('ref='))) return filled;
  if (!params.some((p) => p.startsWith('rev='))) return filled;
  return `${filled.slice(0, q + 1)}ref=${ref}&${filled.slice(q + 1)}`;
}

/**
 * The template filled in: `{owner}`, `{repo}` and (when known) `{sha}`, every occurrence; `{branch}`
 * when given. The one place templates are filled (the workflow, the dry run, the fleet file's check,
 * the benchmark).
 */
export function fillFlakeRef(template: string, v: { owner: string; repo: string; sha?: string; branch?: string }): string {
  let s = template.replace(/\{owner\}/g, v.owner).replace(/\{repo\}/g, v.repo);
  if (v.sha !== undefined) s = s.replace(/\{sha\}/g, v.sha);
  if (v.branch !== undefined) s = s.replace(/\{branch\}/g, v.branch);
  return s;
}
