-- deal_from_title.lua: a meeting whose title looks like a sales stage opens a deal.
--
-- The default mapping, then: when the title matches one of DEAL_PATTERNS (Lua patterns,
-- matched against the lowercase title) and the company has no open deal, create one owned by
-- the activity's owner and attach the recording to it too.
--
-- Install: copy this file and scripts/mapping.lua into the scripts directory, then set
-- "scripts": {"mapping": "deal_from_title.lua"} in the config.

local default = require("mapping")

local DEAL_PATTERNS = { "demo", "pricing", "proposal", "poc", "pilot" }

local function looks_like_a_deal(title)
  title = title:lower()
  for _, pattern in ipairs(DEAL_PATTERNS) do
    if title:find("%f[%w]" .. pattern .. "%f[%W]") then return pattern end
  end
  return nil
end

function on_meeting(meeting, ctx)
  default.map(meeting, ctx, {
    after = function(m, _, result)
      local title = type(m.title) == "string" and m.title or ""
      local matched = looks_like_a_deal(title)
      if not matched or not result.primary_company then return end
      if crm.find_deal({ company_id = result.primary_company.id }) then return end
      local deal = crm.create_deal({
        name = title,
        company_id = result.primary_company.id,
        owner_email = result.owner_email,
        source = "fathom:" .. matched,
      })
      log.info("opened deal", deal.id, "for", title)
      if crm.has("attach_recording") then
        crm.attach_recording({ record_type = "deal", record_id = deal.id, recording_id = m.recording_id,
                               share_url = m.share_url, title = title })
      end
    end,
  })
end
