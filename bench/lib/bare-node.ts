/** The memory floor: RSS of an idle Node.js process that loads nothing. */
import { spawnNode } from './procs.js';
import { rssOf, sleep } from './measure.js';

export async function bareNodeRss(): Promise<number> {
  const p = spawnNode('-e', ['setInterval(() => {}, 1000); console.log(JSON.stringify({ msg: "up" }))']);
  await p.waitForLog((l) => l.msg === 'up');
  await sleep(1_000);
  const rss = rssOf(p.pid);
  await p.stop('SIGKILL');
  return rss;
}
