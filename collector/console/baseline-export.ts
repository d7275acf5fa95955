/**
 * Export a baseline as a file (`GET /api/v1/baselines/{key}/export?format=`): the `Baseline`
 * document for Git, a Kubernetes NetworkPolicy (for the pods a label selector names) or Falco
 * rules. The export needs the bearer token, so it is fetched and saved through an object URL
 * (dom.saveFile) rather than linked. A read: every role may export.
 */
import { errorText, seg, type Api } from './api.js';
import { announce, h, message, replace, saveFile } from './dom.js';

type Format = 'yaml' | 'networkpolicy' | 'falco';

/** The Export panel of baseline `key`. */
export function exportPanel(api: Api, key: string): HTMLElement {
  const feedback = h('div', { 'aria-live': 'polite' });
  const selector = h('input', { id: 'np-selector', name: 'selector', maxlength: 1024, autocomplete: 'off', placeholder: 'app=web', 'aria-describedby': 'np-help' });
  const buttons: HTMLButtonElement[] = [];

  async function download(format: Format): Promise<void> {
    for (const b of buttons) b.disabled = true;
    replace(feedback, h('p', { class: 'muted' }, 'Preparing the file…'));
    try {
      const query = format === 'networkpolicy' ? { format, selector: selector.value.trim() } : { format };
      const file = await api.file(`baselines/${seg(key)}/export`, query);
      saveFile(file.blob, file.name);
      replace(feedback, message('ok', `Saved ${file.name}.`));
      announce(`Saved ${file.name}`);
    } catch (err) {
      replace(feedback, message('error', errorText(err)));
    } finally {
      for (const b of buttons) b.disabled = false;
    }
  }

  const button = (format: Format, label: string, type: 'button' | 'submit' = 'button') => {
    const b = h('button', { type, 'data-format': format }, label);
    if (type === 'button') b.addEventListener('click', () => void download(format));
    buttons.push(b);
    return b;
  };

  const policyForm = h(
    'form',
    { class: 'filters', 'aria-label': 'Export a NetworkPolicy' },
    h('label', { for: 'np-selector' }, 'Pod labels for the NetworkPolicy', selector),
    button('networkpolicy', 'Export NetworkPolicy', 'submit'),
  );
  policyForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const value = selector.value.trim();
    // Only "is there one at all" here; the API checks the labels and says which one is wrong.
    if (!value.includes('=')) {
      replace(feedback, message('error', 'A NetworkPolicy applies to the pods of this image: give their labels, as app=web or app=web,tier=front.'));
      selector.setAttribute('aria-invalid', 'true');
      selector.focus();
      return;
    }
    selector.removeAttribute('aria-invalid');
    void download('networkpolicy');
  });

  return h(
    'section',
    { class: 'panel', id: 'export', 'aria-labelledby': 'export-title' },
    h('h2', { id: 'export-title' }, 'Export'),
    h('div', { class: 'actions' }, button('yaml', 'Export YAML'), button('falco', 'Export Falco rules')),
    policyForm,
    h('p', { id: 'np-help', class: 'muted why' }, 'The NetworkPolicy selects pods by these labels (comma-separated key=value).'),
    feedback,
  );
}
