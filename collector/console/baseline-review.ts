/**
 * A reviewer's changes to a baseline: lock, unlock and relearn the whole baseline
 * (`POST /api/v1/baselines/{key}/lock|unlock|relearn`), approve and remove one entry
 * (`.../entries/{id}/approve|remove`), each with a reason kept in the version history and the
 * audit log. Every change answers with the updated baseline, handed to `onChanged`.
 *
 * Only rendered for reviewer and above (`can(me, 'changeBaseline')`). A change the state does not
 * allow is offered as a disabled button with the reason written next to it; the server decides
 * anyway, and its 409 message is shown as it is.
 */
import { errorText, seg, type Baseline, type BaselineEntry } from './api.js';
import { announce, badge, h, message, replace, show, type Child } from './dom.js';

/** A change to a whole baseline. */
export type StateAction = 'lock' | 'unlock' | 'relearn';
/** A change to one entry. */
export type EntryAction = 'approve' | 'remove';

/**
 * Why `action` is not possible in `state`, or null when it is (as reviewTx in
 * collector/store/sqlite/baselines.ts). Unlock is offered for `locked` only: an `enforcing` set by an import
 * can be unlocked too, but the view does not tell it from the agents' own `enforcing`.
 */
export function stateActionBlocked(action: StateAction, state: string): string | null {
  if (action === 'lock') return state === 'locked' ? 'it is locked already' : null;
  if (action === 'unlock') return state === 'locked' ? null : 'it is not locked';
  return state === 'learning' || state === 'relearn' ? `it is ${state === 'relearn' ? 'waiting to relearn' : 'learning'} already` : null;
}

/** Why `action` is not possible on an entry with `status`, or null when it is. */
export function entryActionBlocked(action: EntryAction, status: string): string | null {
  if (status === 'removed') return action === 'remove' ? 'removed already' : 'removed: add it again to allow it';
  if (action === 'approve' && (status === 'approved' || status === 'added')) return `${status} already`;
  return null;
}

const STATE_LABELS: Record<StateAction, string> = { lock: 'Lock', unlock: 'Unlock', relearn: 'Relearn' };
const DONE: Record<StateAction | EntryAction, string> = { lock: 'locked', unlock: 'unlocked', relearn: 'set to relearn', approve: 'approved', remove: 'removed' };

/** What the review panel needs from its page. */
export interface ReviewDeps {
  post(path: string, body: unknown): Promise<Baseline>;
  /** The page shows the updated baseline (and reloads its versions). */
  onChanged(next: Baseline): void;
  /** Where results and errors are written (a live region). */
  feedback: HTMLElement;
}

/** The Review panel of a baseline: a reason and Lock / Unlock / Relearn. */
export function stateControls(b: Baseline, deps: ReviewDeps): HTMLElement {
  const reason = h('input', { id: 'b-reason', name: 'reason', maxlength: 1000, autocomplete: 'off', 'aria-describedby': 'b-reason-help' });
  const notes: HTMLElement[] = [];
  const buttons = (['lock', 'unlock', 'relearn'] as const).map((action) => {
    const blocked = stateActionBlocked(action, b.state);
    const noteId = `why-${action}`;
    if (blocked !== null) notes.push(h('li', { id: noteId }, `${STATE_LABELS[action]}: not possible, ${blocked}.`));
    const button = h('button', { type: 'button', class: action === 'relearn' ? 'danger' : action === 'lock' ? 'primary' : null, disabled: blocked !== null, 'aria-describedby': blocked === null ? null : noteId, 'data-action': action }, STATE_LABELS[action]);
    button.addEventListener('click', () => {
      if (action === 'relearn' && !window.confirm('Relearn this baseline? Its learned entries are dropped and the agents learn it again from its next event; approved, added and removed entries stay.')) return;
      for (const x of buttons) x.disabled = true;
      void (async () => {
        try {
          const next = await deps.post(`baselines/${seg(b.key)}/${action}`, { reason: reason.value.trim().slice(0, 1000) });
          replace(deps.feedback, message('ok', `Baseline ${DONE[action]}: now ${show(next.state, 32)}, version ${show(next.version)}.`));
          announce(`Baseline ${DONE[action]}`);
          deps.onChanged(next);
        } catch (err) {
          replace(deps.feedback, message('error', errorText(err)));
          for (const [i, x] of buttons.entries()) x.disabled = stateActionBlocked((['lock', 'unlock', 'relearn'] as const)[i]!, b.state) !== null;
        }
      })();
    });
    return button;
  });
  return h(
    'section',
    { class: 'panel', id: 'baseline-actions', 'aria-labelledby': 'review-title' },
    h('h2', { id: 'review-title' }, 'Review'),
    h('label', { for: 'b-reason' }, 'Reason', reason),
    h('p', { id: 'b-reason-help', class: 'muted why' }, 'Kept with the new version and in the audit log.'),
    h('div', { class: 'actions', role: 'group', 'aria-label': 'Change the baseline' }, buttons),
    notes.length > 0 ? h('ul', { class: 'muted why' }, notes) : null,
  );
}

/** The status of an entry, with why it has it, and whether its executable came from the image. */
export function entryStatus(e: BaselineEntry): Child {
  return [reviewStatus(e), originNote(e)];
}

/** Whether a process entry's executable came from the image: drift (allowed) is flagged, the image is a quiet note. */
function originNote(e: BaselineEntry): Child {
  if (typeof e.originText !== 'string' || e.originText === '') return null;
  const drift = e.origin === 'upper-layer' || e.origin === 'memfd' || e.origin === 'deleted';
  return h('div', { class: drift ? 'flag' : 'muted why' }, show(e.originText, 120));
}

/** The review status of an entry, with why it has it; a flagged entry says which version brought it. */
function reviewStatus(e: BaselineEntry): Child {
  const reason = typeof e.statusReason === 'string' ? e.statusReason : '';
  if (e.status === 'flagged') {
    // A block or class learned from many addresses: its evidence, so the reviewer can approve or narrow it.
    const g = e.generalization;
    if (g) {
      const nets = g.prefixes.map((p) => `${show(p.count, 12)} /${show(p.length, 4)}s`).join(', ');
      const what = g.kind === 'class' ? 'any public address' : `a /${show(g.prefixLength, 4)} block`;
      return [badge('state', 'flagged'), h('div', { class: 'flag' }, `generalized: ${what}, from ${show(g.addresses, 12)} addresses (${nets}) — review or remove`)];
    }
    const version = /^new in version (\S{1,200})/.exec(reason)?.[1];
    return [badge('state', 'flagged'), h('div', { class: 'flag' }, `new in version ${version ?? 'of the image'} — review`)];
  }
  return [badge('state', e.status), reason !== '' && e.status !== 'learned' ? h('div', { class: 'muted why' }, show(reason, 300)) : null];
}

/**
 * Approve / Remove for one entry. A click opens a small form in the cell asking for the reason;
 * Escape or Cancel closes it. The label names the entry, so a screen reader knows which row.
 */
export function entryControls(b: Baseline, e: BaselineEntry, deps: ReviewDeps): HTMLElement {
  const cell = h('div', { class: 'entry-review' });
  const summary = show(e.summary, 200);
  const closed = () => {
    const buttons = (['approve', 'remove'] as const).map((action) => {
      const blocked = entryActionBlocked(action, e.status);
      return h(
        'button',
        {
          type: 'button',
          class: action === 'remove' ? 'danger' : null,
          disabled: blocked !== null,
          title: blocked,
          'aria-label': `${action === 'approve' ? 'Approve' : 'Remove'} ${summary}${blocked === null ? '' : ` (${blocked})`}`,
          onclick: () => open(action),
        },
        action === 'approve' ? 'Approve' : 'Remove',
      );
    });
    replace(cell, h('div', { class: 'actions' }, buttons));
  };
  const open = (action: EntryAction) => {
    const verb = action === 'approve' ? 'approving' : 'removing';
    const id = `reason-${action}-${Math.random().toString(36).slice(2, 10)}`;
    const input = h('input', { id, name: 'reason', maxlength: 1000, autocomplete: 'off' });
    const submit = h('button', { type: 'submit', class: action === 'remove' ? 'danger' : 'primary' }, action === 'approve' ? 'Confirm approve' : 'Confirm remove');
    const form = h(
      'form',
      { class: 'entry-form' },
      h('label', { for: id }, h('span', null, `Reason for ${verb}`, h('span', { class: 'sr-only' }, ` ${summary}`)), input),
      h('div', { class: 'actions' }, submit, h('button', { type: 'button', onclick: closed }, 'Cancel')),
    );
    form.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') closed();
    });
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      submit.disabled = true;
      void (async () => {
        try {
          const next = await deps.post(`baselines/${seg(b.key)}/entries/${seg(e.id)}/${action}`, { reason: input.value.trim().slice(0, 1000) });
          replace(deps.feedback, message('ok', `Entry ${DONE[action]}: ${summary}`));
          announce(`Entry ${DONE[action]}`);
          deps.onChanged(next);
        } catch (err) {
          replace(deps.feedback, message('error', errorText(err)));
          submit.disabled = false;
        }
      })();
    });
    replace(cell, form);
    input.focus();
  };
  closed();
  return cell;
}
