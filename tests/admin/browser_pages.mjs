// Loads every admin page of a running service in headless Chromium over
// the DevTools protocol and fails on a console error, an uncaught
// exception, a failed request, a policy violation or a broken element;
// saves one screenshot per page.
//
//   node --experimental-websocket browser_pages.mjs SERVER_PROGRAM OUT_DIR
//
// Only node's own modules: fetch, WebSocket (experimental in node 20) and
// child_process. Every wait is bounded; nothing measures speed.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [server, outDir] = process.argv.slice(2);
const PAGES = ['', 'registry', 'balancers', 'breakers', 'pools', 'work', 'requests', 'tracez',
               'config', 'loglevel', 'limits', 'example'];
const STEP_MS = 30000;
const children = [];
let profile;

function fail(msg) {
  console.error(`FAIL: ${msg}`);
  cleanup();
  process.exit(1);
}

function cleanup() {
  for (const c of children) {
    if (c.exitCode === null) c.kill('SIGTERM');
  }
  if (profile) rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
}

function within(ms, what, p) {
  let t;
  const timer = new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`timed out: ${what}`)), ms); });
  return Promise.race([p, timer]).finally(() => clearTimeout(t));
}

// Starts a program and resolves with the first stream line matching re.
function startAndWait(cmd, args, stream, re, what) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return within(STEP_MS, what, new Promise((resolve, reject) => {
    let buf = '';
    child[stream].on('data', (d) => {
      buf += d.toString();
      const m = buf.match(re);
      if (m) resolve(m);
    });
    child.on('exit', (code) => reject(new Error(`${what}: exited with ${code}: ${buf.slice(-500)}`)));
  }));
}

class Cdp {
  constructor(url) {
    this.ws = new WebSocket(url);
    this.id = 0;
    this.pending = new Map();
    this.listeners = [];
    this.ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.id !== undefined && this.pending.has(msg.id)) {
        const { resolve, reject } = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.error) reject(new Error(JSON.stringify(msg.error)));
        else resolve(msg.result);
      } else if (msg.method) {
        for (const l of this.listeners) l(msg);
      }
    };
  }
  open() {
    return within(STEP_MS, 'DevTools connection', new Promise((resolve, reject) => {
      this.ws.onopen = resolve;
      this.ws.onerror = () => reject(new Error('DevTools websocket error'));
    }));
  }
  send(method, params = {}, sessionId) {
    const id = ++this.id;
    const msg = { id, method, params };
    if (sessionId) msg.sessionId = sessionId;
    this.ws.send(JSON.stringify(msg));
    return within(STEP_MS, method, new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
    }));
  }
  waitFor(method, sessionId) {
    return within(STEP_MS, method, new Promise((resolve) => {
      const l = (msg) => {
        if (msg.method === method && msg.sessionId === sessionId) {
          this.listeners = this.listeners.filter((x) => x !== l);
          resolve(msg.params);
        }
      };
      this.listeners.push(l);
    }));
  }
}

// What a page must look like once loaded: run inside the page.
const CHECK = `(() => {
  const bad = [];
  for (const img of document.images)
    if (!img.complete || img.naturalWidth === 0) bad.push('broken image ' + img.src);
  for (const a of document.querySelectorAll('a[href]')) {
    const u = new URL(a.href, location.href);
    if (u.origin !== location.origin) bad.push('external link ' + a.href);
  }
  for (const el of document.querySelectorAll('link[rel=stylesheet], script[src], iframe'))
    bad.push('external asset ' + el.outerHTML.slice(0, 80));
  for (const svg of document.querySelectorAll('svg')) {
    const b = svg.getBBox();
    if (!(b.width > 0 && b.height > 0)) bad.push('empty chart');
  }
  if (!document.querySelector('h1') || !document.querySelector('nav a.cur'))
    bad.push('missing heading or navigation');
  if (document.body.innerText.includes('[object Object]') ||
      document.body.innerText.includes('undefined'))
    bad.push('raw placeholder text');
  return JSON.stringify({ bad, title: document.title, h1: document.querySelector('h1')?.textContent });
})()`;

async function main() {
  if (!server || !outDir) fail('usage: browser_pages.mjs SERVER_PROGRAM OUT_DIR');
  mkdirSync(outDir, { recursive: true });
  const ports = await startAndWait(server, [], 'stdout', /admin=(\d+) public=(\d+)/, 'the service');
  const service = children[0];
  // Its reports (a sanitizer's, say) go into this test's output.
  service.stderr.on('data', (d) => process.stderr.write(d));
  const admin = `http://127.0.0.1:${ports[1]}`;
  const pub = `http://127.0.0.1:${ports[2]}`;
  // Traffic, so that charts, breakers and balancers have something to show.
  for (let i = 0; i < 12; i++) {
    await fetch(`${pub}/go`).then((r) => r.text());
    await fetch(`${pub}/hello`).then((r) => r.text());
  }
  for (const p of PAGES) {
    const r = await fetch(`${admin}/debug/${p}?format=json`);
    if (r.status !== 200) fail(`/debug/${p}?format=json answered ${r.status}`);
    await r.json();
  }

  profile = mkdtempSync(join(tmpdir(), 'msvc-admin-chromium-'));
  const m = await startAndWait(process.env.CHROMIUM || 'chromium', [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
    '--no-first-run', '--no-default-browser-check', '--disable-extensions',
    '--hide-scrollbars', '--remote-debugging-port=0', `--user-data-dir=${profile}`,
    '--window-size=1200,800', 'about:blank'], 'stderr', /DevTools listening on (ws:\/\/\S+)/,
    'chromium');
  const cdp = new Cdp(m[1]);
  await cdp.open();
  const { targetId } = await cdp.send('Target.createTarget', { url: 'about:blank' });
  const { sessionId } = await cdp.send('Target.attachToTarget', { targetId, flatten: true });
  const problems = [];
  cdp.listeners.push((msg) => {
    if (msg.sessionId !== sessionId) return;
    const p = msg.params;
    if (msg.method === 'Runtime.consoleAPICalled' && (p.type === 'error' || p.type === 'assert'))
      problems.push(`console ${p.type}: ${JSON.stringify(p.args)}`);
    else if (msg.method === 'Runtime.exceptionThrown')
      problems.push(`exception: ${p.exceptionDetails.text}`);
    else if (msg.method === 'Log.entryAdded' && (p.entry.level === 'error' || p.entry.level === 'warning'))
      problems.push(`log ${p.entry.level}: ${p.entry.text} ${p.entry.url || ''}`);
    else if (msg.method === 'Network.loadingFailed')
      problems.push(`request failed: ${p.errorText}`);
    else if (msg.method === 'Network.responseReceived' && p.response.status >= 400)
      problems.push(`HTTP ${p.response.status} for ${p.response.url}`);
  });
  for (const d of ['Page', 'Runtime', 'Log', 'Network'])
    await cdp.send(`${d}.enable`, {}, sessionId);

  for (const p of PAGES) {
    const url = `${admin}/debug/${p}`;
    const before = problems.length;
    const loaded = cdp.waitFor('Page.loadEventFired', sessionId);
    await cdp.send('Page.navigate', { url }, sessionId);
    await loaded;
    const res = await cdp.send('Runtime.evaluate', { expression: CHECK, returnByValue: true }, sessionId);
    const check = JSON.parse(res.result.value);
    for (const b of check.bad) problems.push(`${url}: ${b}`);
    const shot = await cdp.send('Page.captureScreenshot', { format: 'png' }, sessionId);
    const file = join(outDir, `admin-${p || 'overview'}.png`);
    writeFileSync(file, Buffer.from(shot.data, 'base64'));
    console.log(`ok ${url} "${check.h1}" -> ${file}${problems.length > before ? ' (problems)' : ''}`);
  }
  // The log level form changes the level and comes back to its page.
  const onForm = cdp.waitFor('Page.loadEventFired', sessionId);
  await cdp.send('Page.navigate', { url: `${admin}/debug/loglevel` }, sessionId);
  await onForm;
  const loaded = cdp.waitFor('Page.loadEventFired', sessionId);
  await cdp.send('Runtime.evaluate', {
    expression: `document.getElementById('lv').value='debug'; document.querySelector('form').submit()`,
  }, sessionId);
  await loaded.catch((e) => problems.push(`log level form: ${e.message}`));
  const lv = await (await fetch(`${admin}/debug/loglevel?format=json`)).json();
  if (lv.level !== 'debug') problems.push(`log level form: level is ${lv.level}`);

  const browser = children[children.length - 1];
  const gone = new Promise((resolve) => browser.on('exit', resolve));
  await cdp.send('Browser.close').catch(() => {});
  await within(STEP_MS, 'chromium to exit', gone).catch(() => browser.kill('SIGKILL'));
  // The service stops cleanly on SIGTERM, like any libmsvc service.
  const stopped = new Promise((resolve) => service.on('exit', (code, sig) => resolve({ code, sig })));
  service.kill('SIGTERM');
  const end = await within(STEP_MS, 'the service to stop', stopped);
  if (end.code !== 0) problems.push(`the service exited with ${end.code ?? end.sig}`);
  if (problems.length) fail(problems.join('\n'));
  cleanup();
  console.log(`all ${PAGES.length} pages clean`);
}

main().catch((e) => fail(e.stack || String(e)));
