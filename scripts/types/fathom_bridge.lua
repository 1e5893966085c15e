---@meta
-- Type stubs for lua-language-server (https://luals.github.io): the meeting table, ctx, the hooks
-- and every module fathom-bridge gives scripts (scripts/README.md is the reference). Editors that
-- open this folder read them through ../.luarc.json; fathom-bridge never runs this file (a file
-- starting with ---@meta is skipped by `script import`, and nothing requires it).

---@class fb.Person
---@field name string|nil
---@field email string|nil
---@field email_domain string|nil
---@field team string|nil

---@class fb.Invitee: fb.Person
---@field is_external boolean|nil
---@field matched_speaker_display_name string|nil

---@class fb.Summary
---@field template_name string|nil
---@field markdown_formatted string|nil

---@class fb.ActionItem
---@field description string
---@field completed boolean|nil
---@field assignee fb.Person|nil
---@field recording_playback_url string|nil
---@field recording_timestamp string|nil
---@field user_generated boolean|nil

---@class fb.Speaker
---@field display_name string|nil
---@field matched_calendar_invitee_email string|nil

---@class fb.TranscriptLine
---@field speaker fb.Speaker
---@field text string
---@field timestamp string "00:10:45"

---@class fb.CrmMatches
---@field contacts table[]|nil
---@field companies table[]|nil
---@field deals table[]|nil
---@field error string|nil

--- Fathom's Meeting object as a Lua table. JSON null is `json.null`, not nil: test with util.present.
---@class fb.Meeting
---@field title string
---@field meeting_title string|nil
---@field recording_id integer
---@field url string
---@field share_url string
---@field created_at string ISO 8601
---@field scheduled_start_time string|nil
---@field scheduled_end_time string|nil
---@field recording_start_time string|nil
---@field recording_end_time string|nil
---@field calendar_invitees_domains_type "only_internal"|"one_or_more_external"|nil
---@field transcript_language string|nil
---@field calendar_invitees fb.Invitee[]
---@field recorded_by fb.Person
---@field default_summary fb.Summary|nil
---@field action_items fb.ActionItem[]|nil
---@field transcript fb.TranscriptLine[]|nil
---@field crm_matches fb.CrmMatches|nil

--- What an event is about (every hook's last argument).
---@class fb.Ctx
---@field hook string "on_meeting", "on_webhook", "on_connect", ...
---@field integration_id integer
---@field tenant_id string
---@field user_id string
---@field recording_id integer meeting hooks (0 otherwise)
---@field content_version integer meeting hooks (0 otherwise)
---@field event_id string stable for this occurrence across retries
---@field source "sync"|"webhook"|"event"|"dry_run"|"validate"
---@field company_domains string[]
---@field dry_run boolean

---@class fb.Integration
---@field id integer
---@field tenant_id string
---@field user_id string

-- Hooks a script may define (globals at its top level).
---@alias fb.MeetingHook fun(meeting: fb.Meeting, ctx: fb.Ctx)
---@alias fb.IntegrationHook fun(integration: fb.Integration, ctx: fb.Ctx)
---@alias fb.TokenFailureHook fun(integration: fb.Integration, reason: string, ctx: fb.Ctx)
---@alias fb.SyncHook fun(summary: table, ctx: fb.Ctx)

--- The host's CRM operations. Each `crm.<operation>(args)` returns the result table, or nil when
--- the CRM answered null ("not found"); it raises on a CRM failure.
---@class fb.crm
---@field find_company_by_domain fun(args: {domain: string}): table|nil
---@field upsert_company fun(args: {domain: string, name?: string}): table
---@field find_contact_by_email fun(args: {email: string}): table|nil
---@field upsert_contact fun(args: {email: string, name?: string, company_id?: string}): table
---@field log_activity fun(args: table): table
---@field create_task fun(args: table): table
---@field find_deal fun(args: {company_id: string}): table|nil
---@field create_deal fun(args: table): table
---@field attach_recording fun(args: table): table
crm = {}
--- Same as crm.<operation>(args).
---@param operation string
---@param args table
---@return table|nil
function crm.call(operation, args) end
--- Never raises for a CRM failure: result, or nil, message, code.
---@param operation string
---@param args table
---@return table|nil result
---@return string|nil message
---@return string|nil code
function crm.try(operation, args) end
---@param operation string
---@return boolean
function crm.has(operation) end
---@return string[]
function crm.operations() end

--- Read-only access to a recording's content (at most scripts.fathom_calls_per_event per event).
fathom = {}
---@param recording_id? integer defaults to the event's meeting
---@return fb.TranscriptLine[]|nil lines
---@return string|nil message
---@return string|nil code
function fathom.transcript(recording_id) end
---@param recording_id? integer
---@return fb.Summary|nil summary
---@return string|nil message
---@return string|nil code
function fathom.summary(recording_id) end

json = {}
--- The JSON null sentinel.
json.null = {}
---@param value any
---@return string
function json.encode(value) end
---@param text string
---@return any value
---@return string|nil message
---@return string|nil code
function json.decode(text) end
---@generic T: table
---@param t? T
---@return T
function json.array(t) end
---@param v any
---@return boolean
function json.is_null(v) end

util = {}
---@param email_or_invitee string|fb.Person
---@return string|nil
function util.email_domain(email_or_invitee) end
---@param email_or_invitee string|fb.Person
---@param domains? string[]
---@return boolean
function util.is_internal(email_or_invitee, domains) end
---@param email_or_invitee string|fb.Person
---@param domains? string[]
---@return boolean
function util.is_external(email_or_invitee, domains) end
---@param iso string|number
---@return integer|nil seconds
---@return string|nil message
---@return string|nil code
function util.parse_time(iso) end
---@param seconds number
---@return string
function util.format_time(seconds) end
---@param from string|number
---@param to string|number
---@return integer|nil seconds
---@return string|nil message
---@return string|nil code
function util.duration(from, to) end
---@param hms string "00:10:45"
---@return integer|nil seconds
---@return string|nil message
---@return string|nil code
function util.hms(hms) end
--- v ~= nil and v ~= json.null
---@param v any
---@return boolean
function util.present(v) end

--- Per-integration key/value that survives between events.
store = {}
---@param key string
---@return any value
---@return string|nil message
---@return string|nil code
function store.get(key) end
---@param key string
---@param value any nil deletes
---@return true|nil ok
---@return string|nil message
---@return string|nil code
function store.set(key, value) end
---@param key string
---@return true|nil ok
---@return string|nil message
---@return string|nil code
function store.delete(key) end

log = {}
---@param ... any
function log.debug(...) end
---@param ... any
function log.info(...) end
---@param ... any
function log.warn(...) end
---@param ... any
function log.error(...) end
