import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPushpin } from '/work/wt/filters/bench/pushpin.js';
import { startDjangoEventStreamOrigin } from '/work/wt/filters/test/helpers/django-eventstream-origin.js';
import { TEST_SIG_KEY } from '/work/wt/filters/test/helpers/grip-origin.js';
import { openStream, request } from '/work/wt/filters/test/helpers/http.js';
const o = await startDjangoEventStreamOrigin();
const dir = mkdtempSync(join(tmpdir(), 'dbg-'));
const pp = await startPushpin({ originPort: o.port, sigKey: TEST_SIG_KEY, workDir: dir, logLevel: 3 });
o.publishTo(`http://127.0.0.1:${pp.publishPort}/publish/`);
for (let i = 0; i < 30; i++) { const r = await request(`http://127.0.0.1:${pp.clientPort}/events/`); if (r.body.startsWith('event: stream-error')) break; await new Promise(r=>setTimeout(r,200)); }
const s = await openStream(`http://127.0.0.1:${pp.clientPort}/events/?channel=a&channel=b`, { 'X-Test-User': 'alice' });
const PROBE = ': probe\n\n';
for (let i = 0; i < 20 && !s.text.includes(PROBE); i++) {
  await o.publish({ channel: 'user-alice', formats: { 'http-stream': { content: PROBE } } });
  await new Promise(r=>setTimeout(r,100));
}
console.log('probe?', s.text.includes(PROBE), JSON.stringify(s.text.slice(2000)));
await new Promise(r=>setTimeout(r,2000));
console.log(JSON.stringify(o.requests.map(r => [r.url.slice(0,60), r.user, r.isRecover, r.headers['grip-last']])));
await o.sendEvent('a', 'message', { pct: '50%' });
await new Promise(r=>setTimeout(r,1000));
console.log(JSON.stringify(s.text.slice(2000)));
s.close(); await pp.stop(); await o.close();
console.log(dir);
