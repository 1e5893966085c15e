// Bridge: stored script versions (issue 15). The lifecycle of scripts as managed assets, on top of
// ScriptHost (loading, running) and ScriptVersionStore (the rows). Scope "" is the default set.
#include <nlohmann/json.hpp>

#include "bridge/bridge_impl.h"
#include "core/principal.h"
#include "scripting/script_validation.h"

namespace fb {
namespace {

using nlohmann::json;

Status check_scope(const std::string& tenant_id) {
  return tenant_id.empty() ? Status::Ok() : detail::validate_identifier(tenant_id, "tenant_id", true);
}

detail::ScriptVersionStore* store_of(Bridge::Impl& impl, Status* why) {
  detail::ScriptVersionStore* v = impl.scripts ? impl.scripts->versions() : nullptr;
  if (!v) *why = Status::FailedPrecondition("script versions need the store");
  return v;
}

std::string activation_json(const detail::ScriptActivation& a) {
  return json{{"activation_id", a.id},
              {"scope", a.scope.empty() ? json(nullptr) : json(a.scope)},
              {"version_id", a.version_id ? json(a.version_id) : json(nullptr)},
              {"previous_version_id", a.previous_version_id ? json(a.previous_version_id) : json(nullptr)},
              {"kind", a.kind},
              {"author", a.author},
              {"created_at", a.created_at}}
      .dump();
}

}  // namespace

namespace detail {
Result<ScriptFiles> script_files_from_json(std::string_view files_json) {
  json doc = json::parse(files_json, nullptr, false);
  if (!doc.is_object()) {
    return Status::InvalidArgument("files must be a JSON object of path -> Lua source, e.g. {\"mapping.lua\": \"...\"}");
  }
  ScriptFiles files;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (!it->is_string()) return Status::InvalidArgument("files['" + it.key().substr(0, 200) + "'] must be a string");
    files.emplace(it.key(), it->get<std::string>());
  }
  return files;
}
}  // namespace detail

Result<std::string> Bridge::script_upload(const std::string& tenant_id, const std::string& files_json,
                                          const std::string& author, const std::string& note) {
  FB_TRY(check_scope(tenant_id));
  FB_ASSIGN(detail::ScriptFiles files, detail::script_files_from_json(files_json));
  FB_ASSIGN(detail::ScriptVersionInfo v, impl_->scripts->upload(tenant_id, files, author, note));
  return v.to_json();
}

Result<std::string> Bridge::script_import(const std::string& tenant_id, const std::string& folder,
                                          const std::string& author, const std::string& note) {
  FB_TRY(check_scope(tenant_id));
  FB_ASSIGN(detail::ScriptFiles files, detail::read_script_folder(folder));
  FB_ASSIGN(detail::ScriptVersionInfo v, impl_->scripts->upload(tenant_id, files, author, note));
  return v.to_json();
}

Result<std::string> Bridge::script_versions_json(const std::string& tenant_id, int limit) {
  FB_TRY(check_scope(tenant_id));
  if (limit <= 0 || limit > 1000) return Status::InvalidArgument("limit must be 1..1000, not " + std::to_string(limit));
  Status why;
  detail::ScriptVersionStore* v = store_of(*impl_, &why);
  if (!v) return why;
  FB_ASSIGN(auto list, v->list(tenant_id, limit));
  json out = json::array();
  for (const auto& info : list) out.push_back(json::parse(info.to_json()));
  return out.dump();
}

Result<std::string> Bridge::script_activate(const std::string& tenant_id, int64_t version_id, const std::string& author) {
  FB_TRY(check_scope(tenant_id));
  Status why;
  detail::ScriptVersionStore* v = store_of(*impl_, &why);
  if (!v) return why;
  FB_ASSIGN(detail::ScriptActivation a, v->activate(tenant_id, version_id, author));
  (void)impl_->scripts->refresh_versions();  // this process at once; others within their poll interval
  return activation_json(a);
}

Result<std::string> Bridge::script_rollback(const std::string& tenant_id, const std::string& author) {
  FB_TRY(check_scope(tenant_id));
  Status why;
  detail::ScriptVersionStore* v = store_of(*impl_, &why);
  if (!v) return why;
  FB_ASSIGN(detail::ScriptActivation a, v->rollback(tenant_id, author));
  (void)impl_->scripts->refresh_versions();
  return activation_json(a);
}

Result<std::string> Bridge::script_validate(const std::string& tenant_id, int64_t version_id, int meetings) {
  return script_validate(tenant_id, version_id, meetings, 0, 0);
}

Result<std::string> Bridge::script_validate(const std::string& tenant_id, int64_t version_id, int meetings,
                                            int64_t since_s, int64_t until_s) {
  FB_TRY(check_scope(tenant_id));
  if (meetings <= 0 || meetings > 1000) {
    return Status::InvalidArgument("meetings must be 1..1000, not " + std::to_string(meetings));
  }
  if (since_s < 0 || until_s < 0 || (since_s > 0 && until_s > 0 && since_s >= until_s)) {
    return Status::InvalidArgument("the validation period must have since < until (Unix seconds, 0: open), not " +
                                   std::to_string(since_s) + ".." + std::to_string(until_s));
  }
  Status why;
  detail::ScriptVersionStore* v = store_of(*impl_, &why);
  if (!v) return why;
  FB_ASSIGN(detail::ScriptVersionInfo candidate, v->info(version_id));
  if (!candidate.scope.empty() && candidate.scope != tenant_id) {
    return Status::NotFound("no script version " + std::to_string(version_id) + " for tenant '" + tenant_id + "'");
  }
  FB_ASSIGN(detail::ScriptFiles candidate_files, v->files(version_id));
  // What the tenant runs now: its stored version, the default's, or the scripts directory.
  int64_t running_id = impl_->scripts->running_version(tenant_id);
  detail::ScriptFiles running_files;
  if (running_id != 0) {
    FB_ASSIGN(running_files, v->files(running_id));
  } else if (auto folder = detail::read_script_folder(impl_->config.scripts.dir); folder.ok()) {
    running_files = std::move(folder).value();
  }

  // The tenant's most recent stored meetings (every tenant's for the default set without a tenant).
  FB_ASSIGN(auto integrations, impl_->integrations->list(tenant_id, ""));
  std::vector<detail::ValidationMeeting> recent;
  for (const auto& integration : integrations) {
    FB_ASSIGN(auto stored, impl_->meetings->list_created(integration.id, since_s, until_s, meetings));
    for (const auto& m : stored) {
      if (m.raw_json.empty()) continue;  // content no longer kept
      recent.push_back({m.integration_id, integration.tenant_id, integration.user_id, m.recording_id,
                        std::max<int64_t>(m.content_version, 1), m.title, m.raw_json});
    }
  }
  std::stable_sort(recent.begin(), recent.end(), [](const auto& a, const auto& b) { return a.recording_id > b.recording_id; });
  if (recent.size() > static_cast<size_t>(meetings)) recent.resize(static_cast<size_t>(meetings));

  const ScriptConfig& config = impl_->config.scripts;
  FB_ASSIGN(json after, detail::dry_run_meetings(config, candidate_files, "v" + std::to_string(version_id),
                                                  "on_meeting", recent));
  json before = json::array();
  if (!running_files.empty()) {
    auto r = detail::dry_run_meetings(config, running_files,
                                      running_id ? "v" + std::to_string(running_id) : std::string("scripts"),
                                      "on_meeting", recent);
    if (r.ok()) before = std::move(r).value();
  }
  while (before.size() < recent.size()) before.push_back({{"ok", true}, {"operations", json::array()}});
  json out = detail::diff_dry_runs(recent, after, before);
  out["candidate_version"] = version_id;
  out["running_version"] = running_id ? json(running_id) : json(nullptr);
  out["scope"] = tenant_id.empty() ? json(nullptr) : json(tenant_id);
  out["since"] = since_s ? json(since_s) : json(nullptr);
  out["until"] = until_s ? json(until_s) : json(nullptr);
  return out.dump();
}

}  // namespace fb
