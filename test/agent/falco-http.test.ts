import test from 'ava';
import { request } from 'node:http';
import { createFalcoHttpReceiver } from '../../agent/sources/falco-http.js';
import { at, falcoLine } from '../helpers/falco.js';
import { testSourceContext } from '../helpers/source-context.js';

function post(port: number, body: string | Buffer, method = 'POST'): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path: '/', headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('answers 200 only after the batch is acknowledged; 4xx for bad requests', async (t) => {
  const ctx = testSourceContext({ maxRecordBytes: 64 * 1024 });
  const rx = createFalcoHttpReceiver('falco-http:test', '127.0.0.1:0', ctx);
  const ac = new AbortController();
  const iter = rx.batches(ac.signal)[Symbol.asyncIterator]();
  const firstBatch = iter.next();
  // The server listens once iteration has started: wait for its port rather than for a fixed time.
  while (rx.port() === 0) await new Promise((r) => setTimeout(r, 10));
  const port = rx.port();

  let answered = false;
  const pending = post(port, falcoLine({ time: at(0), fields: { 'proc.pid': 7 } })).then((r) => {
    answered = true;
    return r;
  });
  const batch = await firstBatch;
  t.false(batch.done);
  t.deepEqual(batch.value.events.map((e: { process: { pid: number } }) => e.process.pid), [7]);
  await new Promise((r) => setTimeout(r, 50));
  t.false(answered, 'no answer before the ack');
  batch.value.ack();
  t.is((await pending).status, 200);

  t.is((await post(port, 'not json')).status, 400);
  t.is((await post(port, Buffer.from([0x7b, 0xff, 0x7d]))).status, 400);
  t.is((await post(port, 'x'.repeat(100 * 1024))).status, 413);
  t.is((await post(port, '', 'GET')).status, 405);
  t.deepEqual(ctx.rejects.sort(), ['invalid_utf8', 'not_json', 'too_large']);
  ac.abort();
  await iter.return?.();
});
