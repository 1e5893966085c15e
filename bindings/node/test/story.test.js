'use strict';
// The story a CRM team runs from Node, against fathom-sim: connect with an API key, sync, a signed
// webhook mapped by the default Lua into CRM records our async handlers stored, a
// reconnect_required event, and the durable event feed read by cursor across a reopen.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Bridge, FathomBridgeError, version } = require('..');
const { startSim, Crm, startEndpoint, freePort, eventually, config } = require('./helpers');

test('errors carry the code name and the library message', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fb-node-'));
  assert.equal(version(), '0.1.0');
  assert.throws(() => Bridge.open({ tokens: { key: 'x' }, sycn: {}, store: { path: path.join(dir, 'b.db') } }), (e) => {
    assert.ok(e instanceof FathomBridgeError);
    assert.equal(e.code, 'config');
    assert.equal(e.number, 14);
    assert.match(e.message, /sycn/);
    return true;
  });
});

test('the story against fathom-sim', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fb-node-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const sim = await startSim(['--meetings', '12', '--seed', '5', '--redirect-uri', `${base}/oauth/callback`]);
  const endpoint = await startEndpoint(port);
  t.after(async () => { await endpoint.close(); sim.stop(); });
  const cfg = config(dir, sim, base);
  const crm = new Crm();

  const bridge = Bridge.open(cfg);
  endpoint.bridge = bridge;
  const events = [];
  bridge.on('event', (e) => events.push(e));
  for (const op of Crm.OPERATIONS) bridge.crmOperation(op, crm.handler(op));
  const types = () => events.map((e) => e.type);

  // 1. Connect with an API key; a wrong key rejects with the code.
  await assert.rejects(bridge.connectApiKey('acme', 'u-alice', 'fk_not_a_key'), (e) => e.code === 'unauthenticated' && /API key|401|rejected/i.test(e.message));
  const alice = await bridge.connectApiKey('acme', 'u-alice', await sim.apiKey('alice@example.com'));
  assert.ok(alice > 0);

  // 2. Backfill: the event loop stays free while it runs, and the default mapping calls our async
  //    CRM handlers through the queue.
  let ticks = 0;
  const timer = setInterval(() => { ticks += 1; }, 1);
  const job = await bridge.sync('acme', 'u-alice', alice, { mode: 'backfill' });
  clearInterval(timer);
  assert.ok(ticks > 0, 'the event loop ran during the sync');
  assert.equal(job.status, 'succeeded');
  assert.ok(job.meetings_new > 0);
  assert.equal(job.meetings_mapped, job.meetings_new);
  const activities = crm.count('log_activity');
  assert.ok(activities > 0 && activities <= job.meetings_mapped);  // internal-only meetings log none
  assert.ok(crm.count('upsert_company') > 0);
  await assert.rejects(bridge.sync('globex', 'u-alice', alice), (e) => e.code === 'not_found');
  // The same without waiting: the job at once, its progress by id until it ends.
  const started = await bridge.syncStart('acme', 'u-alice', alice);
  assert.ok(['running', 'succeeded'].includes(started.status) && started.progress);
  assert.ok(await eventually(async () => (await bridge.syncJob('acme', 'u-alice', started.id)).status !== 'running'));
  const done = await bridge.syncJob('acme', 'u-alice', started.id);
  assert.equal(done.status, 'succeeded');
  assert.equal(done.progress.covered, 1);
  await assert.rejects(bridge.syncCancel('acme', 'u-alice', started.id), (e) => e.code === 'failed_precondition');
  await assert.rejects(bridge.syncJob('globex', 'u-alice', started.id), (e) => e.code === 'not_found');
  assert.ok(await eventually(() => types().includes('connected') && types().includes('sync_completed')));

  // 3. OAuth connect for bob registers a Fathom webhook at our endpoint.
  // The callback names the CRM user signed in where it arrived: bob's link in eve's session is refused.
  const forwarded = await sim.authorizeAs(await bridge.connectStart('acme', 'u-bob', { popup: false }), 'bob@example.com');
  const foreign = await bridge.connectCallback(new URL(forwarded).search.slice(1), { tenantId: 'acme', userId: 'u-eve' });
  assert.equal(foreign.ok, false);
  assert.equal(foreign.error, 'state_foreign', JSON.stringify(foreign));
  // No user signed in (or a misspelt key): fails closed, never the unchecked callback.
  await assert.rejects(bridge.connectCallback(new URL(forwarded).search.slice(1), { tenantId: 'acme' }),
                       (e) => e.code === 'invalid_argument');
  const url = await bridge.connectStart('acme', 'u-bob', { popup: false });
  const location = await sim.authorizeAs(url, 'bob@example.com');
  const outcome = await bridge.connectCallback(new URL(location).search.slice(1), { tenantId: 'acme', userId: 'u-bob' });
  assert.equal(outcome.ok, true, JSON.stringify(outcome));
  const bob = outcome.integration_id;
  const hooks = await sim.admin('GET', '/_sim/webhooks');
  const list = Array.isArray(hooks) ? hooks : hooks.webhooks;
  // One per connection: alice's API-key connection registers through the API too.
  assert.equal(list.length, 2);
  for (const h of list) assert.ok(h.url.startsWith(`${base}/webhooks/`));

  // 4. A meeting bob recorded completes: the signed webhook reaches our endpoint and the default
  //    Lua maps it into one more activity in our CRM.
  const rec = (await sim.admin('POST', '/_sim/meetings', { count: 1, recorded_by: 'bob@example.com' })).recording_ids[0];
  await sim.admin('POST', `/_sim/meetings/${rec}/complete`);
  assert.ok(await eventually(() => crm.count('log_activity') === activities + 1), 'the webhook was mapped');
  assert.ok(await eventually(async () => (await bridge.webhookEvents({ status: 'done' })).some((e) => e.recording_id === rec)));

  // 5. Bob revokes access at Fathom: the next sync fails and reconnect_required arrives as an event.
  await sim.admin('POST', '/_sim/grants/revoke', { user: 'bob@example.com' });
  await sim.admin('POST', '/_sim/tokens/expire', { user: 'bob@example.com' });
  try {
    const failed = await bridge.sync('acme', 'u-bob', bob);
    assert.notEqual(failed.status, 'succeeded');
  } catch (e) {
    assert.ok(['reconnect_required', 'unauthenticated'].includes(e.code), e.message);
  }
  assert.ok(await eventually(() => types().includes('reconnect_required')), `events: ${types()}`);
  const health = Object.fromEntries((await bridge.tokenHealth('acme')).map((h) => [h.integration_id, h.status]));
  assert.equal(health[bob], 'reconnect_required');
  assert.equal(health[alice], 'valid');

  // 6. The durable feed, by async iterator: the same events with the same ids.
  const feed = [];
  for await (const e of bridge.events({ follow: false })) feed.push(e);
  const ids = feed.map((e) => e.id);
  assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
  for (const e of events) assert.equal(feed.find((f) => f.id === e.id).type, e.type);
  const cursor = ids[ids.length - 1];
  await bridge.close();
  await assert.rejects(bridge.sync('acme', 'u-alice', alice), (e) => e.code === 'misuse');

  // 7. Reopened (a restart): nothing renumbered; the iterator resumes after the cursor.
  const again = Bridge.open(cfg);
  const all = [];
  for await (const e of again.events({ follow: false })) all.push(e);
  assert.deepEqual(all.slice(0, feed.length).map((e) => [e.id, e.type]), feed.map((e) => [e.id, e.type]));
  const newer = [];
  for await (const e of again.events({ after: cursor, follow: false })) newer.push(e);
  assert.deepEqual(newer.map((e) => e.type), ['script_loaded']);
  assert.ok(newer[0].id > cursor);
  await again.close();
});

test('a CRM handler that throws fails the call with its message; the long poll waits without blocking', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fb-node-'));
  const sim = await startSim(['--meetings', '4', '--seed', '3']);
  t.after(() => sim.stop());
  const crm = new Crm();
  const cfg = config(dir, sim, 'http://127.0.0.1:9');
  fs.cpSync(cfg.scripts.dir, path.join(dir, 'scripts'), { recursive: true });
  cfg.scripts.dir = path.join(dir, 'scripts');
  const bridge = Bridge.open(cfg);
  for (const op of Crm.OPERATIONS) bridge.crmOperation(op, crm.handler(op));
  let thrown = 0;
  bridge.crmOperation('log_activity', async () => { thrown += 1; throw new Error('CRM is down for maintenance'); });
  const alice = await bridge.connectApiKey('acme', 'u-alice', await sim.apiKey('alice@example.com'));
  const job = await bridge.sync('acme', 'u-alice', alice, { mode: 'backfill' });
  assert.ok(thrown > 0);
  assert.ok(job.map_failures > 0);
  const last = (await bridge.readEvents(0, { limit: 1000 })).next;
  const poll = bridge.readEvents(last, { waitMs: 20000 });
  let ticks = 0;
  const timer = setInterval(() => { ticks += 1; }, 1);
  await new Promise((r) => setTimeout(r, 100));
  fs.appendFileSync(path.join(dir, 'scripts', 'mapping.lua'), '\n-- edited\n');
  await bridge.reloadScripts();  // a changed script: one script_loaded event
  const page = await poll;
  clearInterval(timer);
  assert.equal(page.events.length, 1);
  assert.equal(page.events[0].type, 'script_loaded');
  assert.equal(page.events[0].id, last + 1);
  assert.ok(ticks > 0);
  await bridge.close();
});
