/**
 * The undo's lock rule (issue 17): an undo does not hold the fleet while it waits for its
 * confirmation (up to `undo.confirmWindow`, an hour by default): a deployment of the fleet may run
 * meanwhile. Once confirmed, the undo takes the fleet lock and reads again every host it is about to
 * roll back; it acts only when each is still where the operator saw it (the `from` generation of the
 * confirmed plan). Anything else, and the confirmation is refused with what changed: the operator
 * confirmed a different state, and asks again (a new plan, a new confirmation). Hosts the plan leaves
 * alone are not touched whatever they did meanwhile, so their changes do not refuse it.
 *
 * Pure (bundled into workflow code); tested in tests/domain/undo-recheck.test.ts.
 */
import type { Generation } from './deployment';
import type { HostNow, UndoPlan } from './undo';

export interface UndoChange {
  name: string;
  /** Where the host was when the plan was shown and confirmed. */
  confirmed: Generation;
  /** Where it is now (absent: it could not be read). */
  now?: Generation;
  error?: string;
}

export type UndoRecheck = { ok: true } | { ok: false; changes: UndoChange[]; reason: string };

const text = (g: Generation): string => `generation ${g.number} (${g.storePath})`;

/**
 * Whether the confirmed plan still holds: every host it rolls back runs the store path it ran when the
 * plan was made (a renumbered generation of the same store path counts as the same). A host that
 * cannot be read now counts as changed: the undo cannot tell, so it does not act on it blind.
 */
export function recheckConfirmedPlan(plan: Pick<UndoPlan, 'hosts'>, now: Readonly<Record<string, HostNow>>): UndoRecheck {
  const changes: UndoChange[] = [];
  for (const h of plan.hosts) {
    const n = now[h.name];
    if (!n?.generation) changes.push({ name: h.name, confirmed: h.from, error: n?.error ?? 'not read' });
    else if (n.generation.storePath !== h.from.storePath) changes.push({ name: h.name, confirmed: h.from, now: n.generation });
  }
  if (changes.length === 0) return { ok: true };
  const what = changes.map((c) => (c.now ? `${c.name} runs ${text(c.now)}, not ${text(c.confirmed)} as when confirmed` : `${c.name} could not be read (${c.error ?? 'no answer'})`)).join('; ');
  return { ok: false, changes, reason: `changed since the confirmation, nothing undone: ${what}; ask for the undo again to see and confirm the new plan` };
}
