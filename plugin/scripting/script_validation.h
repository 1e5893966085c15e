// script_validation.h: what a candidate script version would do to the CRM, next to what the
// running version does (issue 15, "validate"). Both run their meeting hook in dry-run mode
// (CrmCall::dry_run, nothing reaches the host; find_* answer null, others {"id": "dry-<op>-<n>"},
// as `script test` does) over the same stored meetings, and the operations are compared per
// meeting: the n-th call of an operation in one run is matched with the n-th call of that
// operation in the other; a match with other arguments is "changed", the rest "added" (only the
// candidate makes it) or "removed" (only the running version does).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fathom_bridge/config.h"
#include "fathom_bridge/status.h"
#include "scripting/script_files.h"

namespace fb::detail {

struct ValidationMeeting {
  int64_t integration_id = 0;
  std::string tenant_id, user_id;
  int64_t recording_id = 0;
  int64_t content_version = 1;
  std::string title;
  std::string raw_json;
};

// One run of a script set over meetings: per meeting {"ok", "error"?, "operations": [{"operation",
// "args"}]}. A set that does not load is kScript with file and line.
Result<nlohmann::json> dry_run_meetings(const ScriptConfig& config, const ScriptFiles& files,
                                        const std::string& display_prefix, const std::string& hook,
                                        const std::vector<ValidationMeeting>& meetings);

// {"meetings": [{"recording_id", "integration_id", "title", "added": [op], "removed": [op],
//  "changed": [{"operation", "before", "after"}], "unchanged", "error"?, "running_error"?}],
//  "summary": {"meetings", "meetings_changed", "added", "removed", "changed", "unchanged", "errors"}}
// where op is {"operation", "args"}; candidate and running are dry_run_meetings results.
nlohmann::json diff_dry_runs(const std::vector<ValidationMeeting>& meetings, const nlohmann::json& candidate,
                             const nlohmann::json& running);

}  // namespace fb::detail
