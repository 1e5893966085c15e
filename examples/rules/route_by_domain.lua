-- route_by_domain.lua: meetings with a key account go to its account owner.
--
-- The default mapping (scripts/mapping.lua) with one change: when an external invitee's email
-- domain is in ACCOUNT_OWNERS, that owner owns the activity and the tasks nobody internal was
-- assigned, instead of the person who recorded the meeting.
--
-- Install: copy this file and scripts/mapping.lua into the scripts directory, then set
-- "scripts": {"mapping": "route_by_domain.lua"} in the config (mapping.lua stays as a module).

local default = require("mapping")

-- Email domain (lowercase, subdomains included) -> the account owner's email.
local ACCOUNT_OWNERS = {
  ["acme.test"] = "bob@example.com",
  ["globex.test"] = "carol@example.com",
}

local function owner_for(domains)
  for _, domain in ipairs(domains) do
    local d = domain
    while d do
      if ACCOUNT_OWNERS[d] then return ACCOUNT_OWNERS[d] end
      d = d:match("^[^.]+%.(.+%..+)$")  -- eu.acme.test -> acme.test
    end
  end
  return nil  -- no key account: the recorder owns it
end

function on_meeting(meeting, ctx)
  default.map(meeting, ctx, {
    owner_email = function(domains, m)
      local owner = owner_for(domains)
      if owner then log.info("routing meeting", m.recording_id, "to", owner) end
      return owner
    end,
  })
end
