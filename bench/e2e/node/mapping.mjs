// mapping.mjs: scripts/mapping.lua ported to JavaScript for the Node receiver (bench/e2e system c),
// step for step, with the same CRM calls and arguments, so every system writes the same CRM rows.
// `crm` has the CRM operations as functions; `domains` are our own email domains
// (scripts.company_domains in the bridge's config), each through normalizeDomain.

import { domainToUnicode } from 'node:url';

const PERSONAL_DOMAINS = new Set(['gmail.com', 'googlemail.com', 'outlook.com', 'hotmail.com', 'live.com',
  'yahoo.com', 'icloud.com', 'me.com', 'proton.me', 'protonmail.com', 'aol.com', 'gmx.net']);
const SUMMARY_MAX_BYTES = 20000;
const MAX_CONTACTS = 200;  // as scripts/mapping.lua: a meeting's CRM calls stay under the script cap

const present = (v) => v !== undefined && v !== null;
const list = (v) => (Array.isArray(v) ? v : []);
const text = (v) => (typeof v === 'string' && v !== '' ? v : null);

// util.email_domain: the lowercase domain after the last '@', trailing dots/spaces dropped, an
// internationalised one in its Unicode form; null without one or without a dot. The bridge uses
// libidn2 (IDNA2008); Node's URL host parser is more lenient, so only names that are plainly host
// names are decoded here, and a decoding that leaves only ASCII is refused. For ASCII names without
// "xn--" (every name bench/e2e sends) both give the same.
const INTERNATIONAL = /[^\x00-\x7f]|(^|\.)xn--/;
const HOST_NAME = /^([a-z0-9_-]|[^\x00-\x7f])+(\.([a-z0-9_-]|[^\x00-\x7f])+)*$/;
export function normalizeDomain(d) {
  const low = d.replace(/[A-Z]+/g, (s) => s.toLowerCase());  // ASCII only, as the bridge
  if (!INTERNATIONAL.test(low) || !HOST_NAME.test(low) || /\.[0-9]+$/.test(low)) return low;
  const unicode = domainToUnicode(low).replace(/\.+$/, '');
  return unicode === '' || !/[^\x00-\x7f]/.test(unicode) ? low : unicode;
}

export function emailDomain(email) {
  if (typeof email !== 'string') return null;
  const at = email.lastIndexOf('@');
  if (at <= 0 || at + 1 >= email.length) return null;
  const d = email.slice(at + 1).replace(/[. ]+$/, '');
  return d === '' || !d.includes('.') ? null : normalizeDomain(d);
}

// domains: normalised once by the caller (normalizeDomain), as the receiver does at start-up.
function inDomains(domain, domains) {
  return domains.some((o) => domain === o || domain.endsWith('.' + o));
}

// util.is_internal / util.is_external with configured domains: unknown (no email) is neither.
const isInternal = (email, domains) => { const d = emailDomain(email); return d !== null && inDomains(d, domains); };
const isExternal = (email, domains) => { const d = emailDomain(email); return d !== null && !inDomains(d, domains); };

// util.duration: whole seconds between two ISO 8601 times, null when either is malformed.
function duration(from, to) {
  const a = Date.parse(from), b = Date.parse(to);
  if (Number.isNaN(a) || Number.isNaN(b)) return null;
  return Math.floor(b / 1000) - Math.floor(a / 1000);
}

function companyNameFromDomain(domain) {
  const label = domain.split('.')[0] || domain;
  return label.replace(/^[a-z]/, (c) => c.toUpperCase());  // the first byte, ASCII only, as Lua's upper()
}

function externalInvitees(meeting, domains) {
  const seen = new Set(), result = [];
  for (const invitee of list(meeting.calendar_invitees)) {
    let email = text(invitee.email);
    if (email && isExternal(email, domains)) {
      email = email.toLowerCase();
      if (!seen.has(email)) {
        if (result.length >= MAX_CONTACTS) break;
        seen.add(email);
        result.push({ email, name: text(invitee.name) });
      }
    }
  }
  return result;
}

function companyFor(crm, domain, companies) {
  if (!domain || PERSONAL_DOMAINS.has(domain)) return null;
  if (companies.has(domain)) return companies.get(domain);
  let company = crm.find_company_by_domain({ domain });
  if (!company) company = crm.upsert_company({ domain, name: companyNameFromDomain(domain) });
  companies.set(domain, company);
  return company;
}

function summaryOf(meeting) {
  const s = meeting.default_summary;
  if (!present(s) || typeof s !== 'object') return null;  // no Fathom API here: no summary
  let md = text(s.markdown_formatted);
  if (md && Buffer.byteLength(md) > SUMMARY_MAX_BYTES) {
    const bytes = Buffer.from(md);
    let cut = SUMMARY_MAX_BYTES;
    while (cut > 0 && (bytes[cut] & 0xc0) === 0x80) cut--;  // on a character, as the Lua mapping
    md = bytes.subarray(0, cut).toString() + '\n...';
  }
  return md;
}

// Maps one meeting through crm; returns null when there is nothing to map.
export function mapMeeting(meeting, crm, domains) {
  if (meeting.calendar_invitees_domains_type === 'only_internal') return null;
  const externals = externalInvitees(meeting, domains);
  if (externals.length === 0) return null;

  const companies = new Map(), contactIds = [], companyIds = [], seenCompany = new Set();
  let primaryCompany = null, primaryContact = null;
  for (const person of externals) {
    const company = companyFor(crm, emailDomain(person.email), companies);
    const contact = crm.upsert_contact({ email: person.email, name: person.name, company_id: company ? company.id : null });
    contactIds.push(contact.id);
    primaryContact = primaryContact || contact;
    if (company && !seenCompany.has(company.id)) {
      seenCompany.add(company.id);
      companyIds.push(company.id);
      primaryCompany = primaryCompany || company;
    }
  }

  const recorder = present(meeting.recorded_by) ? meeting.recorded_by : {};
  const ownerEmail = text(recorder.email)?.toLowerCase() ?? null;
  const started = text(meeting.recording_start_time) || text(meeting.scheduled_start_time);
  const ended = text(meeting.recording_end_time) || text(meeting.scheduled_end_time);
  const activity = crm.log_activity({
    type: 'meeting',
    title: text(meeting.title) || text(meeting.meeting_title) || 'Fathom meeting',
    started_at: started,
    ended_at: ended,
    duration_s: started && ended ? duration(started, ended) : null,
    share_url: text(meeting.share_url),
    url: text(meeting.url),
    summary: summaryOf(meeting),
    recording_id: meeting.recording_id,
    owner_email: ownerEmail,
    contact_ids: contactIds,
    company_ids: companyIds,
  });

  for (const item of list(meeting.action_items)) {
    if (item.completed !== true && text(item.description)) {
      let assignee = present(item.assignee) ? text(item.assignee.email)?.toLowerCase() ?? null : null;
      if (!(assignee && isInternal(assignee, domains))) assignee = ownerEmail;
      crm.create_task({
        title: item.description,
        assignee_email: assignee,
        activity_id: activity.id,
        recording_id: meeting.recording_id,
        playback_url: text(item.recording_playback_url),
      });
    }
  }

  const deal = primaryCompany ? crm.find_deal({ company_id: primaryCompany.id }) : null;
  crm.attach_recording({
    record_type: deal ? 'deal' : 'contact',
    record_id: deal ? deal.id : primaryContact.id,
    recording_id: meeting.recording_id,
    share_url: text(meeting.share_url),
    title: text(meeting.title),
  });
  return activity;
}
