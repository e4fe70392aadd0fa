// NixFleet dashboard: plain JavaScript, no build step. Talks to the API with the bearer token the user
// pasted once (kept in sessionStorage: this tab only, gone when it closes) and follows a deployment
// live over the WebSocket (/api/ws: first message {"type":"auth","token"}, then "subscribe").
'use strict';

(function () {
  const TOKEN_KEY = 'nixfleet.token';
  const $ = (id) => document.getElementById(id);
  const state = { token: sessionStorage.getItem(TOKEN_KEY), me: null, selected: null, summary: null, hostPage: null, pageLoading: false, pageDirty: false, preview: null, ws: null, wsRetry: 0, busy: false, cursor: null, closedAs: null, changes: {}, page: 1, filter: { state: '', wave: '' } };
  // At any fleet size the page holds a bounded number of elements: the host table a page at a time,
  // host lists in the panel and the dialog cut to their first names, the live feed to its latest lines.
  const PAGE_SIZE = 100;
  const LIST_NAMES = 20;
  const DIALOG_HOSTS = 50;
  const FEED_LINES = 200;
  const HOST_STATES = ['pending', 'switching', 'switched', 'failed', 'not-attempted', 'held', 'rolling-back', 'rolled-back', 'rollback-failed'];

  // ---- small helpers (text only: nothing from the API is ever parsed as HTML) ----
  function el(tag, opts, children) {
    const e = document.createElement(tag);
    if (opts) {
      if (opts.text !== undefined) e.textContent = String(opts.text);
      if (opts.cls) e.className = opts.cls;
      if (opts.title) e.title = opts.title;
      if (opts.colspan) e.colSpan = Number(opts.colspan);
      if (opts.data) for (const [k, v] of Object.entries(opts.data)) e.dataset[k] = v;
    }
    for (const c of children || []) e.append(c);
    return e;
  }
  const stateBadge = (s) => el('span', { text: s, cls: `state state-${s}` });
  // The display rules the CLI uses too (src/domain/presentation.ts, served as /dashboard/presentation.js).
  const { outcomeTone, generationTrail } = window.nixfleetPresentation;
  const outcomeBadge = (o) => el('span', { text: o, cls: `badge outcome tone-${outcomeTone(o)}`, data: { tone: outcomeTone(o) } });
  const names = (hosts) => (!hosts.length ? 'none' : hosts.length <= LIST_NAMES ? hosts.join(', ') : `${hosts.slice(0, LIST_NAMES).join(', ')} and ${hosts.length - LIST_NAMES} more`);
  const countText = (counts) => HOST_STATES.filter((st) => counts[st]).map((st) => `${counts[st]} ${st}`).join(' · ');
  // The feed keeps its latest lines only.
  function feed(li) {
    const events = $('events');
    events.append(li);
    while (events.childElementCount > FEED_LINES) events.firstElementChild.remove();
  }
  const short = (sha) => (sha ? sha.slice(0, 12) : '?');

  // What a host's closure change is (nix store diff-closures on the host), as src/domain/closure-diff.ts writes it.
  function bytes(n) {
    const sign = n > 0 ? '+' : n < 0 ? '-' : '';
    const a = Math.abs(n);
    if (a < 1024) return `${sign}${a} B`;
    if (a < 1024 * 1024) return `${sign}${(a / 1024).toFixed(1)} KiB`;
    if (a < 1024 * 1024 * 1024) return `${sign}${(a / 1024 / 1024).toFixed(1)} MiB`;
    return `${sign}${(a / 1024 / 1024 / 1024).toFixed(2)} GiB`;
  }
  const changeSummary = (d) => `${d.added} added, ${d.removed} removed, ${d.upgraded} upgraded; closure ${bytes(d.sizeDeltaBytes)}`;
  function changeLine(c) {
    const v = (xs) => xs.map((x) => x || 'ε').join(', ');
    const size = c.sizeDeltaBytes !== undefined ? ` (${bytes(c.sizeDeltaBytes)})` : '';
    if (c.kind === 'added') return `+ ${c.name} ${v(c.to)}${size}`.replace(/ +\(/, ' (');
    if (c.kind === 'removed') return `- ${c.name} ${v(c.from)}${size}`.replace(/ +\(/, ' (');
    if (c.kind === 'size') return `~ ${c.name}${size}`;
    return `~ ${c.name} ${v(c.from)} → ${v(c.to)}${size}`;
  }
  const hasChange = (h) => Boolean(h.before && (h.after || h.target) && (h.after ? h.after.storePath : h.target) !== h.before.storePath);
  function changesCell(h) {
    const key = `${state.selected}\u0000${h.name}`;
    const c = state.changes[key];
    if (!hasChange(h)) return el('td', { cls: 'changes muted small' });
    if (c && c.diff) {
      return el('td', { cls: 'changes small' }, [
        el('details', {}, [el('summary', { text: changeSummary(c.diff) }), el('ul', { cls: 'closure' }, c.diff.changes.map((x) => el('li', { text: changeLine(x) })))]),
      ]);
    }
    if (c && c.error) return el('td', { text: c.error, cls: 'changes small error' });
    const b = el('button', { text: c && c.loading ? 'reading…' : 'what changed', cls: 'link small' });
    b.disabled = Boolean(c && c.loading);
    b.addEventListener('click', () => void loadChanges(h.name));
    return el('td', { cls: 'changes small' }, [b]);
  }
  async function loadChanges(host) {
    const id = state.selected;
    const key = `${id}\u0000${host}`;
    state.changes[key] = { loading: true };
    if (state.hostPage) drawPage(state.hostPage);
    try {
      const r = await api('GET', `/api/deployments/${encodeURIComponent(id)}/hosts/${encodeURIComponent(host)}/changes`);
      state.changes[key] = { diff: r.diff };
    } catch (err) {
      state.changes[key] = { error: `changes: ${err.message}` };
    }
    if (state.hostPage && state.selected === id) drawPage(state.hostPage);
  }

  async function api(method, path, body) {
    const res = await fetch(path, {
      method,
      headers: { authorization: `Bearer ${state.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    const json = text ? JSON.parse(text) : undefined;
    if (res.status === 401) {
      signOut('Your token was refused; sign in again.');
      throw new Error('unauthorized');
    }
    if (!res.ok) throw new Error((json && json.message) || `HTTP ${res.status}`);
    return json;
  }

  // ---- session ----
  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    state.me = null;
    if (state.ws) state.ws.close();
    state.ws = null;
    $('app').hidden = true;
    $('session').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message || '';
  }

  async function signIn(token) {
    state.token = token;
    try {
      state.me = await api('GET', '/api/whoami');
    } catch (err) {
      signOut(`Sign-in failed: ${err.message === 'unauthorized' ? 'the API refused this token' : err.message}`);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $('login').hidden = true;
    $('app').hidden = false;
    $('session').hidden = false;
    $('identity').textContent = `${state.me.identity} (${state.me.role})`;
    connect();
    await refreshList();
    const fromHash = decodeURIComponent(location.hash.replace(/^#\/?/, ''));
    if (fromHash) await select(fromHash);
  }

  // A deployment named in the address bar (typed, pasted, back/forward) is opened.
  window.addEventListener('hashchange', () => {
    const id = decodeURIComponent(location.hash.replace(/^#\/?/, ''));
    if (state.me && id && id !== state.selected) void select(id);
  });

  // ---- the deployments list ----
  async function refreshList() {
    const { deployments } = await api('GET', '/api/deployments');
    const tbody = $('deployments').querySelector('tbody');
    tbody.replaceChildren(
      ...deployments.map((d) => {
        // Counts only (the list carries no host lists: bounded at any fleet size).
        const hosts = d.hostCounts ? countText(d.hostCounts.byState) : '';
        const when = d.startTime ? new Date(d.startTime).toLocaleString() : '';
        const tr = el('tr', { data: { id: d.deploymentId } }, [
          el('td', { cls: 'id-cell' }, [
            el('div', { text: d.deploymentId, cls: 'clip', title: d.deploymentId }),
            el('div', { text: `${d.repository || ''}${when ? ` · ${when}` : ''}`, cls: 'muted small clip', title: `${d.repository || ''} ${when}`.trim() }),
          ]),
          el('td', {}, [
            el('span', { text: d.phase || d.status.toLowerCase(), cls: 'badge' }),
            ...(d.outcome ? [el('br'), outcomeBadge(d.outcome)] : []),
          ]),
          el('td', { text: hosts, cls: 'small' }),
        ]);
        if (d.deploymentId === state.selected) tr.classList.add('selected');
        tr.addEventListener('click', () => void select(d.deploymentId));
        return tr;
      }),
    );
    $('list-empty').hidden = deployments.length > 0;
  }

  // ---- one deployment ----
  async function select(id) {
    if (state.selected && state.selected !== id) send({ type: 'unsubscribe', deploymentId: state.selected });
    state.selected = id;
    // The last transition shown (its seq): a reconnect asks for everything after it.
    state.cursor = null;
    state.closedAs = null;
    if (state.selected !== state.shownFilterFor) {
      state.page = 1;
      state.filter = { state: '', wave: '' };
      state.shownFilterFor = state.selected;
    }
    history.replaceState(null, '', `#/${encodeURIComponent(id)}`);
    for (const tr of $('deployments').querySelectorAll('tbody tr')) tr.classList.toggle('selected', tr.dataset.id === id);
    $('events').replaceChildren();
    $('action-result').textContent = '';
    if (state.controlAnswered !== id) {
      // Another deployment's control answer is not this one's.
      state.controlAnswered = null;
      $('c-result').textContent = '';
    }
    $('detail').hidden = false;
    $('detail-title').textContent = id;
    state.summary = null;
    state.hostPage = null;
    // The summary (bounded at any fleet size), then the page of hosts on screen: never the whole status.
    const s = await api('GET', `/api/deployments/${encodeURIComponent(id)}/summary`);
    if (id !== state.selected) return;
    drawSummary(s);
    // Everything after the state just drawn (its cursor), so no transition falls in between.
    if (typeof s.progressCursor === 'number') state.cursor = s.progressCursor;
    send(subscribeMessage(id));
    await loadPage();
    await refreshSide();
  }

  async function refreshSide() {
    const id = state.selected;
    if (!id) return;
    const [preview, audit] = await Promise.all([
      // The actions allowed now (the buttons), without the hosts: those are read when the dialog opens.
      api('GET', `/api/deployments/${encodeURIComponent(id)}/rollback-preview?limit=0`).catch(() => null),
      api('GET', `/api/deployments/${encodeURIComponent(id)}/audit`).catch(() => ({ audit: [] })),
      refreshControls(),
    ]);
    if (id !== state.selected) return;
    state.preview = preview;
    renderButtons();
    // The durable log is written just after the workflow records an entry: while it is behind the
    // trail the workflow reported, read it again shortly (a few times, then leave it).
    // The store holds every run of this deployment id (ids are reused once a run closed); the trail,
    // only the latest: compare the latest run's entries with it.
    const last = audit.audit.length ? audit.audit[audit.audit.length - 1].runId : undefined;
    const latestRun = audit.audit.filter((a) => a.runId === last);
    const behind = state.summary && state.summary.deploymentId === id && latestRun.length < state.summary.audit.entries;
    state.auditRetry = behind ? (state.auditRetry || 0) + 1 : 0;
    if (behind && state.auditRetry <= 20) setTimeout(() => void refreshSide().catch(() => undefined), 250 * Math.min(state.auditRetry, 8));
    // Run by run, each under a row naming its run (entries from before runs were keyed: no run).
    const rows = [];
    audit.audit.forEach((a, i) => {
      const prev = i > 0 ? audit.audit[i - 1] : undefined;
      if (!prev || prev.runId !== a.runId) {
        rows.push(el('tr', { cls: 'run', data: { run: a.runId || '' } }, [el('td', { text: a.runId ? `run ${a.runId}` : 'run not recorded (older entries)', cls: 'small muted', colspan: '6' })]));
      }
      rows.push(
        el('tr', { data: { run: a.runId || '' } }, [
          el('td', { text: new Date(a.at).toLocaleString(), cls: 'small' }),
          el('td', { text: a.actor }),
          el('td', { text: a.action }),
          el('td', { text: a.reverted ? (a.reverted.startsWith('http') ? a.reverted : short(a.reverted)) : '', cls: 'small' }),
          el('td', { text: a.hosts.length ? names(a.hosts) : '' }),
          el('td', { text: a.outcome, cls: 'small' }),
        ]),
      );
    });
    const unrecorded = state.summary && state.summary.deploymentId === id ? state.summary.audit.refusalsNotRecorded : undefined;
    if (unrecorded) rows.push(el('tr', { cls: 'refusals-not-recorded' }, [el('td', { text: `${unrecorded} more refused request${unrecorded === 1 ? '' : 's'}: past the trail's limit of refusals, answered but not recorded`, cls: 'small muted', colspan: '6' })]));
    $('audit').querySelector('tbody').replaceChildren(...rows);
  }

  // ---- operator controls: pause, resume, abort, skip a host, retry-failed, promote ----
  async function refreshControls() {
    const id = state.selected;
    if (!id) return;
    // Unreadable (the workflow is gone, say): every control off, saying why.
    const view = await api('GET', `/api/deployments/${encodeURIComponent(id)}/controls`).catch((err) => ({ error: err.message }));
    if (id !== state.selected) return;
    state.controls = view;
    renderControls();
  }

  function renderControls() {
    const v = state.controls;
    const s = state.summary;
    const operator = state.me && state.me.role === 'operator';
    // The answer to this operator's own control (a refusal above all) stays on screen, also once
    // nothing applies any more (the deployment moved on meanwhile) and the panel would otherwise go.
    const answered = state.controlAnswered === state.selected && $('c-result').textContent !== '';
    $('controls-panel').hidden = !answered && (!v || Boolean(v.error) || (v.allowed.length === 0 && !(s && s.controls)));
    if (!v || v.error) {
      for (const b of document.querySelectorAll('#controls-panel button[data-control]')) {
        b.disabled = true;
        b.title = (v && v.error) || 'does not apply now';
      }
      return;
    }
    const c = (s && s.controls) || v.state;
    const parts = [];
    if (c.paused) parts.push(`Paused by ${c.pausedBy || 'an operator'}: no further host starts until resumed.`);
    if (c.abortedBy) parts.push(`Aborted by ${c.abortedBy}.`);
    if (c.skipped && c.skipped.length) parts.push(`Skipped: ${c.skipped.join(', ')}.`);
    if (c.retries) parts.push(`Retries: ${c.retries}.`);
    $('c-state').textContent = parts.join(' ') || 'Running.';
    const select = $('c-skip-host');
    const keep = select.value;
    select.replaceChildren(...v.skippable.map((h) => el('option', { text: h, value: h })));
    if (v.skippable.includes(keep)) select.value = keep;
    for (const b of document.querySelectorAll('#controls-panel button[data-control]')) {
      const allowed = v.allowed.includes(b.dataset.control);
      b.disabled = state.busy || !operator || Boolean(state.closedAs) || !allowed;
      // Why a control does not apply now, as the deployment says (the reason a request for it would get).
      b.title = !operator ? 'needs the operator role' : allowed ? '' : (v.refused && v.refused[b.dataset.control]) || 'does not apply now';
    }
  }

  async function control(name) {
    const id = state.selected;
    if (name === 'abort' && !window.confirm('Abort this deployment? No further host starts; the hosts in flight finish, then it is compensated (revert, rollback) as its policy says.')) return;
    const body = { control: name, ...(name === 'skip' ? { host: $('c-skip-host').value } : {}) };
    state.controlAnswered = id;
    $('c-result').textContent = name === 'retry-failed' ? 'Retrying the failed hosts… (hosts update live below)' : 'Working…';
    try {
      const outcome = await api('POST', `/api/deployments/${encodeURIComponent(id)}/control`, body);
      if (id !== state.selected) return;
      $('c-result').textContent = outcome.summary;
      void reload();
    } catch (err) {
      $('c-result').textContent = `Refused: ${err.message}`;
    }
    await refreshSide();
  }

  /** Whether the host's new generation needs a reboot (kernel, initrd, modules) and whether it had one. */
  function rebootNote(h) {
    const r = h.reboot;
    if (!r || !r.needed) return '';
    if (r.rebooted) return 'rebooted onto it';
    return `reboot needed (${(r.differs || []).join(', ') || 'kernel'})`;
  }

  // ---- the deployment at any fleet size: its bounded summary (counts by state and wave, the failed
  // panel's groups) and the one page of hosts on screen, each read from the API. The live feed
  // (subscribed with view "summary") sends the summary and the hosts that changed; the page is read
  // again when it shows one of them (or a state filter may have gained or lost hosts). ----

  /** An action's answer (its whole status) or nothing: the summary and the page are read again. */
  function render(_statusFromAnAction) {
    void reload();
  }

  async function reload() {
    const id = state.selected;
    if (!id) return;
    const sum = await api('GET', `/api/deployments/${encodeURIComponent(id)}/summary`);
    if (id !== state.selected) return;
    drawSummary(sum);
    await loadPage();
  }

  /** Reads the page on screen; one read at a time, and one more after it when asked meanwhile. */
  async function loadPage() {
    const id = state.selected;
    if (!id) return;
    if (state.pageLoading) {
      state.pageDirty = true;
      return;
    }
    state.pageLoading = true;
    try {
      do {
        state.pageDirty = false;
        const q = new URLSearchParams({ page: String(state.page), pageSize: String(PAGE_SIZE) });
        if (state.filter.state) q.set('state', state.filter.state);
        if (state.filter.wave) q.set('wave', state.filter.wave);
        const p = await api('GET', `/api/deployments/${encodeURIComponent(id)}/hosts?${q.toString()}`);
        if (id !== state.selected) return;
        // A page past the end (the filter's hosts shrank): the last one.
        if (p.pages > 0 && p.page > p.pages) {
          state.page = p.pages;
          state.pageDirty = true;
          continue;
        }
        drawPage(p);
      } while (state.pageDirty && id === state.selected);
    } finally {
      state.pageLoading = false;
      // Asked for meanwhile by another deployment (the selection changed): its page now.
      if (state.pageDirty && id !== state.selected) {
        state.pageDirty = false;
        void loadPage();
      }
    }
  }

  /** Whether a live change to these hosts changes the page on screen. */
  function touchesPage(names) {
    if (state.filter.state) return true;
    const shown = state.hostPage ? new Set(state.hostPage.hosts.map((h) => h.name)) : new Set();
    return names.some((n) => shown.has(n));
  }

  function drawSummary(s) {
    const before = state.summary;
    state.summary = s;
    $('detail-phase').textContent = s.outcome ? `${s.phase} · ${s.outcome}` : s.phase;
    $('detail-phase').className = `badge tone-${outcomeTone(s.outcome)}`;
    $('detail-phase').dataset.tone = outcomeTone(s.outcome);
    const change = s.change.kind === 'pull-request' ? `pull request #${s.change.number}` : `commit ${short(s.change.sha)}`;
    $('detail-meta').textContent = `${s.repository.owner}/${s.repository.name}@${s.repository.branch} · ${change}${s.mergeSha ? ` · merge ${short(s.mergeSha)}` : ''}`;
    renderSummary(s);
    const waiting = !!(s.window && s.window.waiting);
    $('window-panel').hidden = !waiting;
    if (waiting) $('w-text').textContent = `${s.window.for} waits for its maintenance window (${s.window.windows}): the next opens ${s.window.opensAt}, closes ${s.window.closesAt}.`;
    const failed = !!(s.failedHost || (s.outcome && s.outcome.startsWith('failed')));
    $('failed-panel').hidden = !failed;
    if (failed) {
      const g = s.groups;
      // A group: its first names and how many more (the summary carries the first ones only).
      const group = (x, fallback) => (!x ? fallback : !x.count ? 'none' : x.first.map((h) => h.name).join(', ') + (x.count > x.first.length ? ` and ${x.count - x.first.length} more` : ''));
      const counted = (st) => (s.hosts.byState[st] ? `${s.hosts.byState[st]} hosts` : 'none');
      $('p-failed').textContent = group(g && g.failed, s.failedHost || 'none');
      $('p-deployed').textContent = group(g && g.deployed, counted('switched'));
      $('p-not-attempted').textContent = group(g && g.notAttempted, counted('not-attempted'));
      $('p-rolled-back').textContent = group(g && g.rolledBack, counted('rolled-back'));
      const rb = g && g.rollbackFailed;
      $('p-rollback-failed').textContent = !rb ? counted('rollback-failed') : !rb.count ? 'none' : rb.first.map((h) => `${h.name} (${h.error || 'failed'})`).join('; ') + (rb.count > rb.first.length ? ` and ${rb.count - rb.first.length} more` : '');
      $('p-rollback-failed').classList.toggle('error', Boolean(s.hosts.byState['rollback-failed']));
      const r = s.revert;
      $('p-revert').textContent = !r
        ? `not reverted (merge ${short(s.mergeSha)})`
        : r.kind === 'commit'
          ? `reverted in commit ${short(r.commitSha)}${r.alreadyReverted ? ' (already reverted)' : ''}`
          : r.kind === 'pull-request'
            ? `revert pull request #${r.number}${r.fellBackFromProtectedBranch ? ' (branch protected)' : ''}`
            : `revert failed: ${r.error}`;
      $('p-failure').textContent = s.failure || '';
    }
    renderButtons();
    renderControls();
    // The controls' state moved without a host or phase transition (another operator paused or resumed
    // through the API or the CLI): what applies now is asked again, so the buttons follow it live.
    if (before && before.deploymentId === s.deploymentId && JSON.stringify(before.controls) !== JSON.stringify(s.controls)) void refreshControls();
    undo.render(s);
    return before;
  }

  function drawPage(p) {
    state.hostPage = p;
    $('hosts').querySelector('tbody').replaceChildren(
      ...p.hosts.map((h) =>
        el('tr', { data: { host: h.name, state: h.state } }, [
          el('td', { text: h.name }),
          el('td', { text: h.kind, cls: 'muted' }),
          el('td', {}, [stateBadge(h.state)]),
          el('td', { text: generationTrail(h), cls: 'generation', title: 'generations: before → after the switch → now' }),
          changesCell(h),
          el('td', { text: [h.uncertain || h.error || h.offline || '', rebootNote(h)].filter(Boolean).join(' · '), cls: 'small', data: { reboot: h.reboot ? (h.reboot.rebooted ? 'rebooted' : h.reboot.needed ? 'needed' : 'not-needed') : '' } }),
        ]),
      ),
    );
    const pages = Math.max(1, p.pages);
    const start = (p.page - 1) * p.pageSize;
    $('page-info').textContent = p.total ? `hosts ${start + 1}–${start + p.hosts.length} of ${p.total} · page ${p.page} of ${pages}` : 'no hosts match';
    $('page-info').dataset.page = String(p.page);
    $('page-info').dataset.pages = String(pages);
    $('page-prev').disabled = p.page <= 1;
    $('page-next').disabled = p.page >= pages;
    const total = state.summary ? state.summary.hosts.total : p.total;
    $('hosts-pager').hidden = pages <= 1 && !state.filter.state && !state.filter.wave && total <= PAGE_SIZE;
  }

  // The counts (every host, and wave by wave) and the filters' choices, from the summary.
  function renderSummary(s) {
    const total = s.hosts.byState;
    $('summary-counts').textContent = `${s.hosts.total} host${s.hosts.total === 1 ? '' : 's'}: ${countText(total) || 'none'}`;
    const waves = s.waves || [];
    $('waves').hidden = waves.length < 2;
    $('waves').querySelector('tbody').replaceChildren(
      ...waves.map((w) => {
        const tr = el('tr', { data: { wave: w.name } }, [el('td', { text: w.name }), el('td', { text: w.state, cls: 'small' }), el('td', { text: `${w.total}: ${countText(w.byState)}`, cls: 'small' })]);
        if (state.filter.wave === w.name) tr.classList.add('selected');
        tr.addEventListener('click', () => setFilter({ wave: state.filter.wave === w.name ? '' : w.name }));
        return tr;
      }),
    );
    const option = (value, text) => {
      const o = el('option', { text });
      o.value = value;
      return o;
    };
    const stateSel = $('filter-state');
    stateSel.replaceChildren(option('', 'all'), ...HOST_STATES.filter((st) => total[st] || st === state.filter.state).map((st) => option(st, `${st} (${total[st] || 0})`)));
    stateSel.value = state.filter.state;
    const waveSel = $('filter-wave');
    waveSel.replaceChildren(option('', 'all'), ...waves.map((w) => option(w.name, w.name)));
    waveSel.value = state.filter.wave;
    $('filter-wave').hidden = $('filter-wave').previousElementSibling.hidden = waves.length < 2;
  }

  function setFilter(change) {
    state.filter = { ...state.filter, ...change };
    state.page = 1;
    if (state.summary) renderSummary(state.summary);
    void loadPage();
  }

  function renderButtons() {
    const allowed = (state.preview && state.preview.allowed) || [];
    const operator = state.me && state.me.role === 'operator';
    const startNow = $('act-start-now');
    startNow.disabled = state.busy || !operator || !(state.summary && state.summary.window && state.summary.window.waiting);
    startNow.title = !operator ? 'needs the operator role' : '';
    for (const b of document.querySelectorAll('#failed-panel .actions button')) {
      b.disabled = state.busy || !operator || Boolean(state.closedAs) || !allowed.includes(b.dataset.action);
      b.title = !operator ? 'needs the operator role' : allowed.includes(b.dataset.action) ? '' : 'does not apply now';
    }
  }

  // ---- the confirmation dialog and the action ----
  async function act(action) {
    const id = state.selected;
    // The hosts the dialog lists (the first DIALOG_HOSTS) and how many there are in all (hostCount).
    const preview = await api('GET', `/api/deployments/${encodeURIComponent(id)}/rollback-preview?limit=${DIALOG_HOSTS}`);
    state.preview = preview;
    const hostCount = typeof preview.hostCount === 'number' ? preview.hostCount : preview.hosts.length;
    if (!preview.allowed.includes(action)) {
      $('action-result').textContent = `${action} no longer applies (allowed: ${preview.allowed.join(', ') || 'nothing'})`;
      renderButtons();
      return;
    }
    const items = [];
    if (action !== 'dismiss' && preview.revert.needed) items.push(`Revert merge commit ${short(preview.revert.mergeSha)} on ${state.summary.repository.owner}/${state.summary.repository.name}@${state.summary.repository.branch}`);
    if (action === 'revert-and-rollback') {
      for (const h of preview.hosts.slice(0, DIALOG_HOSTS)) items.push(`Roll back ${h.name} (${h.state}) from generation ${h.from ? h.from.number : '?'} to ${h.to.number}`);
      if (hostCount > DIALOG_HOSTS) items.push(`… and ${hostCount - DIALOG_HOSTS} more hosts (${hostCount} in all, each back to its recorded generation)`);
      if (hostCount === 0) items.push('No host needs a rollback.');
    }
    if (action === 'dismiss') {
      // The page on screen names its hosts; the summary counts them all.
      const hs = state.hostPage ? state.hostPage.hosts : [];
      const total = state.summary.hosts.total;
      const listed = hs.slice(0, DIALOG_HOSTS).map((h) => `${h.name} (${h.state})`).join(', ');
      items.push(`Close the deployment without touching GitHub or any host. Hosts stay as they are: ${listed}${total > Math.min(hs.length, DIALOG_HOSTS) ? ` and ${total - Math.min(hs.length, DIALOG_HOSTS)} more (${countText(state.summary.hosts.byState)})` : ''}`);
    }
    $('confirm-title').textContent = { revert: 'Revert the merge?', 'revert-and-rollback': 'Roll back the deployed hosts?', dismiss: 'Dismiss this deployment?' }[action];
    $('confirm-intro').textContent = action === 'dismiss' ? 'This will:' : 'This will touch:';
    $('confirm-list').replaceChildren(...items.map((t) => el('li', { text: t })));
    // What the rollback will undo on each host (its closure change, reversed), read while the dialog is open.
    $('confirm-changes').replaceChildren();
    $('confirm-changes-head').hidden = action !== 'revert-and-rollback' || hostCount === 0;
    if (action === 'revert-and-rollback') {
      // Read for the hosts listed only (each is a command on the host).
      for (const h of preview.hosts.slice(0, DIALOG_HOSTS)) {
        const li = el('li', { text: `${h.name}: reading…`, data: { host: h.name } });
        $('confirm-changes').append(li);
        api('GET', `/api/deployments/${encodeURIComponent(id)}/hosts/${encodeURIComponent(h.name)}/changes?direction=rollback`).then(
          (r) => {
            li.textContent = `${h.name}: ${changeSummary(r.diff)}`;
            li.append(el('ul', { cls: 'closure' }, r.diff.changes.map((x) => el('li', { text: changeLine(x) }))));
            li.dataset.ready = 'true';
          },
          (err) => {
            li.textContent = `${h.name}: not known (${err.message})`;
            li.dataset.ready = 'error';
          },
        );
      }
    }
    $('confirm-ok').textContent = { revert: 'Revert Merge', 'revert-and-rollback': 'Roll back hosts', dismiss: 'Dismiss' }[action];
    const dialog = $('confirm');
    dialog.returnValue = '';
    dialog.showModal();
    const answer = await new Promise((resolve) => dialog.addEventListener('close', () => resolve(dialog.returnValue), { once: true }));
    if (answer !== 'ok') {
      $('action-result').textContent = 'Cancelled; nothing was changed.';
      return;
    }
    state.busy = true;
    renderButtons();
    $('action-result').textContent = action === 'dismiss' ? 'Dismissing…' : 'Working… (hosts update live below)';
    try {
      const path = action === 'dismiss' ? 'dismiss' : 'rollback';
      const outcome = await api('POST', `/api/deployments/${encodeURIComponent(id)}/${path}`, action === 'dismiss' ? {} : { action });
      $('action-result').textContent = `Done: ${outcome.summary}`;
      if (id === state.selected) void reload();
    } catch (err) {
      $('action-result').textContent = `Failed: ${err.message}`;
    } finally {
      state.busy = false;
      await refreshSide();
      await refreshList();
    }
  }

  /** Starts a deployment that waits for its maintenance window now (the API refuses it when nothing waits). */
  async function startNow() {
    const id = state.selected;
    state.busy = true;
    renderButtons();
    $('window-result').textContent = 'Starting…';
    try {
      const outcome = await api('POST', `/api/deployments/${encodeURIComponent(id)}/start-now`, {});
      $('window-result').textContent = `Done: ${outcome.summary}`;
      if (id === state.selected) void reload();
    } catch (err) {
      $('window-result').textContent = `Failed: ${err.message}`;
    } finally {
      state.busy = false;
      renderButtons();
      await refreshList();
    }
  }

  // ---- live updates ----
  /** The live feed of a deployment: its summary and the hosts that changed, after the cursor drawn. */
  const subscribeMessage = (id) => ({ type: 'subscribe', deploymentId: id, view: 'summary', ...(state.cursor !== null ? { since: state.cursor } : {}) });

  function send(msg) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN && state.ws.ready) state.ws.send(JSON.stringify(msg));
  }

  function connect() {
    if (!state.token) return;
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/ws`);
    state.ws = ws;
    ws.addEventListener('open', () => ws.send(JSON.stringify({ type: 'auth', token: state.token })));
    ws.addEventListener('message', (ev) => {
      const m = JSON.parse(ev.data);
      if (m.type === 'ready') {
        ws.ready = true;
        state.wsRetry = 0;
        $('live').textContent = 'live';
        $('live').className = 'live on';
        if (state.selected) send(subscribeMessage(state.selected));
        return;
      }
      if (m.deploymentId !== state.selected) return;
      if (m.type === 'summary') {
        if (m.reset && state.cursor !== null) {
          feed(el('li', { text: `transitions ${state.cursor + 1}–${m.cursor} summarized (the live feed no longer held them)`, cls: 'muted', data: { reset: 'true' } }));
        }
        if (state.cursor === null || m.reset || m.cursor > state.cursor) state.cursor = m.cursor;
        const before = drawSummary(m.summary);
        // A reset summarizes transitions this page did not see; a state filter's hosts follow the counts.
        if (m.reset || (state.filter.state && (!before || JSON.stringify(before.hosts) !== JSON.stringify(m.summary.hosts)))) void loadPage();
      } else if (m.type === 'hosts') {
        // The running wave's hosts that changed (no transition yet): read the page again if it shows one.
        if (touchesPage(m.hosts.map((h) => h.name))) void loadPage();
      } else if (m.type === 'host' || m.type === 'phase') {
        // Each transition once, in order: the feed numbers them (seq).
        if (state.cursor !== null && m.seq <= state.cursor) return;
        state.cursor = m.seq;
        if (m.type === 'host') {
          feed(el('li', { text: `${new Date(m.at).toLocaleTimeString()}  ${m.host}: ${m.from} → ${m.to}${m.error ? ` (${m.error})` : ''}`, data: { host: m.host, to: m.to, seq: String(m.seq) } }));
          if (touchesPage([m.host])) void loadPage();
          void refreshControls();
        } else {
          feed(el('li', { text: `${new Date(m.at).toLocaleTimeString()}  phase: ${m.from} → ${m.to}`, cls: 'muted', data: { phase: m.to, seq: String(m.seq) } }));
          void refreshSide();
          void refreshList();
        }
      } else if (m.type === 'final') {
        if (m.closed && m.deploymentId === state.selected) {
          // Ended outside its own phases (terminated, cancelled, failed): nothing applies any more.
          state.closedAs = m.closed;
          $('action-result').textContent = `The deployment's workflow ended (${m.closed.toLowerCase()}); no action applies any more.`;
          renderButtons();
        }
        void refreshSide();
        void refreshList();
      } else if (m.type === 'error') $('action-result').textContent = m.message;
    });
    ws.addEventListener('close', (ev) => {
      $('live').textContent = 'offline';
      $('live').className = 'live off';
      if (state.ws !== ws) return;
      state.ws = null;
      if (ev.code === 4401) return signOut('The live feed refused the token; sign in again.');
      if (!state.token) return;
      state.wsRetry = Math.min(state.wsRetry + 1, 5);
      setTimeout(connect, 500 * 2 ** state.wsRetry);
    });
  }

  // ---- wiring ----
  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    void signIn($('token').value.trim());
    $('token').value = '';
  });
  $('signout').addEventListener('click', () => signOut());
  $('refresh').addEventListener('click', () => void refreshList());
  $('filter-state').addEventListener('change', () => setFilter({ state: $('filter-state').value }));
  $('filter-wave').addEventListener('change', () => setFilter({ wave: $('filter-wave').value }));
  $('page-prev').addEventListener('click', () => {
    state.page = Math.max(1, state.page - 1);
    void loadPage();
  });
  $('page-next').addEventListener('click', () => {
    state.page += 1;
    void loadPage();
  });
  for (const b of document.querySelectorAll('#failed-panel .actions button')) b.addEventListener('click', () => void act(b.dataset.action));
  for (const b of document.querySelectorAll('#controls-panel button[data-control]')) b.addEventListener('click', () => void control(b.dataset.control));
  $('act-start-now').addEventListener('click', () => void startNow());
  // Undo a deployment that succeeded (undo.js).
  const undo = window.nixfleetUndo({
    $,
    el,
    api,
    changeLine,
    changeSummary,
    selected: () => state.selected,
    operator: () => Boolean(state.me && state.me.role === 'operator'),
    busy: () => state.busy,
    setBusy: (b) => {
      state.busy = b;
      renderButtons();
    },
    refresh: async () => {
      if (state.selected) await select(state.selected);
      await refreshList();
    },
  });
  setInterval(() => {
    if (state.token && !document.hidden) void refreshList().catch(() => undefined);
  }, 10000);
  if (state.token) void signIn(state.token);
  else signOut();
})();
