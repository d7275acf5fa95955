/**
 * The read-time joins of SBOMs with what ran (issue 22): which SBOM speaks for an image, the
 * package behind each executable of an alert or a baseline, and what a new image version changed
 * for the executables a baseline uses. The store keeps SBOMs apart from baselines and alerts; the
 * join happens here, when they are shown.
 *
 * Which SBOM: the one of the process's image digest when the runtime reported it and an SBOM was
 * imported for it; else the SBOM imported last for the repository, and the view says so (a tag can
 * move, so that SBOM may describe another version than the one that ran).
 */
import { HOST_KEY } from '../../core/baseline.js';
import { canonicalRepository, type ImageRef } from '../../core/event.js';
import { addsOrDrops, describeLink, linkExecutable, ownerChanges, pathCandidates, type OwnerChange, type SbomLink } from '../../core/sbom/link.js';
import type { SbomPackage } from '../../core/sbom/parse.js';
import type { Async } from '../store/async.js';
import { MAX_SBOM_LOOKUP, type BaselineStore, type BaselineView, type SbomStore, type SbomSummary } from '../store/store.js';

/** The SBOM that speaks for an image, and on what basis. */
export interface ChosenSbom {
  sbom: SbomSummary;
  /** `digest`: the SBOM of the digest that ran; `repository`: the latest of the repository (the digest was not known, or had no SBOM). */
  basis: 'digest' | 'repository';
  /** Why the fallback, in words; '' for `digest`. */
  note: string;
}

type Sboms = Async<Pick<SbomStore, 'getSbom' | 'latestSbom' | 'sbomFiles'>>;

/** The repository of a baseline key (`repo`, `repo:tag`, `repo@digest`), or '' for the host key. */
export function repositoryOfKey(key: string): string {
  if (key === HOST_KEY) return '';
  const at = key.indexOf('@');
  const noDigest = at === -1 ? key : key.slice(0, at);
  const colon = noDigest.lastIndexOf(':');
  return colon > noDigest.lastIndexOf('/') ? noDigest.slice(0, colon) : noDigest;
}

/**
 * The SBOM for an image that ran with `digest` ('' when unknown) from `repository`, or null when none
 * was imported. The digest's SBOM counts only when it was imported for that repository: the digest
 * comes from a node, which could otherwise point its alert at another image's SBOM.
 */
export async function chooseSbom(store: Sboms, repository: string, digest: string): Promise<ChosenSbom | null> {
  let exact: SbomSummary | null = null;
  if (digest !== '') {
    exact = await store.getSbom(digest);
    if (exact && sameRepository(exact.repository, repository)) return { sbom: exact, basis: 'digest', note: '' };
  }
  if (repository === '') return null;
  const latest = await store.latestSbom(repository);
  if (!latest) return null;
  const why = digest === '' ? "the process's image digest is not known" : exact ? `the SBOM imported for ${digest} is of another repository` : `no SBOM was imported for ${digest}`;
  return { sbom: latest, basis: 'repository', note: `${why}: the latest SBOM imported for ${repository} (${latest.digest}) is used` };
}

/** Whether an SBOM imported for `imported` speaks for `ran` (both as canonical names: `nginx` is `docker.io/library/nginx`). */
function sameRepository(imported: string, ran: string): boolean {
  return ran !== '' && canonicalRepository(imported) === canonicalRepository(ran);
}

/** The links of `exes` in the SBOM `sbom` (one store call for all of them). */
export async function linkAll(store: Sboms, sbom: SbomSummary, exes: readonly string[]): Promise<SbomLink[]> {
  const found = new Map<string, SbomPackage | null>();
  const paths = [...new Set(exes.flatMap(pathCandidates))];
  // In slices of what one lookup takes: a path left unasked would read as "not in the SBOM".
  for (let i = 0; i < paths.length; i += MAX_SBOM_LOOKUP) for (const f of await store.sbomFiles(sbom.digest, paths.slice(i, i + MAX_SBOM_LOOKUP))) found.set(f.path, f.package);
  return exes.map((exe) => linkExecutable(exe, found, sbom.filesListed));
}

/** A link as the API shows it. */
export function linkView(link: SbomLink) {
  return {
    status: link.status,
    package: link.package,
    text: describeLink(link),
    // Drift evidence: the SBOM lists the image's files, and not this one.
    notInSbom: link.status === 'not-listed',
  };
}

/** The chosen SBOM as the API shows it. */
export function chosenView(c: ChosenSbom) {
  return { digest: c.sbom.digest, repository: c.sbom.repository, format: c.sbom.format, tool: c.sbom.tool, filesListed: c.sbom.filesListed, basis: c.basis, note: c.note };
}

/** The SBOM link of an alert's process (null for a network alert or when no SBOM speaks for its image). */
export async function alertSbom(store: Sboms, alert: { entry: { type: string; exe?: string }; image: string }, image: ImageRef | undefined) {
  if (alert.entry.type !== 'process' || alert.entry.exe === undefined) return null;
  const chosen = await chooseSbom(store, image?.repository || alert.image, image?.digest ?? '');
  if (!chosen) return null;
  const [link] = await linkAll(store, chosen.sbom, [alert.entry.exe]);
  return { ...chosenView(chosen), imageDigest: image?.digest ?? '', ...linkView(link as SbomLink) };
}

/** What changed for a baseline's executables from its previous image version to its newest one, when both have SBOMs. */
export interface VersionNotice {
  from: string;
  to: string;
  changes: OwnerChange[];
  /** Packages were added or dropped (not only upgraded): the reviewer should look. */
  addsOrDrops: boolean;
  text: string;
}

/** The executables of a baseline's process entries (active ones), each once. */
export function baselineExecutables(view: Pick<BaselineView, 'entries'>): string[] {
  return [...new Set(view.entries.flatMap((e) => (e.entry.type === 'process' && e.status !== 'removed' ? [e.entry.exe] : [])))];
}

/**
 * A baseline joined with the SBOMs of its image: the SBOM that speaks for it (its newest image
 * version that has one, else the repository's latest), each process entry's link, the versions it
 * ran and which have SBOMs, and the notice of the newest version when it changed packages.
 */
export async function baselineSbom(store: Sboms, view: Pick<BaselineView, 'key' | 'entries' | 'images'>) {
  const repository = repositoryOfKey(view.key);
  const digests = [...new Set(view.images.map((i) => i.digest).filter((d) => d !== ''))];
  const withSbom: SbomSummary[] = [];
  for (const d of digests) {
    const s = await store.getSbom(d);
    // Digests are node-reported: only an SBOM imported for this baseline's repository counts.
    if (s && sameRepository(s.repository, repository)) withSbom.push(s);
  }
  const versions = view.images.map((i) => ({ tag: i.tag, digest: i.digest, sbom: withSbom.some((s) => s.digest === i.digest) }));
  const newest = withSbom[withSbom.length - 1];
  const chosen: ChosenSbom | null = newest
    ? { sbom: newest, basis: 'digest', note: '' }
    : await chooseSbom(store, repository, digests[digests.length - 1] ?? '');
  const exes = baselineExecutables(view);
  const links = chosen ? await linkAll(store, chosen.sbom, exes) : [];
  const byExe = new Map(links.map((l) => [l.exe, l]));
  let notice: VersionNotice | null = null;
  if (withSbom.length >= 2) {
    const before = withSbom[withSbom.length - 2] as SbomSummary;
    const after = withSbom[withSbom.length - 1] as SbomSummary;
    notice = await versionNotice(store, before, after, exes);
  }
  return {
    key: view.key,
    repository,
    sbom: chosen ? chosenView(chosen) : null,
    versions,
    entries: view.entries.flatMap((e) => {
      const l = e.entry.type === 'process' ? byExe.get(e.entry.exe) : undefined;
      return l ? [{ id: e.id, exe: l.exe, ...linkView(l) }] : [];
    }),
    notice,
  };
}

/** The notice for a baseline's executables between two SBOMs, or null when nothing changed. */
export async function versionNotice(store: Sboms, before: SbomSummary, after: SbomSummary, exes: readonly string[]): Promise<VersionNotice | null> {
  const changes = ownerChanges(await linkAll(store, before, exes), await linkAll(store, after, exes));
  if (changes.length === 0) return null;
  const added = changes.filter((c) => c.change === 'added').length;
  const dropped = changes.filter((c) => c.change === 'dropped').length;
  const replaced = changes.filter((c) => c.change === 'replaced').length;
  const upgraded = changes.filter((c) => c.change === 'upgraded').length;
  const parts = [added && `${added} added`, dropped && `${dropped} dropped`, replaced && `${replaced} replaced`, upgraded && `${upgraded} upgraded`].filter(Boolean).join(', ');
  return { from: before.digest, to: after.digest, changes, addsOrDrops: addsOrDrops(changes), text: `image version ${after.digest} changes the packages of executables this baseline uses: ${parts}` };
}

/** Text on one line for a YAML comment: control characters and every kind of line break escaped. */
function commentText(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * The SBOM links of a baseline as YAML comments, appended to its exported document: a reader of the
 * file in Git sees each executable's package, and an import ignores them (comments carry no data).
 */
export function sbomExportComment(joined: Awaited<ReturnType<typeof baselineSbom>>): string {
  if (!joined.sbom) return '';
  const lines = [`SBOM ${joined.sbom.digest} (${joined.sbom.tool || joined.sbom.format})${joined.sbom.note ? `: ${joined.sbom.note}` : ''}`, ...joined.entries.map((e) => e.text)];
  if (joined.notice) lines.push(joined.notice.text);
  return lines.map((l) => `# ${commentText(l)}\n`).join('');
}

/** Baselines of one repository checked for a version notice at once (after an import, or when a version first runs). */
export const MAX_NOTICE_KEYS = 100;

type NoticeStore = Sboms & Async<Pick<BaselineStore, 'listBaselines' | 'getBaseline'>>;

/**
 * The notices of a version that first runs (the inventory recorded `digest` of `repository` for the
 * first time): for each baseline of the repository, what its SBOM changes against the newest other
 * version the baseline ran that has an SBOM. The baseline need not list the digest yet (agents report
 * it with their next snapshot); without an SBOM for the digest there is nothing to compare (its
 * import notices it then).
 */
export async function firstRunNotices(store: NoticeStore, repository: string, digest: string): Promise<{ key: string; notice: VersionNotice }[]> {
  const after = await store.getSbom(digest);
  if (!after) return [];
  const keys = (await store.listBaselines()).filter((b) => repositoryOfKey(b.key) === repository).slice(0, MAX_NOTICE_KEYS);
  const out: { key: string; notice: VersionNotice }[] = [];
  for (const b of keys) {
    const view = await store.getBaseline(b.key);
    if (!view) continue;
    const others = [...new Set(view.images.map((i) => i.digest).filter((d) => d !== '' && d !== digest))].reverse();
    let before: SbomSummary | null = null;
    for (const d of others) if ((before = await store.getSbom(d))) break;
    if (!before) continue;
    const notice = await versionNotice(store, before, after, baselineExecutables(view));
    if (notice) out.push({ key: b.key, notice });
  }
  return out;
}

/** The audit record of a notice that adds or drops packages (`sbom.version-change`): before and after. */
export function versionChangeRecord(notice: VersionNotice) {
  return { before: { digest: notice.from }, after: { digest: notice.to, text: notice.text, changes: notice.changes.slice(0, 50) } };
}
