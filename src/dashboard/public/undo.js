// NixFleet dashboard: undo a deployment that succeeded (issue 17). Loaded before app.js, which calls
// window.nixfleetUndo(ctx) once with its helpers and then undo.render(status) after each render.
// The same confirmation as the CLI and the API: the hosts the undo returns to their recorded
// generation with what it undoes on each (closure diffs), the hosts left alone with why (a host that
// changed since is undone only when named: its box ticked), the merge's revert. The API checks the
// role and audits the actor; the undo re-checks the hosts once confirmed (src/domain/undo-recheck.ts).
'use strict';

window.nixfleetUndo = function setupUndo(ctx) {
  const { $, el, api, changeLine, changeSummary } = ctx;
  const UNDOABLE = ['succeeded', 'succeeded-with-failures'];
  const LIST = 50;
  let current = null; // the undo awaiting confirmation (its status), if any
  let forced = [];

  const closed = (s) => s && UNDOABLE.includes(s.outcome) && (s.phase === 'succeeded' || s.phase === 'closed');
  const gen = (g) => (g ? `generation ${g.number}` : '?');

  function render(s) {
    const show = closed(s);
    $('undo-panel').hidden = !show;
    if (!show) return;
    const operator = ctx.operator();
    const b = $('act-undo');
    b.disabled = !operator || ctx.busy();
    b.title = operator ? '' : 'needs the operator role';
  }

  async function cancelCurrent() {
    if (!current) return;
    const id = current.undoId;
    current = null;
    await api('POST', `/api/undo/${encodeURIComponent(id)}/confirm`, { action: 'cancel' }).catch(() => undefined);
  }

  function showPlan(u) {
    const p = u.preview;
    const ok = u.phase === 'awaiting-confirmation' && p;
    $('undo-ok').disabled = !ok;
    if (!ok) {
      $('undo-intro').textContent = u.refusal ? `Refused (${u.refusal.code}): ${u.refusal.reason}` : `The undo is ${u.phase}.`;
      $('undo-hosts').replaceChildren();
      $('undo-skipped').replaceChildren();
      return;
    }
    $('undo-intro').textContent = `Deployment closed ${p.closedAt} (${p.outcome}); undo possible until ${p.retainedUntil}. Merge: ${p.revert.note}.`;
    $('undo-hosts').replaceChildren(
      ...p.hosts.slice(0, LIST).map((h) =>
        el('li', { data: { host: h.name } }, [
          el('span', { text: `Roll back ${h.name} from ${gen(h.from)} to ${gen(h.to)}${h.forced ? ' (named: changed since)' : ''}` }),
          h.closureDiff
            ? el('div', { cls: 'small', data: { closure: 'true' } }, [el('span', { text: ` — ${changeSummary(h.closureDiff)}` }), el('ul', { cls: 'closure' }, h.closureDiff.changes.slice(0, 20).map((c) => el('li', { text: changeLine(c) })))])
            : el('p', { cls: 'small muted', text: `closure diff unavailable: ${h.closureDiffError || 'not read'}` }),
        ]),
      ),
      ...(p.hosts.length > LIST ? [el('li', { text: `… and ${p.hosts.length - LIST} more hosts` })] : []),
      ...(p.hosts.length === 0 ? [el('li', { text: 'No host is rolled back.' })] : []),
    );
    $('undo-skipped').replaceChildren(
      ...p.skipped.slice(0, LIST).map((s) => {
        const li = el('li', { data: { host: s.name, why: s.why } }, [el('span', { text: `${s.name}: left alone: ${s.detail}` })]);
        if (s.why === 'changed-since') {
          const box = el('input');
          box.type = 'checkbox';
          box.name = 'undo-name';
          box.value = s.name;
          box.setAttribute('aria-label', `undo ${s.name} anyway`);
          box.addEventListener('change', () => {
            forced = box.checked ? [...forced, s.name] : forced.filter((n) => n !== s.name);
            void plan();
          });
          li.prepend(box);
        }
        return li;
      }),
      // Named hosts (now in the plan) keep their box, ticked.
      ...forced.filter((n) => !p.skipped.some((s) => s.name === n)).map((n) => {
        const box = el('input');
        box.type = 'checkbox';
        box.checked = true;
        box.value = n;
        box.setAttribute('aria-label', `undo ${n} anyway`);
        box.addEventListener('change', () => {
          forced = forced.filter((x) => x !== n);
          void plan();
        });
        return el('li', { data: { host: n, why: 'named' } }, [box, el('span', { text: `${n}: named, undone although it changed since` })]);
      }),
    );
  }

  /** Asks the API for the plan (a new undo, or the one running for this deployment run). */
  async function plan() {
    const id = ctx.selected();
    $('undo-ok').disabled = true;
    $('undo-intro').textContent = 'Reading the hosts…';
    // Naming hosts is a new request: the undo awaiting confirmation with the old list is cancelled first.
    await cancelCurrent();
    const text = $('undo-fleet').value.trim();
    try {
      const u = await api('POST', `/api/deployments/${encodeURIComponent(id)}/undo`, { hosts: forced, ...(text ? { fleetText: text } : {}) });
      current = u.phase === 'awaiting-confirmation' ? u : null;
      showPlan(u);
    } catch (err) {
      $('undo-intro').textContent = `Failed: ${err.message}`;
    }
  }

  async function open() {
    forced = [];
    current = null;
    $('undo-result').textContent = '';
    $('undo-intro').textContent = 'Press “Show plan” (paste the fleet file unless the API knows it).';
    $('undo-hosts').replaceChildren();
    $('undo-skipped').replaceChildren();
    $('undo-ok').disabled = true;
    const dialog = $('undo-dialog');
    dialog.returnValue = '';
    dialog.showModal();
    const answer = await new Promise((resolve) => dialog.addEventListener('close', () => resolve(dialog.returnValue), { once: true }));
    if (answer !== 'ok' || !current) {
      await cancelCurrent();
      $('undo-result').textContent = 'Cancelled; nothing was changed.';
      return;
    }
    const u = current;
    current = null;
    ctx.setBusy(true);
    $('undo-result').textContent = 'Undoing…';
    try {
      const done = await api('POST', `/api/undo/${encodeURIComponent(u.undoId)}/confirm`, { action: 'confirm' });
      $('undo-result').textContent = done.phase === 'done' ? `Done: ${done.summary}` : done.refusal ? `Refused (${done.refusal.code}): ${done.refusal.reason}` : `The undo is ${done.phase}.`;
    } catch (err) {
      $('undo-result').textContent = `Failed: ${err.message}`;
    } finally {
      ctx.setBusy(false);
      await ctx.refresh();
    }
  }

  $('act-undo').addEventListener('click', () => void open());
  $('undo-plan-btn').addEventListener('click', () => void plan());
  $('undo-fleet-file').addEventListener('change', async () => {
    const f = $('undo-fleet-file').files[0];
    if (f) $('undo-fleet').value = await f.text();
  });
  return { render };
};
