-- reactions.lua: what happens when something arrives, besides the mapping.
--
-- Hooks (all optional):
--   on_webhook(meeting, ctx)                    Fathom said new content is ready for a meeting
--   on_token_failure(integration, reason, ctx)  a user's Fathom connection stopped working
--   on_connect(integration, ctx)                a user connected Fathom
--   on_disconnect(integration, ctx)             a user disconnected
--   on_sync_complete(summary, ctx)              a sync finished (summary: counts and times)
-- `integration` is { id, tenant_id, user_id }. See scripts/README.md.

local present = util.present

local function text(value)
  if type(value) == "string" and value ~= "" then return value end
  return nil
end

-- New meeting content: remember the latest meeting, and ask the recorder for a follow-up when an
-- external meeting ended without any action item.
function on_webhook(meeting, ctx)
  store.set("last_meeting", {
    recording_id = meeting.recording_id,
    title = text(meeting.title),
    received_at = os.time(),
  })
  if meeting.calendar_invitees_domains_type ~= "one_or_more_external" then return end
  local items = meeting.action_items
  if type(items) == "table" and #items > 0 then return end
  local recorder = present(meeting.recorded_by) and meeting.recorded_by or {}
  crm.create_task({
    title = "Send a follow-up for \"" .. (text(meeting.title) or "your meeting") .. "\"",
    assignee_email = text(recorder.email),
    recording_id = meeting.recording_id,
    playback_url = text(meeting.share_url),
    kind = "follow_up",
  })
end

-- The connection broke (refresh token revoked, app uninstalled...): one task asking the user to
-- reconnect. The store remembers it, so repeated failures do not pile up tasks.
function on_token_failure(integration, reason, ctx)
  if store.get("reconnect_task") then
    log.info("reconnect task already open for user", integration.user_id)
    return
  end
  local task = crm.create_task({
    title = "Reconnect Fathom",
    description = "fathom-bridge can no longer read your Fathom meetings (" .. tostring(reason) ..
        "). Open Settings > Integrations > Fathom and connect again.",
    assignee_user_id = integration.user_id,
    kind = "reconnect_fathom",
  })
  store.set("reconnect_task", { id = task and task.id, reason = reason, at = os.time() })
end

-- Connected again: a later failure deserves a new task.
function on_connect(integration, ctx)
  store.delete("reconnect_task")
  log.info("Fathom connected for user", integration.user_id)
end

function on_disconnect(integration, ctx)
  log.info("Fathom disconnected for user", integration.user_id)
end

function on_sync_complete(summary, ctx)
  log.info("sync complete:", json.encode(summary))
end
