'use strict';
// Test fixtures: fathom-sim on loopback, a CRM that stores what the scripts send it (async, as a
// real CRM client is), and the host's webhook endpoint, which hands deliveries to the bridge.
// Environment (set by CTest): FATHOM_BRIDGE_LIBRARY, FATHOM_SIM_BIN, FB_SOURCE_DIR.
const { spawn } = require('node:child_process');
const http = require('node:http');
const path = require('node:path');
const readline = require('node:readline');

const SOURCE_DIR = process.env.FB_SOURCE_DIR || path.resolve(__dirname, '../../..');
const TOKEN_KEY = Buffer.alloc(32, 'n').toString('base64');

async function startSim(args) {
  const bin = process.env.FATHOM_SIM_BIN;
  if (!bin) throw new Error('FATHOM_SIM_BIN must name the fathom-sim binary');
  const proc = spawn(bin, ['--port', '0', '--quiet', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: proc.stdout });
    rl.once('line', (l) => { rl.close(); resolve(l); });
    proc.once('exit', (code) => reject(new Error(`fathom-sim exited with ${code}`)));
  });
  const base = line.split('listening on ')[1].trim();
  const admin = async (method, p, body) => {
    const r = await fetch(base + p, { method, headers: { 'Content-Type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${await r.text()}`);
    const text = await r.text();
    return text ? JSON.parse(text) : null;
  };
  return {
    base, admin,
    async apiKey(email) {
      const users = await admin('GET', '/_sim/users');
      return (Array.isArray(users) ? users : users.users).find((u) => u.email === email).api_key;
    },
    // Plays the browser at Fathom's consent page; returns the redirect's Location.
    async authorizeAs(url, email) {
      const page = await fetch(url);
      if (page.status !== 200) throw new Error(`consent page ${page.status}`);
      const form = new URLSearchParams(new URL(url).searchParams);
      form.append('user', email);
      form.append('decision', 'approve');
      const r = await fetch(base + '/external/v1/oauth2/authorize', { method: 'POST', body: form, redirect: 'manual' });
      if (r.status !== 302) throw new Error(`consent answered ${r.status}`);
      return r.headers.get('location');
    },
    stop() { proc.kill('SIGTERM'); },
  };
}

class Crm {
  static OPERATIONS = ['find_company_by_domain', 'find_contact_by_email', 'find_deal', 'upsert_company', 'upsert_contact',
    'log_activity', 'create_task', 'create_deal', 'attach_recording'];

  constructor() { this.records = new Map(); this.byKey = new Map(); this.seq = 0; }

  handler(operation) {
    return async (args, call) => {
      await new Promise((r) => setImmediate(r));  // a real CRM client answers later
      if (this.byKey.has(call.idempotencyKey)) return this.byKey.get(call.idempotencyKey);
      let result = null;
      if (!operation.startsWith('find_')) {
        this.seq += 1;
        if (!this.records.has(operation)) this.records.set(operation, []);
        this.records.get(operation).push(args);
        result = { id: `${operation}_${this.seq}` };
      }
      this.byKey.set(call.idempotencyKey, result);
      return result;
    };
  }

  count(op) { return (this.records.get(op) || []).length; }
}

// The host's HTTP server: POST /webhooks/... goes to bridge.webhookReceive().
function startEndpoint(port) {
  const endpoint = { bridge: null };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const reply = await endpoint.bridge.webhookReceive(req.url, req.headers, Buffer.concat(chunks));
      res.writeHead(reply.status);
      res.end(reply.body);
    });
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => {
    endpoint.port = server.address().port;
    endpoint.close = () => new Promise((r) => server.close(r));
    resolve(endpoint);
  }));
}

function freePort() {
  return new Promise((resolve) => {
    const s = http.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

async function eventually(cond, timeoutMs = 30000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}

function config(dir, sim, base) {
  return {
    fathom: {
      client_id: 'sim-client', client_secret: 'sim-secret', redirect_uri: `${base}/oauth/callback`,
      authorize_url: `${sim.base}/external/v1/oauth2/authorize`, token_url: `${sim.base}/external/v1/oauth2/token`,
      api_base: `${sim.base}/external/v1`,
    },
    frontend: { url: base },
    tokens: { key: TOKEN_KEY },
    webhooks: { public_base_url: base },
    store: { path: path.join(dir, 'bridge.db') },
    scripts: { dir: path.join(SOURCE_DIR, 'scripts') },
    sync: { scheduler: false },
    log_level: 'warn',
  };
}

module.exports = { startSim, Crm, startEndpoint, freePort, eventually, config };
