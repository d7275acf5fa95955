/** What every page of the console gets, and how a page links to another. */
import type { Api, Me } from './api.js';

/** A page's world while it is shown. */
export interface PageContext {
  api: Api;
  me: Me;
  /** The <main> element the page owns. */
  main: HTMLElement;
  /** Path segments after `#/`, percent-decoded (`['alerts', id]`). */
  path: string[];
  /** The hash's query (`#/alerts?severity=high`). */
  query: URLSearchParams;
  /** False once the user went elsewhere: late answers must not touch the page. */
  alive(): boolean;
  /** Run when the page is left (close the live feed, timers). */
  onLeave(fn: () => void): void;
  /** Set the document title and the page's heading; returns the heading. */
  title(text: string): HTMLHeadingElement;
}

/** A page: builds itself into ctx.main. */
export type Page = (ctx: PageContext) => void | Promise<void>;

/** The hash link of a route: `link('alerts', id)` → `#/alerts/<id>`, each segment encoded. */
export function link(...segments: string[]): string {
  return `#/${segments.map((s) => encodeURIComponent(s)).join('/')}`;
}

/** A hash link with a query; empty values left out. */
export function linkWithQuery(segments: string[], query: Record<string, string>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== '') q.set(k, v);
  const qs = q.toString();
  return `${link(...segments)}${qs === '' ? '' : `?${qs}`}`;
}
