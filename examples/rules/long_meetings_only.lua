-- long_meetings_only.lua: only meetings of at least MIN_MINUTES reach the CRM.
--
-- Short calls (a no-show, a two-minute check-in) create nothing; everything else is mapped by
-- the default mapping. A meeting without recording times is kept (better a record than a loss).
--
-- Install: copy this file and scripts/mapping.lua into the scripts directory, then set
-- "scripts": {"mapping": "long_meetings_only.lua"} in the config.

local default = require("mapping")

local MIN_MINUTES = 10

function on_meeting(meeting, ctx)
  local seconds = util.duration(meeting.recording_start_time, meeting.recording_end_time)
  if seconds and seconds < MIN_MINUTES * 60 then
    log.info("skipping meeting", meeting.recording_id, "of", seconds, "s: shorter than", MIN_MINUTES, "minutes")
    return
  end
  default.on_meeting(meeting, ctx)
end
