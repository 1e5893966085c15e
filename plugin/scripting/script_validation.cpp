#include "scripting/script_validation.h"

#include <algorithm>
#include <map>
#include <memory>

#include "scripting/dry_run.h"
#include "scripting/script_state.h"

namespace fb::detail {
namespace {

using nlohmann::json;

// The candidate's or running version's CRM operations of one meeting, by operation name.
std::map<std::string, std::vector<json>> by_operation(const json& ops) {
  std::map<std::string, std::vector<json>> out;
  for (const auto& op : ops) out[op.at("operation").get<std::string>()].push_back(op.at("args"));
  return out;
}

}  // namespace

Result<json> dry_run_meetings(const ScriptConfig& config, const ScriptFiles& files, const std::string& display_prefix,
                              const std::string& hook, const std::vector<ValidationMeeting>& meetings) {
  // The services one sandboxed state needs, in dry-run mode, with a stand-in CRM that records.
  CrmRegistry crm;
  FB_ASSIGN(std::unique_ptr<ScriptStore> store, ScriptStore::open(nullptr));
  std::unique_ptr<Watchdog> watchdog;
  if (config.hook_mode != "always") watchdog = std::make_unique<Watchdog>(config.watchdog_ms);
  StateServices s;
  s.config = config;
  s.company_domains = company_domains_of(config);
  s.crm = &crm;
  s.store = store.get();
  s.dry_run = true;
  s.watchdog = watchdog.get();
  s.log_sink = [](LogLevel, std::string_view, std::string_view) {};  // a dry run's log lines are not the host's

  json* current = nullptr;  // the operations of the meeting running now
  std::map<std::string, int> counts;
  for (const std::string& op : documented_crm_operations()) {
    FB_TRY(crm.add(op, [&, op](const CrmCall& call) -> Result<std::string> {
      std::string result = dry_run_answer(op, ++counts[op], json::object());
      if (current) {
        json args = json::parse(call.args_json, nullptr, false);
        current->push_back({{"operation", op}, {"args", args.is_discarded() ? json(call.args_json) : args}});
      }
      return result;
    }));
  }
  std::vector<ScriptSource> entries;
  for (const std::string* rel : {&config.mapping, &config.reactions}) {
    if (auto it = files.find(*rel); !rel->empty() && it != files.end()) {
      entries.push_back({*rel, display_prefix + "/" + *rel, it->second});
    }
  }
  auto gen = std::make_shared<Generation>(1, display_prefix, std::move(entries),
                                          std::make_shared<const ScriptFiles>(files), 0);
  std::unique_ptr<ScriptState> state;
  json out = json::array();
  for (const ValidationMeeting& m : meetings) {
    if (!state) {
      FB_ASSIGN(state, ScriptState::create(&s, gen));  // a load failure ends the run: nothing to compare
    }
    json ops = json::array();
    current = &ops;
    counts.clear();
    MeetingEvent event{m.integration_id, m.tenant_id, m.user_id, m.recording_id, m.content_version, m.raw_json,
                       "validate"};
    HookCall call = meeting_hook_call(hook.c_str(), event);
    Status st = state->defines(hook) ? state->call(call) : Status::Ok();
    current = nullptr;
    json r = {{"ok", st.ok()}, {"operations", std::move(ops)}};
    if (!st.ok()) r["error"] = st.message();
    if (!state->healthy()) state.reset();  // as the pool does: a failed state is never reused
    out.push_back(std::move(r));
  }
  return out;
}

json diff_dry_runs(const std::vector<ValidationMeeting>& meetings, const json& candidate, const json& running) {
  json list = json::array();
  int64_t added = 0, removed = 0, changed = 0, unchanged = 0, errors = 0, meetings_changed = 0;
  for (size_t i = 0; i < meetings.size(); ++i) {
    const json& c = candidate.at(i);
    const json& r = running.at(i);
    auto cops = by_operation(c.at("operations"));
    auto rops = by_operation(r.at("operations"));
    json m = {{"recording_id", meetings[i].recording_id},
              {"integration_id", meetings[i].integration_id},
              {"title", meetings[i].title},
              {"added", json::array()},
              {"removed", json::array()},
              {"changed", json::array()},
              {"unchanged", 0}};
    std::map<std::string, bool> names;
    for (const auto& [op, _] : cops) names[op] = true;
    for (const auto& [op, _] : rops) names[op] = true;
    for (const auto& [op, _] : names) {
      const std::vector<json>& after = cops[op];
      const std::vector<json>& before = rops[op];
      for (size_t k = 0; k < std::max(after.size(), before.size()); ++k) {
        if (k >= before.size()) {
          m["added"].push_back({{"operation", op}, {"args", after[k]}});
        } else if (k >= after.size()) {
          m["removed"].push_back({{"operation", op}, {"args", before[k]}});
        } else if (after[k] != before[k]) {
          m["changed"].push_back({{"operation", op}, {"before", before[k]}, {"after", after[k]}});
        } else {
          m["unchanged"] = m["unchanged"].get<int64_t>() + 1;
        }
      }
    }
    if (c.contains("error")) m["error"] = c["error"];
    if (r.contains("error")) m["running_error"] = r["error"];
    added += static_cast<int64_t>(m["added"].size());
    removed += static_cast<int64_t>(m["removed"].size());
    changed += static_cast<int64_t>(m["changed"].size());
    unchanged += m["unchanged"].get<int64_t>();
    errors += c.contains("error") ? 1 : 0;
    bool differs = !m["added"].empty() || !m["removed"].empty() || !m["changed"].empty() ||
                   c.contains("error") != r.contains("error");
    meetings_changed += differs ? 1 : 0;
    list.push_back(std::move(m));
  }
  return {{"meetings", std::move(list)},
          {"summary",
           {{"meetings", meetings.size()},
            {"meetings_changed", meetings_changed},
            {"added", added},
            {"removed", removed},
            {"changed", changed},
            {"unchanged", unchanged},
            {"errors", errors}}}};
}

}  // namespace fb::detail
