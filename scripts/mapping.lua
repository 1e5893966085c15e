-- mapping.lua: how a Fathom meeting becomes CRM records.
--
-- fathom-bridge calls on_meeting(meeting, ctx) once per meeting and content version, after the
-- meeting was stored. `meeting` is Fathom's Meeting object as a Lua table (JSON null is
-- json.null; see scripts/README.md). `ctx` says who it is for (ctx.integration_id, ctx.user_id,
-- ctx.company_domains, ctx.dry_run, ...).
--
-- What this script does:
--   1. skips meetings with only internal invitees;
--   2. finds or creates a company per external email domain (matched by domain);
--   3. upserts a contact per external invitee (matched by email) under that company;
--   4. logs one activity for the meeting: title, time, duration, share URL, summary;
--   5. creates a task per open action item, assigned to one of our users (the assignee when
--      internal, otherwise the person who recorded the meeting);
--   6. attaches the recording to the company's open deal (or else the first contact) when the
--      CRM supports attach_recording.
--
-- Every crm.* call carries an idempotency key, so a meeting that is processed again (retry,
-- re-sync) never creates records twice. Edit this file freely: the next event uses the new
-- version; a version with an error is rejected and the previous one keeps running.
-- Check a change before saving it:  fathom-bridge script test scripts/mapping.lua --meeting m.json

-- ---------------------------------------------------------------- settings admins change

-- Meetings where every invitee is one of us create nothing.
local SKIP_INTERNAL_ONLY = true

-- Open action items only (Fathom marks items completed during the meeting).
local SKIP_COMPLETED_ACTION_ITEMS = true

-- Invitees from these domains become contacts without a company.
local PERSONAL_DOMAINS = {
  ["gmail.com"] = true, ["googlemail.com"] = true, ["outlook.com"] = true, ["hotmail.com"] = true,
  ["live.com"] = true, ["yahoo.com"] = true, ["icloud.com"] = true, ["me.com"] = true,
  ["proton.me"] = true, ["protonmail.com"] = true, ["aol.com"] = true, ["gmx.net"] = true,
}

-- The activity keeps at most this many characters of Fathom's summary.
local SUMMARY_MAX_CHARS = 20000
-- At most this many contacts per meeting (a webinar's invitee list): each costs up to three CRM
-- calls, and a meeting's calls must stay under scripts.crm_calls_per_event (1000 by default), or
-- the meeting fails every attempt and is never mapped. The rest are left out, with a warning.
local MAX_CONTACTS = 200

-- ---------------------------------------------------------------- helpers

local present = util.present

-- A JSON array field as a Lua list: missing or null become an empty list.
local function list(value)
  if type(value) == "table" then return value end
  return {}
end

-- A string field, or nil when missing, null or empty.
local function text(value)
  if type(value) == "string" and value ~= "" then return value end
  return nil
end

-- "acme.co" -> "Acme": a readable company name when the CRM has none yet.
local function company_name_from_domain(domain)
  local label = domain:match("^([^.]+)") or domain
  return label:sub(1, 1):upper() .. label:sub(2)
end

-- External invitees with an email, each address once, in invitation order.
local function external_invitees(meeting)
  local seen, result = {}, {}
  for _, invitee in ipairs(list(meeting.calendar_invitees)) do
    local email = text(invitee.email)
    if email and util.is_external(invitee) then
      email = email:lower()
      if not seen[email] then
        if #result >= MAX_CONTACTS then
          log.warn("meeting", meeting.recording_id, "has more than", MAX_CONTACTS,
                   "external invitees; only the first", MAX_CONTACTS, "become contacts")
          break
        end
        seen[email] = true
        result[#result + 1] = { email = email, name = text(invitee.name) }
      end
    end
  end
  return result
end

-- The CRM company for a domain: found by domain, else created. nil for personal domains.
local function company_for(domain, companies)
  if not domain or PERSONAL_DOMAINS[domain] then return nil end
  if companies[domain] then return companies[domain] end
  local company = crm.find_company_by_domain({ domain = domain })
  if not company then
    company = crm.upsert_company({ domain = domain, name = company_name_from_domain(domain) })
  end
  companies[domain] = company
  return company
end

-- Fathom's summary: from the meeting when it came with one, else asked for (which may be
-- refused: rate limits, no access in a dry run); nil when there is none.
local function summary_of(meeting)
  local s = meeting.default_summary
  if not present(s) then
    s = fathom.summary()  -- nil, message, code on failure: the activity simply has no summary
  end
  if type(s) ~= "table" then return nil end
  local md = text(s.markdown_formatted)
  if md and #md > SUMMARY_MAX_CHARS then
    -- Cut on a character: a cut inside a UTF-8 sequence is not text, and the CRM call refuses it.
    local cut = SUMMARY_MAX_CHARS
    while cut > 0 and (md:byte(cut + 1) & 0xC0) == 0x80 do cut = cut - 1 end
    md = md:sub(1, cut) .. "\n..."
  end
  return md
end

-- ---------------------------------------------------------------- the mapping

-- Maps one meeting. opts (optional) lets another rule set reuse this mapping (examples/rules):
--   opts.owner_email(domains, meeting) -> email | nil: who owns the activity and unassigned tasks
--   opts.after(meeting, ctx, result): runs last; result = { companies, contacts, activity,
--     primary_company, primary_contact, owner_email }
local function map(meeting, ctx, opts)
  opts = opts or {}
  if SKIP_INTERNAL_ONLY and meeting.calendar_invitees_domains_type == "only_internal" then
    log.info("skipping internal-only meeting", meeting.recording_id)
    return nil
  end
  local externals = external_invitees(meeting)
  if #externals == 0 then
    log.info("no external invitee with an email in meeting", meeting.recording_id, "- nothing to map")
    return nil
  end

  -- Companies and contacts.
  local companies, contacts, contact_ids, company_ids, seen_company, domains = {}, {}, {}, {}, {}, {}
  local primary_company, primary_contact
  for _, person in ipairs(externals) do
    local domain = util.email_domain(person.email)
    domains[#domains + 1] = domain
    local company = company_for(domain, companies)
    local contact = crm.upsert_contact({
      email = person.email,
      name = person.name,
      company_id = company and company.id or nil,
    })
    contacts[#contacts + 1] = contact
    contact_ids[#contact_ids + 1] = contact.id
    primary_contact = primary_contact or contact
    if company and not seen_company[company.id] then
      seen_company[company.id] = true
      company_ids[#company_ids + 1] = company.id
      primary_company = primary_company or company
    end
  end

  -- Who owns the activity: a rule's choice, else the person who recorded the meeting.
  local recorder = present(meeting.recorded_by) and meeting.recorded_by or {}
  local owner_email = (opts.owner_email and opts.owner_email(domains, meeting)) or text(recorder.email)
  if type(owner_email) == "string" then owner_email = owner_email:lower() end  -- one user, one address

  -- One activity for the meeting.
  local started = text(meeting.recording_start_time) or text(meeting.scheduled_start_time)
  local ended = text(meeting.recording_end_time) or text(meeting.scheduled_end_time)
  local duration = started and ended and util.duration(started, ended) or nil
  local activity = crm.log_activity({
    type = "meeting",
    title = text(meeting.title) or text(meeting.meeting_title) or "Fathom meeting",
    started_at = started,
    ended_at = ended,
    duration_s = duration,
    share_url = text(meeting.share_url),
    url = text(meeting.url),
    summary = summary_of(meeting),
    recording_id = meeting.recording_id,
    owner_email = owner_email,
    contact_ids = json.array(contact_ids),
    company_ids = json.array(company_ids),
  })

  -- A task per action item, for one of our users: the assignee when internal, else the owner.
  for _, item in ipairs(list(meeting.action_items)) do
    if not (SKIP_COMPLETED_ACTION_ITEMS and item.completed == true) and text(item.description) then
      local assignee = present(item.assignee) and text(item.assignee.email) or nil
      assignee = assignee and assignee:lower()
      if not (assignee and util.is_internal(assignee)) then assignee = owner_email end
      crm.create_task({
        title = item.description,
        assignee_email = assignee,
        activity_id = activity.id,
        recording_id = meeting.recording_id,
        playback_url = text(item.recording_playback_url),
      })
    end
  end

  -- The recording on the company's deal (or else the first contact), where the CRM supports it.
  if crm.has("attach_recording") then
    local deal = nil
    if primary_company and crm.has("find_deal") then deal = crm.find_deal({ company_id = primary_company.id }) end
    local record_type, record_id = "contact", primary_contact.id
    if deal then record_type, record_id = "deal", deal.id end
    crm.attach_recording({
      record_type = record_type,
      record_id = record_id,
      recording_id = meeting.recording_id,
      share_url = text(meeting.share_url),
      title = text(meeting.title),
    })
  end

  local result = {
    companies = companies, contacts = contacts, activity = activity, primary_company = primary_company,
    primary_contact = primary_contact, owner_email = owner_email,
  }
  if opts.after then opts.after(meeting, ctx, result) end
  return result
end

-- ---------------------------------------------------------------- the hook

function on_meeting(meeting, ctx)
  map(meeting, ctx)
end

-- Other rule sets can build on this one: local default = require("mapping")
return { map = map, on_meeting = on_meeting }
