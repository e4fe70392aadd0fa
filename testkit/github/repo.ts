/**
 * One bare repository driven by the git CLI: the object and ref operations the REST handlers need.
 */
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { git, gitRaw } from './git';
import type { CommitInfo } from './shapes';

export const ZERO_SHA = '0000000000000000000000000000000000000000';

export interface TreeEntry {
  path: string;
  mode: string;
  type: 'blob' | 'tree' | 'commit';
  sha: string;
  size?: number;
}

/** A create-tree entry: `sha: null` deletes, `content` writes a new blob. */
export interface TreeChange {
  path: string;
  mode?: string;
  type?: 'blob' | 'tree' | 'commit';
  sha?: string | null;
  content?: string;
}

export class TreeChangeError extends Error {}

export interface Signature {
  name: string;
  email: string;
  date?: string;
}

function parseSignature(line: string): { name: string; email: string; date: string } {
  const m = /^(.*) <(.*)> (\d+) ([+-]\d{4})$/.exec(line);
  if (!m) return { name: line, email: '', date: new Date(0).toISOString() };
  return { name: m[1] ?? '', email: m[2] ?? '', date: new Date(Number(m[3]) * 1000).toISOString().replace(/\.000Z$/, 'Z') };
}

export class BareRepo {
  constructor(
    readonly gitDir: string,
    private readonly tmpDir: string,
  ) {}

  static async init(gitDir: string, tmpDir: string, defaultBranch: string): Promise<BareRepo> {
    const r = await gitRaw(gitDir, ['init', '--bare', '--quiet', `--initial-branch=${defaultBranch}`, gitDir]);
    if (r.code !== 0) throw new Error(r.stderr);
    // http-backend serves it read-only; keep objects loose-friendly and gc quiet.
    await git(gitDir, ['config', 'gc.auto', '0']);
    await git(gitDir, ['config', 'http.receivepack', 'false']);
    return new BareRepo(gitDir, tmpDir);
  }

  /** Full sha of a commit, or undefined. */
  async resolveCommit(rev: string): Promise<string | undefined> {
    const r = await gitRaw(this.gitDir, ['rev-parse', '--verify', '--quiet', `${rev}^{commit}`]);
    return r.code === 0 ? r.stdout.trim() : undefined;
  }

  /** Full sha of a tree (from a tree or commit sha or a ref name), or undefined. */
  async resolveTree(rev: string): Promise<string | undefined> {
    const r = await gitRaw(this.gitDir, ['rev-parse', '--verify', '--quiet', `${rev}^{tree}`]);
    return r.code === 0 ? r.stdout.trim() : undefined;
  }

  async objectType(sha: string): Promise<string | undefined> {
    const r = await gitRaw(this.gitDir, ['cat-file', '-t', sha]);
    return r.code === 0 ? r.stdout.trim() : undefined;
  }

  /** Current sha of a full ref name (refs/heads/main), or undefined. */
  async refSha(ref: string): Promise<string | undefined> {
    const r = await gitRaw(this.gitDir, ['rev-parse', '--verify', '--quiet', ref]);
    return r.code === 0 ? r.stdout.trim() : undefined;
  }

  async commit(sha: string): Promise<CommitInfo | undefined> {
    const r = await gitRaw(this.gitDir, ['cat-file', 'commit', sha]);
    if (r.code !== 0) return undefined;
    const sep = r.stdout.indexOf('\n\n');
    const header = sep >= 0 ? r.stdout.slice(0, sep) : r.stdout;
    const message = sep >= 0 ? r.stdout.slice(sep + 2) : '';
    const info: CommitInfo = { sha, tree: '', parents: [], author: parseSignature(''), committer: parseSignature(''), message };
    for (const line of header.split('\n')) {
      const sp = line.indexOf(' ');
      const key = line.slice(0, sp);
      const value = line.slice(sp + 1);
      if (key === 'tree') info.tree = value;
      else if (key === 'parent') info.parents.push(value);
      else if (key === 'author') info.author = parseSignature(value);
      else if (key === 'committer') info.committer = parseSignature(value);
    }
    return info;
  }

  /** `ls-tree` of a tree-ish; recursive lists sub-trees too (as GitHub's recursive=1 does). */
  async lsTree(treeish: string, recursive: boolean): Promise<TreeEntry[]> {
    const args = ['ls-tree', '-l', '-z', ...(recursive ? ['-r', '-t'] : []), treeish];
    const out = await git(this.gitDir, args);
    const entries: TreeEntry[] = [];
    for (const rec of out.split('\0')) {
      if (!rec) continue;
      const tab = rec.indexOf('\t');
      const [mode, type, sha, size] = rec.slice(0, tab).split(/\s+/);
      const entry: TreeEntry = { path: rec.slice(tab + 1), mode: mode ?? '', type: type as TreeEntry['type'], sha: sha ?? '' };
      if (type === 'blob' && size !== undefined && size !== '-') entry.size = Number(size);
      entries.push(entry);
    }
    return entries;
  }

  async hashBlob(content: string | Buffer): Promise<string> {
    return git(this.gitDir, ['hash-object', '-w', '--stdin'], { input: content });
  }

  /**
   * Builds a tree with a temporary index: start from `baseTree` (or empty), apply the changes in
   * order, write-tree. Throws TreeChangeError for changes GitHub would refuse.
   */
  async buildTree(baseTree: string | undefined, changes: TreeChange[]): Promise<string> {
    const index = join(this.tmpDir, `index-${randomUUID()}`);
    const env = { GIT_INDEX_FILE: index };
    try {
      if (baseTree) await git(this.gitDir, ['read-tree', baseTree], { env });
      else await git(this.gitDir, ['read-tree', '--empty'], { env });
      for (const ch of changes) {
        const path = ch.path;
        if (!path || path.startsWith('/') || path.endsWith('/') || path.split('/').some((s) => s === '' || s === '.' || s === '..' || s === '.git')) {
          throw new TreeChangeError(`tree.path contains a malformed path component: ${JSON.stringify(path)}`);
        }
        const existing = (await git(this.gitDir, ['ls-files', '-z', '--stage'], { env })).split('\0').filter(Boolean).map((l) => l.slice(l.indexOf('\t') + 1));
        const under = existing.filter((p) => p === path || p.startsWith(`${path}/`));
        if (ch.sha === null) {
          if (under.length === 0) throw new TreeChangeError(`GitRPC::BadObjectState: cannot delete ${path}: not in the tree`);
          const lines = under.map((p) => `0 ${ZERO_SHA}\t${p}\n`).join('');
          await git(this.gitDir, ['update-index', '--index-info'], { env, input: lines });
          continue;
        }
        let sha = ch.sha;
        const type = ch.type ?? 'blob';
        if (sha === undefined) {
          if (ch.content === undefined) throw new TreeChangeError(`tree entry ${path} needs sha or content`);
          sha = await this.hashBlob(ch.content);
        } else {
          const actual = await this.objectType(sha);
          if (actual !== type && type !== 'commit') throw new TreeChangeError(`tree.sha ${sha} is not a valid ${type}`);
        }
        if (under.length > 0) {
          await git(this.gitDir, ['update-index', '--index-info'], { env, input: under.map((p) => `0 ${ZERO_SHA}\t${p}\n`).join('') });
        }
        if (type === 'tree') {
          await git(this.gitDir, ['read-tree', `--prefix=${path}/`, sha], { env });
        } else {
          const mode = ch.mode ?? (type === 'commit' ? '160000' : '100644');
          await git(this.gitDir, ['update-index', '--add', '--cacheinfo', `${mode},${sha},${path}`], { env });
        }
      }
      return await git(this.gitDir, ['write-tree'], { env });
    } finally {
      await rm(index, { force: true });
    }
  }

  async commitTree(tree: string, parents: string[], message: string, author?: Signature, committer?: Signature): Promise<string> {
    const env: Record<string, string> = {};
    if (author) {
      env.GIT_AUTHOR_NAME = author.name;
      env.GIT_AUTHOR_EMAIL = author.email;
      if (author.date) env.GIT_AUTHOR_DATE = author.date;
    }
    const c = committer;
    if (c) {
      env.GIT_COMMITTER_NAME = c.name;
      env.GIT_COMMITTER_EMAIL = c.email;
      if (c.date) env.GIT_COMMITTER_DATE = c.date;
    }
    return git(this.gitDir, ['commit-tree', tree, ...parents.flatMap((p) => ['-p', p]), '-F', '-'], { env, input: message });
  }

  /** Compare-and-swap: moves `ref` to `next` only if it still points at `expected` (ZERO_SHA = must not exist). */
  async casRef(ref: string, next: string, expected: string): Promise<boolean> {
    const r = await gitRaw(this.gitDir, ['update-ref', ref, next, expected]);
    return r.code === 0;
  }

  async isAncestor(ancestor: string, descendant: string): Promise<boolean> {
    const r = await gitRaw(this.gitDir, ['merge-base', '--is-ancestor', ancestor, descendant]);
    return r.code === 0;
  }

  /** `git merge-tree --write-tree`: the merged tree, or undefined on conflicts. */
  async mergeTrees(ours: string, theirs: string): Promise<string | undefined> {
    const r = await gitRaw(this.gitDir, ['merge-tree', '--write-tree', '--no-messages', ours, theirs]);
    if (r.code === 0) return r.stdout.split('\n')[0]?.trim();
    if (r.code === 1) return undefined;
    throw new Error(`git merge-tree failed: ${r.stderr}`);
  }

  async countCommits(range: string): Promise<number> {
    return Number(await git(this.gitDir, ['rev-list', '--count', range]));
  }

  async revList(args: string[]): Promise<string[]> {
    const out = await git(this.gitDir, ['rev-list', ...args]);
    return out.split('\n').filter(Boolean);
  }

  async readBlob(rev: string, path: string): Promise<string | undefined> {
    const r = await gitRaw(this.gitDir, ['cat-file', 'blob', `${rev}:${path}`]);
    return r.code === 0 ? r.stdout : undefined;
  }

  /** Applies the change a commit made (relative to its first parent) onto `onto`'s tree; undefined on conflict. */
  async replayTree(commit: string, onto: string): Promise<string | undefined> {
    const index = join(this.tmpDir, `index-${randomUUID()}`);
    const env = { GIT_INDEX_FILE: index };
    try {
      await git(this.gitDir, ['read-tree', onto], { env });
      const info = await this.commit(commit);
      const parent = info?.parents[0];
      const diff = parent
        ? await gitRaw(this.gitDir, ['diff-tree', '-p', '--binary', '--full-index', parent, commit])
        : await gitRaw(this.gitDir, ['diff-tree', '-p', '--binary', '--full-index', '--root', commit]);
      if (diff.code !== 0) return undefined;
      if (diff.stdout.trim() === '') return await git(this.gitDir, ['write-tree'], { env });
      const applied = await gitRaw(this.gitDir, ['apply', '--cached', '-'], { env, input: diff.stdout });
      if (applied.code !== 0) return undefined;
      return await git(this.gitDir, ['write-tree'], { env });
    } finally {
      await rm(index, { force: true });
    }
  }
}
