// script_host.h: the scripting layer's front door. A ScriptHost owns the pool of Lua states
// (one per worker, no lock held across workers while scripts run), hot reload of the scripts
// directory, the CRM operations the host registered, and one C++ entry point per hook.
//
//   ScriptHostOptions o;
//   o.config = config.scripts;  o.db = db;  o.content = sync_content;  o.event_sink = bus_emit;
//   auto host = ScriptHost::open(o);                       // loads scripts/mapping.lua, reactions.lua
//   host.value()->register_crm_operation("upsert_contact", handler);
//   Status s = host.value()->on_meeting(event);            // kScript on a script error: retry/dead-letter
//
// Hot reload: before an event (at most every scripts.reload_interval_ms) the host stats the files
// of the running generation (entry scripts, also absent ones, and every module required so far).
// On a change it loads the new version into a fresh state, running each file's top level under
// the limits. Success publishes the new generation (event "script_loaded"); states of the old one
// are replaced as they come back to the pool. Failure (syntax error, top-level error, missing
// mapping script) keeps the previous generation running and emits "script_rejected" with file and
// line once per distinct broken version.
//
// Errors: a hook failure is Status::Script("file:line: message [hook, recording N]") and the state
// that ran it is discarded. Thread-safe: every method may be called from any thread.
#pragma once

#include <array>
#include <atomic>
#include <map>
#include <set>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/pipeline.h"
#include "fathom_bridge/config.h"
#include "fathom_bridge/crm.h"
#include "fathom_bridge/events.h"
#include "scripting/script_state.h"
#include "scripting/script_versions.h"

namespace fb::detail {

class Db;

struct IntegrationRef {
  int64_t id = 0;
  std::string tenant_id;
  std::string user_id;
};

struct ScriptHostOptions {
  ScriptConfig config;
  Db* db = nullptr;                         // the store module's table; null: in memory
  MeetingContentSource* content = nullptr;  // the fathom module; null: fathom.* returns nil, "unavailable"
  EventSink event_sink;                     // "script_loaded" / "script_rejected"
  ScriptLogSink log_sink;                   // script log lines; empty: FB_LOG(…, "script")
  CrmObserver crm_observer;                 // sees every CRM call (tracing, dry runs)
  bool dry_run = false;                     // CrmCall::dry_run; store in memory
  SandboxMode sandbox = SandboxMode::kReadOnlyProxies;
  std::string display_prefix;  // how errors name the directory; default: its last component
  // Stored versions (issue 15, needs db): how often an event polls the store's activation counter,
  // so an activation in any process reaches every worker within about this long.
  int version_check_ms = 500;
};

struct ScriptStats {
  uint64_t generation = 0;   // 0: no valid scripts loaded
  uint64_t events = 0;       // hook calls that ran a script
  uint64_t failures = 0;     // of which failed
  uint64_t reloads = 0;      // generations published after the first
  uint64_t rejections = 0;   // broken versions rejected
  uint64_t states_created = 0;
  int64_t convert_ns = 0;    // total time building Lua tables from JSON
  int64_t script_ns = 0;     // total time in hooks
  uint64_t state_memory_peak = 0;  // largest memory in use seen by one state, bytes
  // Failed calls that a budget stopped, by StopReason - 1: time, instructions, memory, depth,
  // CRM calls (scripts.crm_calls_per_event).
  std::array<uint64_t, 5> budget_stops{};
};

class ScriptHost {
 public:
  // Fails only when the scripts directory is unusable or the store cannot be migrated; broken
  // scripts are reported through load_status() and the event sink, and fixed by an edit.
  static Result<std::unique_ptr<ScriptHost>> open(ScriptHostOptions options);
  ~ScriptHost();
  ScriptHost(const ScriptHost&) = delete;
  ScriptHost& operator=(const ScriptHost&) = delete;

  // Registers (or replaces) crm.<name> for every script; takes effect from the next event.
  Status register_crm_operation(const std::string& name, CrmHandler handler);
  // Lets the pool hold n Lua states beyond scripts.pool_size: one per webhook worker replacing a
  // stuck one (WorkerOptions::on_stuck_threads), which keeps its own state. Back at 0, states over
  // pool_size are freed as they come back. Thread-safe and quick.
  void set_extra_states(int n);

  // Hooks. Each returns Ok when no script defines the hook. event_id makes CRM idempotency keys
  // stable across retries of the same occurrence: pass the same id when retrying (meeting hooks
  // derive it from recording and content version; the others default to the hook name plus the
  // current second).
  Status on_meeting(const MeetingEvent& event);   // on_meeting(meeting, ctx), mapping.lua
  Status on_webhook(const MeetingEvent& event);   // on_webhook(meeting, ctx), reactions.lua
  // Both, for one event, on one state (one trip through the pool): on_meeting, then (when it
  // succeeded) on_webhook, whose outcome goes to *reaction. Each hook gets a meeting table of its
  // own (sharing one, with a check that on_meeting left it unchanged, cost as much as building a
  // second: bench/README.md, issue 11's e2e section).
  Status on_meeting_then_webhook(const MeetingEvent& event, Status* reaction);
  Status on_connect(const IntegrationRef& integration, const std::string& event_id = "");
  Status on_disconnect(const IntegrationRef& integration, const std::string& event_id = "");
  Status on_token_failure(const IntegrationRef& integration, std::string_view reason, const std::string& event_id = "");
  // summary_json: a JSON object (the sync job record); hook on_sync_complete(summary, ctx).
  Status on_sync_complete(const IntegrationRef& integration, std::string_view summary_json,
                          const std::string& event_id = "");
  // Any hook with explicit arguments (the dry run uses it).
  Status run(const HookCall& call);
  // The store module's writes of this thread's hooks, from begin_store_batch until
  // end_store_batch, are kept for the batch's own transaction (ScriptStore's batches; LuaPipeline
  // calls these around a batch).
  void begin_store_batch();
  std::unique_ptr<BatchWrites> end_store_batch();

  // Checks the files now (ignoring reload_interval_ms). Returns the current load status.
  Status reload();
  // Ok when the files on disk are the running version; else why the newest version was rejected.
  Status load_status() const;
  uint64_t generation() const;
  ScriptStats stats() const;
  const ScriptConfig& config() const { return services_.config; }

  // ---- stored versions (issue 15) ----
  // An event of tenant T runs T's active version, else the default scope's, else the scripts
  // directory. The store's activation counter is polled at most every version_check_ms; a changed
  // active version is loaded into a fresh state first and published only when it loads (else
  // "script_rejected", and the scope keeps the version it ran, or at a cold start the newest
  // earlier activation that loads). Events already running finish on their generation.
  //
  // The version store; null without a db or in a dry run.
  ScriptVersionStore* versions() const { return versions_.get(); }
  // Loads files into a fresh state (each entry script's top level under the limits) without
  // publishing them. kScript "<prefix>/<file>:<line>: message [load]" when they do not load.
  Status check_version(const ScriptFiles& files, const std::string& display_prefix);
  // check_version, then stores the files as a new version of scope ("" = the default).
  Result<ScriptVersionInfo> upload(const std::string& scope, const ScriptFiles& files, const std::string& author,
                                   const std::string& note);
  // Polls the activation counter now (activation in this process calls it, so it applies at once).
  Status refresh_versions();
  // The stored version an event of tenant_id runs now (0: the scripts directory).
  int64_t running_version(const std::string& tenant_id) const;

 private:
  Status check_versions(bool force);
  // Builds the generation of a stored version and loads it into a state (adopted by the pool).
  Result<std::shared_ptr<Generation>> load_version(int64_t version_id);
  // The tenant's generation, the default's, or the directory's (null when none is loaded).
  std::shared_ptr<Generation> generation_for(const std::string& tenant_id) const;
  explicit ScriptHost(ScriptHostOptions options);
  Status check_files(bool force);
  Status load_candidate();
  std::shared_ptr<Generation> current() const;
  Result<std::unique_ptr<ScriptState>> acquire(const std::shared_ptr<Generation>& gen);
  // Returns a state taken by acquire (a failed one is destroyed).
  void release(std::unique_ptr<ScriptState> state);
  // Adds a state created outside acquire (the validation state of a new generation) if there is room.
  void adopt(std::unique_ptr<ScriptState> state);
  void emit(const std::string& type, const std::string& detail, const std::string& data_json);
  Status meeting_hook(const char* hook, const MeetingEvent& event);
  // run(), and then, when call succeeded and `then` is given, `then` on the same state, its
  // outcome in *then_status.
  Status run_calls(const HookCall& call, const HookCall* then, Status* then_status);
  // One hook call on s with the host's bookkeeping (stats, failure log); Ok when s's scripts do
  // not define the hook.
  Status call_on(ScriptState& s, const HookCall& call);
  Status integration_hook(const char* hook, const IntegrationRef& integration, HookArgs args, std::string_view text,
                          const std::string& event_id);

  ScriptHostOptions options_;
  std::string dir_;     // canonical
  std::string prefix_;  // display prefix
  CrmRegistry crm_;
  std::unique_ptr<ScriptStore> store_;
  std::unique_ptr<Watchdog> watchdog_;
  StateServices services_;

  mutable std::mutex gen_mu_;
  std::shared_ptr<Generation> current_;  // guarded by gen_mu_
  Status load_status_;                   // guarded by gen_mu_

  std::mutex reload_mu_;                 // one checker at a time
  std::atomic<int64_t> last_check_ms_{0};
  std::atomic<uint64_t> next_generation_{1};  // the directory's and stored versions' generations
  std::vector<FileSig> rejected_;        // guarded by reload_mu_: the last rejected version

  std::unique_ptr<ScriptVersionStore> versions_;
  std::map<std::string, std::shared_ptr<Generation>> stored_;  // guarded by gen_mu_: scope -> running version
  std::mutex version_mu_;                                      // one poller at a time
  std::atomic<int64_t> last_version_check_ms_{0};
  int64_t version_counter_ = -1;          // guarded by version_mu_: the counter the stored_ map reflects
  std::set<int64_t> rejected_versions_;   // guarded by version_mu_: reported once each

  std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  // Idle states with the thread that used each last: a worker gets its own state back, so a
  // state's memory stays in one core's cache (and one malloc arena).
  std::vector<std::pair<std::thread::id, std::unique_ptr<ScriptState>>> free_;  // guarded by pool_mu_
  int live_ = 0;                                    // guarded by pool_mu_: states in or out of the pool
  int extra_states_ = 0;                            // guarded by pool_mu_: set_extra_states

  std::atomic<uint64_t> events_{0}, failures_{0}, reloads_{0}, rejections_{0}, states_created_{0};
  std::array<std::atomic<uint64_t>, 5> budget_stops_{};  // by StopReason - 1
  std::atomic<int64_t> convert_ns_{0}, script_ns_{0};
  std::atomic<uint64_t> memory_peak_{0};
};

}  // namespace fb::detail
