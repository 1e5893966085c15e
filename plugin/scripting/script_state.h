// script_state.h: one lua_State running one Generation of the scripts: the sandbox, the limits,
// the loaded entry scripts, and the LuaHost the modules call. A state is used by one thread at a
// time (the pool hands it out); it is never shared. After any error the state is discarded
// (healthy() turns false), so a failed or stopped script cannot leave half-updated state behind.
#pragma once

#include <lua.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/log.h"
#include "core/pipeline.h"
#include "fathom_bridge/config.h"
#include "fathom_bridge/crm.h"
#include "lua/lua_host.h"
#include "lua/lua_json.h"
#include "scripting/crm_registry.h"
#include "scripting/limits.h"
#include "scripting/sandbox.h"
#include "scripting/script_files.h"
#include "scripting/script_store.h"

namespace fb::detail {

// Who an event is about; the idempotency keys of its CRM calls derive from it.
struct EventIdentity {
  std::string hook;  // "on_meeting", "on_webhook", "on_connect", ...
  int64_t integration_id = 0;
  std::string tenant_id;
  std::string user_id;
  int64_t recording_id = 0;     // meeting hooks
  int64_t content_version = 0;  // meeting hooks
  std::string event_id;         // stable for this occurrence across retries
  std::string source;           // "sync", "webhook", "dry_run", ...
};

enum class HookArgs {
  kMeeting,            // hook(meeting, ctx)
  kIntegration,        // hook(integration, ctx)
  kIntegrationReason,  // hook(integration, reason, ctx)
  kSummary,            // hook(summary, ctx)
};

struct HookCall {
  EventIdentity id;
  HookArgs args = HookArgs::kMeeting;
  std::string_view json;  // the meeting or summary (kMeeting, kSummary)
  const ParsedJson* parsed = nullptr;  // json already parsed (kMeeting), or null: parsed here
  std::string reason;     // kIntegrationReason
};

// The call of a meeting hook (on_meeting, on_webhook) for event: event id
// "rec<recording>.v<content version>", so a retry makes the same idempotency keys. json points into
// event.raw_json.
HookCall meeting_hook_call(const char* hook, const MeetingEvent& event);

struct CallTimings {
  int64_t convert_ns = 0;  // JSON -> Lua tables (and the ctx table)
  int64_t script_ns = 0;   // the hooks themselves, host calls included
};

using ScriptLogSink = std::function<void(LogLevel, std::string_view script, std::string_view message)>;
// Sees every CRM call and its outcome (dry runs, tests, tracing).
using CrmObserver = std::function<void(const CrmCall&, const Result<std::string>&)>;

// config.company_domains as util compares them: each normalised once (lua::normalize_domain:
// lowercase, an internationalised domain in its Unicode form), empty ones left out.
std::vector<std::string> company_domains_of(const ScriptConfig& config);

// Shared by all states of a ScriptHost; outlives them.
struct StateServices {
  ScriptConfig config;
  std::vector<std::string> company_domains;  // company_domains_of(config)
  CrmRegistry* crm = nullptr;
  ScriptStore* store = nullptr;
  MeetingContentSource* content = nullptr;  // null: fathom.* returns nil, "unavailable"
  ScriptLogSink log_sink;                   // empty: FB_LOG(…, "script")
  CrmObserver crm_observer;
  bool dry_run = false;
  SandboxMode mode = SandboxMode::kReadOnlyProxies;
  Watchdog* watchdog = nullptr;  // null: no watchdog (hook_mode "always" then checks only every kHookEvery)
};

class ScriptState final : public lua::LuaHost {
 public:
  // Creates the state and runs every entry script's top level under the limits. A syntax or
  // top-level error is kScript with "file:line: message [load]".
  static Result<std::unique_ptr<ScriptState>> create(const StateServices* services, std::shared_ptr<Generation> gen);
  ~ScriptState() override;
  ScriptState(const ScriptState&) = delete;
  ScriptState& operator=(const ScriptState&) = delete;

  // Calls the hook in every entry script that defines it (mapping first). Ok when none does.
  // A failure is kScript: "file:line: message [hook, recording N]".
  Status call(const HookCall& call);
  // Whether any entry script defines the hook (a function named on_* at its top level).
  bool defines(const std::string& hook) const { return hooks_.count(hook) != 0; }

  const CallTimings& last_timings() const { return timings_; }
  const std::string& last_traceback() const { return traceback_; }
  const std::shared_ptr<Generation>& generation() const { return gen_; }
  bool healthy() const { return healthy_; }
  size_t memory_used() const { return limits_->memory_used(); }
  size_t memory_peak() const { return limits_->memory_peak(); }
  // Why the last call was stopped by its budget (kNone: it was not).
  StopReason last_stop() const { return limits_->stop_reason(); }

  // ---- LuaHost ----
  bool crm_has(std::string_view op) const override;
  std::vector<std::string> crm_operations() const override;
  Result<std::string> crm_call(std::string_view op, std::string args_json) override;
  int64_t current_recording_id() const override;
  Result<std::string> fathom_content(std::string_view what, int64_t recording_id) override;
  Result<std::optional<std::string>> store_get(std::string_view key) override;
  Status store_set(std::string_view key, std::string_view value_json) override;
  Status store_delete(std::string_view key) override;
  void log(LogLevel level, std::string_view script, std::string_view message) override;
  const std::vector<std::string>& company_domains() const override { return domains_; }
  bool company_domains_from_recorder() const override { return domains_from_recorder_; }
  int max_depth() const override { return services_->config.max_call_depth; }
  int64_t max_json_bytes() const override { return 16 << 20; }
  int64_t max_crm_bytes() const override { return services_->config.crm_max_bytes; }
  bool charge_memory(size_t bytes) override { return limits_->charge(bytes); }
  void release_memory(size_t bytes) override { limits_->release(bytes); }
  void host_call_begin() override { limits_->host_begin(); }
  void host_call_end() override { limits_->host_end(); }

 private:
  ScriptState(const StateServices* services, std::shared_ptr<Generation> gen);
  Status run_protected(lua_CFunction fn, const std::string& context);
  void begin_event(const HookCall* call);

  static int msgh(lua_State* L);
  static int setup(lua_State* L);
  static int dispatch(lua_State* L);
  static int require(lua_State* L);
  static ScriptState& self(lua_State* L);

  const StateServices* services_;
  std::shared_ptr<Generation> gen_;
  std::unique_ptr<StateLimits> limits_;
  lua_State* L_ = nullptr;
  bool healthy_ = true;

  // Per event.
  const HookCall* call_ = nullptr;
  std::shared_ptr<const CrmRegistry::Map> ops_;
  std::map<std::string, int, std::less<>> crm_counts_;
  std::map<std::string, std::string> fathom_cache_;
  int fathom_calls_ = 0;
  int crm_calls_ = 0;  // this hook call's crm.* calls (scripts.crm_calls_per_event)
  int log_lines_ = 0;
  std::vector<std::string> domains_;
  bool domains_from_recorder_ = false;  // domains_ is the recorder's domain, not configured
  CallTimings timings_;
  std::string traceback_;
  std::set<std::string, std::less<>> hooks_;  // hooks the entry scripts define
  lua::LazyJsonSource lazy_;  // the meeting's JSON text while its event runs (long transcripts are built on read)
};

}  // namespace fb::detail
