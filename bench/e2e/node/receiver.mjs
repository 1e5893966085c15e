// receiver.mjs: bench/e2e system (c), a Fathom webhook receiver written the way a TypeScript team
// would: node:http, the official `standardwebhooks` package to verify, the default mapping ported
// to JS (mapping.mjs), better-sqlite3 with one transaction per delivery; answers 204 once the
// delivery's CRM rows are committed. The CRM tables are bench/e2e/crm_schema.sql, the same as the
// C++ systems', with the same upserts as crm_tables.cpp.
//
//   node receiver.mjs --db FILE --schema FILE --secret whsec_... [--domains example.com,...]
// First stdout line: "listening <port>".
import http from 'node:http';
import fs from 'node:fs';
import Database from 'better-sqlite3';
import { Webhook } from 'standardwebhooks';
import { mapMeeting, normalizeDomain } from './mapping.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};

const db = new Database(arg('--db'));
db.exec(fs.readFileSync(arg('--schema'), 'utf8'));
const domains = arg('--domains', 'example.com').split(',').map(normalizeDomain);
const wh = new Webhook(arg('--secret').replace(/^whsec_/, ''));

const q = {
  findCompany: db.prepare('SELECT id, domain, name FROM companies WHERE domain = ?'),
  upsertCompany: db.prepare(`INSERT INTO companies (id, domain, name) VALUES (?, ?, ?)
    ON CONFLICT (domain) DO UPDATE SET name = coalesce(excluded.name, companies.name)`),
  findContact: db.prepare('SELECT id, email, name, company_id FROM contacts WHERE email = ?'),
  upsertContact: db.prepare(`INSERT INTO contacts (id, email, name, company_id) VALUES (?, ?, ?, ?)
    ON CONFLICT (email) DO UPDATE SET name = coalesce(excluded.name, contacts.name),
    company_id = coalesce(excluded.company_id, contacts.company_id)`),
  logActivity: db.prepare(`INSERT INTO activities (id, recording_id, type, title, started_at, ended_at, duration_s,
    share_url, url, summary, owner_email, contact_ids, company_ids) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET type = excluded.type, title = excluded.title, started_at = excluded.started_at,
    ended_at = excluded.ended_at, duration_s = excluded.duration_s, share_url = excluded.share_url,
    url = excluded.url, summary = excluded.summary, owner_email = excluded.owner_email,
    contact_ids = excluded.contact_ids, company_ids = excluded.company_ids`),
  createTask: db.prepare(`INSERT INTO tasks (id, activity_id, recording_id, title, assignee_email, playback_url)
    VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET assignee_email = excluded.assignee_email,
    playback_url = excluded.playback_url`),
  attach: db.prepare(`INSERT INTO attachments (id, record_type, record_id, recording_id, share_url, title)
    VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET share_url = excluded.share_url, title = excluded.title`),
};

const n = (v) => (v === undefined ? null : v);
const crm = {
  find_company_by_domain: ({ domain }) => q.findCompany.get(domain) || null,
  upsert_company: ({ domain, name }) => {
    q.upsertCompany.run('co:' + domain, domain, n(name));
    return { id: 'co:' + domain, domain, name: n(name) };
  },
  upsert_contact: ({ email, name, company_id }) => {
    q.upsertContact.run('ct:' + email, email, n(name), n(company_id));
    return { id: 'ct:' + email, email };
  },
  log_activity: (a) => {
    const id = 'act:' + a.recording_id;
    q.logActivity.run(id, a.recording_id, a.type, n(a.title), n(a.started_at), n(a.ended_at), n(a.duration_s),
      n(a.share_url), n(a.url), n(a.summary), n(a.owner_email), JSON.stringify(a.contact_ids),
      JSON.stringify(a.company_ids));
    return { id };
  },
  create_task: (t) => {
    const id = 'task:' + t.activity_id + ':' + t.title;
    q.createTask.run(id, t.activity_id, t.recording_id, t.title, n(t.assignee_email), n(t.playback_url));
    return { id };
  },
  find_deal: () => null,  // this CRM keeps no deals
  attach_recording: (a) => {
    const id = `att:${a.record_type}:${a.record_id}:${a.recording_id}`;
    q.attach.run(id, a.record_type, a.record_id, a.recording_id, n(a.share_url), n(a.title));
    return { id };
  },
};

const mapInTransaction = db.transaction((meeting) => mapMeeting(meeting, crm, domains));

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let meeting;
    try {
      meeting = wh.verify(Buffer.concat(chunks).toString('utf8'), req.headers);
    } catch (e) {
      res.writeHead(401, { 'content-type': 'text/plain' });
      res.end(String(e.message || e));
      return;
    }
    try {
      mapInTransaction(meeting);
      res.writeHead(204);
      res.end();
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(e.message || e));
    }
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => { server.close(); db.close(); process.exit(0); });
