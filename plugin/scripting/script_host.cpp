#include "scripting/script_host.h"

#include <algorithm>
#include <cctype>
#include <chrono>

#include <nlohmann/json.hpp>

#include "core/log.h"

namespace fb::detail {
namespace {

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t unix_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string last_component(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

// Splits "scripts/mapping.lua:42: message [load]" into file and line (0 when absent).
void locate(const std::string& msg, std::string* file, int* line) {
  *line = 0;
  for (size_t colon = msg.find(':'); colon != std::string::npos && colon < 400; colon = msg.find(':', colon + 1)) {
    size_t i = colon + 1;
    while (i < msg.size() && std::isdigit(static_cast<unsigned char>(msg[i]))) ++i;
    if (i > colon + 1 && i < msg.size() && msg[i] == ':') {
      *file = msg.substr(0, colon);
      *line = std::stoi(msg.substr(colon + 1, i - colon - 1));
      return;
    }
  }
}

}  // namespace

ScriptHost::ScriptHost(ScriptHostOptions options) : options_(std::move(options)) {}

ScriptHost::~ScriptHost() {
  // States first: they unregister from the watchdog and use the store.
  std::lock_guard lock(pool_mu_);
  free_.clear();
}

Result<std::unique_ptr<ScriptHost>> ScriptHost::open(ScriptHostOptions options) {
  std::unique_ptr<ScriptHost> h(new ScriptHost(std::move(options)));
  const ScriptConfig& c = h->options_.config;
  if (c.pool_size < 1) return Status::Config("setting 'scripts.pool_size' must be at least 1");
  auto dir = canonical_dir(c.dir);
  if (!dir.ok()) return Status::Config(dir.status().message() + " (scripts.dir)");
  h->dir_ = *dir;
  h->prefix_ = h->options_.display_prefix.empty() ? last_component(c.dir) : h->options_.display_prefix;
  FB_ASSIGN(h->store_, ScriptStore::open(h->options_.dry_run ? nullptr : h->options_.db));
  // In "always" mode too: it makes the hook fire on every instruction once a call is over its time.
  h->watchdog_ = std::make_unique<Watchdog>(c.watchdog_ms);

  StateServices& s = h->services_;
  s.config = c;
  s.company_domains = company_domains_of(c);
  s.crm = &h->crm_;
  s.store = h->store_.get();
  s.content = h->options_.content;
  s.log_sink = h->options_.log_sink;
  s.crm_observer = h->options_.crm_observer;
  s.dry_run = h->options_.dry_run;
  s.mode = h->options_.sandbox;
  s.watchdog = h->watchdog_.get();

  (void)h->check_files(true);  // a broken first version is reported, not fatal
  if (h->options_.db && !h->options_.dry_run) {
    FB_ASSIGN(h->versions_, ScriptVersionStore::open(h->options_.db));
    (void)h->check_versions(true);  // a broken active version is reported; the last good one runs
  }
  return h;
}

Status ScriptHost::register_crm_operation(const std::string& name, CrmHandler handler) {
  return crm_.add(name, std::move(handler));
}

std::shared_ptr<Generation> ScriptHost::current() const {
  std::lock_guard lock(gen_mu_);
  return current_;
}

uint64_t ScriptHost::generation() const {
  auto g = current();
  return g ? g->id() : 0;
}

Status ScriptHost::load_status() const {
  std::lock_guard lock(gen_mu_);
  return load_status_;
}

Status ScriptHost::reload() { return check_files(true); }

void ScriptHost::emit(const std::string& type, const std::string& detail, const std::string& data_json) {
  if (options_.dry_run) {
    // The dry run reports load results itself.
  } else if (type == "script_rejected") {
    FB_LOG(kWarn, "scripting") << "rejected: " << detail;
  } else {
    FB_LOG(kInfo, "scripting") << detail;
  }
  if (!options_.event_sink) return;
  Event e;
  e.type = type;
  e.detail = detail;
  e.data_json = data_json;
  try {
    options_.event_sink(e);
  } catch (const std::exception& ex) {
    FB_LOG(kError, "scripting") << "event sink threw: " << ex.what();
  }
}

Status ScriptHost::check_files(bool force) {
  const ScriptConfig& c = services_.config;
  int64_t now = steady_ms();
  if (!force && (!c.hot_reload || now - last_check_ms_.load(std::memory_order_relaxed) < c.reload_interval_ms)) {
    return Status::Ok();
  }
  std::unique_lock lock(reload_mu_, std::defer_lock);
  if (force) {
    lock.lock();
  } else if (!lock.try_lock()) {
    return Status::Ok();  // another thread is checking right now
  }
  last_check_ms_.store(now, std::memory_order_relaxed);

  auto cur = current();
  bool changed = !cur;
  if (cur) {
    for (const FileSig& old : cur->signatures()) {
      if (!same_file(sample_file(dir_, old.rel, &old), old)) {
        changed = true;
        break;
      }
    }
  }
  if (!changed) {
    std::lock_guard g(gen_mu_);
    load_status_ = Status::Ok();
    return Status::Ok();
  }
  if (!rejected_.empty()) {
    bool same = true;
    for (const FileSig& r : rejected_) same = same && same_file(sample_file(dir_, r.rel, &r), r);
    if (same) return load_status();  // this broken version was already reported
  }
  return load_candidate();
}

Status ScriptHost::load_candidate() {
  const ScriptConfig& c = services_.config;
  std::vector<ScriptSource> entries;
  std::vector<FileSig> sigs;
  Status problem;
  for (const std::string* rel : {&c.mapping, &c.reactions}) {
    if (rel->empty()) continue;
    FileSig sig = sample_file(dir_, *rel, nullptr);  // before reading: a later write is seen next time
    sigs.push_back(sig);
    if (!sig.exists) {
      if (rel == &c.mapping && problem.ok()) {
        problem = Status::Script(prefix_ + "/" + *rel + ": not found in the scripts directory [load]");
      }
      continue;  // an absent reactions script is fine; adding it later is a change
    }
    auto text = read_script(dir_, *rel);
    if (!text.ok()) {
      if (problem.ok()) problem = Status::Script(prefix_ + "/" + *rel + ": " + text.status().message() + " [load]");
      continue;
    }
    entries.push_back({*rel, prefix_ + "/" + *rel, std::move(text).value()});
  }
  auto gen = std::make_shared<Generation>(next_generation_++, dir_, prefix_, std::move(entries), std::move(sigs));
  if (problem.ok()) {
    auto state = ScriptState::create(&services_, gen);
    states_created_.fetch_add(1, std::memory_order_relaxed);
    if (!state.ok()) {
      problem = state.status();
    } else {
      adopt(std::move(state).value());  // a ready state for the first event of this generation
    }
  }
  if (!problem.ok()) {
    rejected_ = gen->signatures();
    rejections_.fetch_add(1, std::memory_order_relaxed);
    {
      std::lock_guard g(gen_mu_);
      load_status_ = problem;
    }
    std::string file;
    int line = 0;
    locate(problem.message(), &file, &line);
    nlohmann::json data = {{"error", problem.message()}, {"generation_running", generation()}};
    if (!file.empty()) {
      data["file"] = file;
      data["line"] = line;
    }
    emit("script_rejected", problem.message() + (current() ? " (the previous version keeps running)" : ""),
         data.dump());
    return problem;
  }
  rejected_.clear();
  bool first;
  {
    std::lock_guard g(gen_mu_);
    first = !current_;
    current_ = gen;
    load_status_ = Status::Ok();
  }
  if (!first) reloads_.fetch_add(1, std::memory_order_relaxed);
  nlohmann::json files = nlohmann::json::array();
  std::string names;
  for (const ScriptSource& e : gen->entries()) {
    files.push_back(e.display);
    names += (names.empty() ? "" : ", ") + e.display;
  }
  emit("script_loaded", "loaded " + names + " (generation " + std::to_string(gen->id()) + ")",
       nlohmann::json{{"generation", gen->id()}, {"files", files}}.dump());
  return Status::Ok();
}

Result<std::unique_ptr<ScriptState>> ScriptHost::acquire(const std::shared_ptr<Generation>& gen) {
  std::unique_ptr<ScriptState> stale;
  {
    std::unique_lock lock(pool_mu_);
    pool_cv_.wait(lock, [&] { return !free_.empty() || live_ < services_.config.pool_size + extra_states_; });
    if (!free_.empty()) {
      // This thread's state of gen, else any of gen (several stored versions may be running at
      // once), else this thread's, else the newest.
      auto me = std::this_thread::get_id();
      auto find = [&](auto pred) { return std::find_if(free_.rbegin(), free_.rend(), pred); };
      auto mine = find([&](const auto& e) { return e.first == me && e.second->generation() == gen; });
      if (mine == free_.rend()) mine = find([&](const auto& e) { return e.second->generation() == gen; });
      if (mine == free_.rend()) mine = find([&](const auto& e) { return e.first == me; });
      auto pick = mine != free_.rend() ? std::prev(mine.base()) : std::prev(free_.end());
      std::unique_ptr<ScriptState> s = std::move(pick->second);
      free_.erase(pick);
      if (s->generation() == gen) return s;
      stale = std::move(s);  // an older generation: replaced below, outside the lock
    } else {
      ++live_;
    }
  }
  stale.reset();
  auto created = ScriptState::create(&services_, gen);
  states_created_.fetch_add(1, std::memory_order_relaxed);
  if (!created.ok()) {
    std::lock_guard lock(pool_mu_);
    --live_;
    pool_cv_.notify_one();
  }
  return created;
}

void ScriptHost::release(std::unique_ptr<ScriptState> state) {
  if (state && state->healthy()) {
    uint64_t peak = state->memory_peak();
    uint64_t seen = memory_peak_.load(std::memory_order_relaxed);
    while (peak > seen && !memory_peak_.compare_exchange_weak(seen, peak)) {
    }
  }
  std::unique_ptr<ScriptState> dead;
  {
    std::lock_guard lock(pool_mu_);
    if (state && state->healthy() && live_ <= services_.config.pool_size + extra_states_) {
      free_.emplace_back(std::this_thread::get_id(), std::move(state));
    } else {
      dead = std::move(state);
      --live_;
    }
  }
  pool_cv_.notify_one();
}

void ScriptHost::set_extra_states(int n) {
  {
    std::lock_guard lock(pool_mu_);
    extra_states_ = std::max(0, n);
  }
  pool_cv_.notify_all();
}

void ScriptHost::adopt(std::unique_ptr<ScriptState> state) {
  std::unique_ptr<ScriptState> spare;
  {
    std::lock_guard lock(pool_mu_);
    if (live_ < services_.config.pool_size) {
      ++live_;
      free_.emplace_back(std::thread::id(), std::move(state));
    } else {
      spare = std::move(state);  // the pool is full: destroyed outside the lock
    }
  }
  pool_cv_.notify_one();
}

Status ScriptHost::run(const HookCall& call) { return run_calls(call, nullptr, nullptr); }

Status ScriptHost::run_calls(const HookCall& call, const HookCall* then, Status* then_status) {
  (void)check_files(false);
  (void)check_versions(false);
  auto gen = generation_for(call.id.tenant_id);
  if (!gen) {
    return Status::Script("no valid scripts are loaded: " + load_status().message() + " [" + call.id.hook + "]");
  }
  auto state = acquire(gen);
  if (!state.ok()) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    return Status::Script(state.status().message());
  }
  std::unique_ptr<ScriptState> s = std::move(state).value();
  Status st = call_on(*s, call);
  if (then != nullptr && st.ok()) *then_status = call_on(*s, *then);
  release(std::move(s));
  return st;
}

Status ScriptHost::call_on(ScriptState& s, const HookCall& call) {
  if (!s.defines(call.id.hook)) return Status::Ok();
  Status st = s.call(call);
  events_.fetch_add(1, std::memory_order_relaxed);
  convert_ns_.fetch_add(s.last_timings().convert_ns, std::memory_order_relaxed);
  script_ns_.fetch_add(s.last_timings().script_ns, std::memory_order_relaxed);
  if (!st.ok()) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    if (StopReason why = s.last_stop(); why != StopReason::kNone) {
      budget_stops_[static_cast<size_t>(why) - 1].fetch_add(1, std::memory_order_relaxed);
    }
    if (!options_.dry_run) {
      FB_LOG(kWarn, "scripting") << st.message();
    }
    FB_LOG(kDebug, "scripting") << s.last_traceback();
  }
  return st;
}

void ScriptHost::begin_store_batch() { store_->begin_batch(); }

std::unique_ptr<BatchWrites> ScriptHost::end_store_batch() { return store_->end_batch(); }

Status ScriptHost::meeting_hook(const char* hook, const MeetingEvent& event) {
  return run(meeting_hook_call(hook, event));
}

Status ScriptHost::on_meeting(const MeetingEvent& event) { return meeting_hook("on_meeting", event); }
Status ScriptHost::on_webhook(const MeetingEvent& event) { return meeting_hook("on_webhook", event); }

Status ScriptHost::on_meeting_then_webhook(const MeetingEvent& event, Status* reaction) {
  const HookCall react = meeting_hook_call("on_webhook", event);
  return run_calls(meeting_hook_call("on_meeting", event), &react, reaction);
}

Status ScriptHost::integration_hook(const char* hook, const IntegrationRef& integration, HookArgs args,
                                    std::string_view text, const std::string& event_id) {
  HookCall c;
  c.id.hook = hook;
  c.id.integration_id = integration.id;
  c.id.tenant_id = integration.tenant_id;
  c.id.user_id = integration.user_id;
  c.id.event_id = event_id.empty() ? std::string(hook) + "." + std::to_string(unix_s()) : event_id;
  c.id.source = "event";
  c.args = args;
  if (args == HookArgs::kSummary) c.json = text;
  if (args == HookArgs::kIntegrationReason) c.reason = std::string(text);
  return run(c);
}

Status ScriptHost::on_connect(const IntegrationRef& integration, const std::string& event_id) {
  return integration_hook("on_connect", integration, HookArgs::kIntegration, {}, event_id);
}

Status ScriptHost::on_disconnect(const IntegrationRef& integration, const std::string& event_id) {
  return integration_hook("on_disconnect", integration, HookArgs::kIntegration, {}, event_id);
}

Status ScriptHost::on_token_failure(const IntegrationRef& integration, std::string_view reason,
                                    const std::string& event_id) {
  return integration_hook("on_token_failure", integration, HookArgs::kIntegrationReason, reason, event_id);
}

Status ScriptHost::on_sync_complete(const IntegrationRef& integration, std::string_view summary_json,
                                    const std::string& event_id) {
  return integration_hook("on_sync_complete", integration, HookArgs::kSummary, summary_json, event_id);
}

ScriptStats ScriptHost::stats() const {
  ScriptStats s;
  s.generation = generation();
  s.events = events_.load();
  s.failures = failures_.load();
  for (size_t i = 0; i < s.budget_stops.size(); ++i) s.budget_stops[i] = budget_stops_[i].load();
  s.reloads = reloads_.load();
  s.rejections = rejections_.load();
  s.states_created = states_created_.load();
  s.convert_ns = convert_ns_.load();
  s.script_ns = script_ns_.load();
  s.state_memory_peak = memory_peak_.load();
  return s;
}

// ---- stored versions (issue 15) ----

namespace {

std::string scope_name(const std::string& scope) {
  return scope.empty() ? std::string("the default scripts") : "tenant '" + scope + "'";
}

// The entry scripts of a stored version, in the order the directory's are loaded.
std::vector<ScriptSource> stored_entries(const ScriptConfig& c, const ScriptFiles& files, const std::string& prefix) {
  std::vector<ScriptSource> entries;
  for (const std::string* rel : {&c.mapping, &c.reactions}) {
    if (rel->empty()) continue;
    if (auto it = files.find(*rel); it != files.end()) entries.push_back({*rel, prefix + "/" + *rel, it->second});
  }
  return entries;
}

}  // namespace

Status ScriptHost::check_version(const ScriptFiles& files, const std::string& display_prefix) {
  FB_TRY(check_script_files(files));
  if (!services_.config.mapping.empty() && !files.count(services_.config.mapping)) {
    return Status::Script(display_prefix + "/" + services_.config.mapping + ": not in the script set [load]");
  }
  auto shared = std::make_shared<const ScriptFiles>(files);
  auto gen = std::make_shared<Generation>(next_generation_++, display_prefix,
                                          stored_entries(services_.config, files, display_prefix), shared, 0);
  auto state = ScriptState::create(&services_, gen);
  states_created_.fetch_add(1, std::memory_order_relaxed);
  return state.status();
}

Result<ScriptVersionInfo> ScriptHost::upload(const std::string& scope, const ScriptFiles& files,
                                             const std::string& author, const std::string& note) {
  if (!versions_) return Status::FailedPrecondition("script versions need the store (this host has none)");
  FB_TRY(check_version(files, "upload"));
  return versions_->add(scope, files, author, note);
}

Status ScriptHost::refresh_versions() { return check_versions(true); }

Result<std::shared_ptr<Generation>> ScriptHost::load_version(int64_t version_id) {
  FB_ASSIGN(ScriptFiles files, versions_->files(version_id));
  std::string prefix = "v" + std::to_string(version_id);
  if (!services_.config.mapping.empty() && !files.count(services_.config.mapping)) {
    return Status::Script(prefix + "/" + services_.config.mapping + ": not in the script set [load]");
  }
  std::vector<ScriptSource> entries = stored_entries(services_.config, files, prefix);
  auto gen = std::make_shared<Generation>(next_generation_++, prefix, std::move(entries),
                                          std::make_shared<const ScriptFiles>(std::move(files)), version_id);
  auto state = ScriptState::create(&services_, gen);
  states_created_.fetch_add(1, std::memory_order_relaxed);
  if (!state.ok()) return state.status();
  adopt(std::move(state).value());
  return gen;
}

Status ScriptHost::check_versions(bool force) {
  if (!versions_) return Status::Ok();
  int64_t now = steady_ms();
  if (!force && now - last_version_check_ms_.load(std::memory_order_relaxed) < options_.version_check_ms) {
    return Status::Ok();
  }
  std::unique_lock lock(version_mu_, std::defer_lock);
  if (force) {
    lock.lock();
  } else if (!lock.try_lock()) {
    return Status::Ok();  // another worker is polling right now
  }
  last_version_check_ms_.store(now, std::memory_order_relaxed);
  auto counter = versions_->counter();
  if (!counter.ok()) {
    FB_LOG(kWarn, "scripting") << "cannot read the script versions: " << counter.status().message();
    return counter.status();
  }
  if (*counter == version_counter_) return Status::Ok();
  FB_ASSIGN(auto active, versions_->active_versions());

  std::map<std::string, std::shared_ptr<Generation>> running;
  {
    std::lock_guard g(gen_mu_);
    running = stored_;
  }
  std::map<std::string, std::shared_ptr<Generation>> next;
  Status result;
  for (const auto& [scope, version_id] : active) {
    auto old = running.find(scope);
    if (old != running.end() && old->second->version_id() == version_id) {
      next[scope] = old->second;
      continue;
    }
    auto gen = load_version(version_id);
    if (gen.ok()) {
      next[scope] = *gen;
      rejected_versions_.erase(version_id);
      emit("script_loaded",
           "loaded script version " + std::to_string(version_id) + " for " + scope_name(scope) + " (generation " +
               std::to_string((*gen)->id()) + ")",
           nlohmann::json{{"generation", (*gen)->id()},
                          {"version", version_id},
                          {"scope", scope.empty() ? nlohmann::json(nullptr) : nlohmann::json(scope)}}
               .dump());
      continue;
    }
    // Broken: keep what this scope ran; at a cold start, the newest earlier activation that loads.
    std::shared_ptr<Generation> keep = old != running.end() ? old->second : nullptr;
    if (!keep) {
      auto history = versions_->history(scope, 50);
      for (const ScriptActivation& a : history.ok() ? *history : std::vector<ScriptActivation>{}) {
        if (a.version_id == 0 || a.version_id == version_id) continue;
        auto earlier = load_version(a.version_id);
        if (earlier.ok()) {
          keep = *earlier;
          break;
        }
      }
    }
    if (keep) next[scope] = keep;
    result = gen.status();
    rejections_.fetch_add(1, std::memory_order_relaxed);
    if (rejected_versions_.insert(version_id).second) {
      std::string file;
      int line = 0;
      locate(gen.status().message(), &file, &line);
      int64_t kept = keep ? keep->version_id() : 0;
      nlohmann::json data = {{"error", gen.status().message()},
                             {"version", version_id},
                             {"scope", scope.empty() ? nlohmann::json(nullptr) : nlohmann::json(scope)},
                             {"version_running", kept ? nlohmann::json(kept) : nlohmann::json(nullptr)}};
      if (!file.empty()) {
        data["file"] = file;
        data["line"] = line;
      }
      emit("script_rejected",
           "script version " + std::to_string(version_id) + " for " + scope_name(scope) +
               " does not load: " + gen.status().message() +
               (kept ? " (version " + std::to_string(kept) + " keeps running)"
                     : " (no earlier version loads; the fallback scripts run)"),
           data.dump());
    }
  }
  {
    std::lock_guard g(gen_mu_);
    stored_ = std::move(next);
  }
  version_counter_ = *counter;
  return result;
}

std::shared_ptr<Generation> ScriptHost::generation_for(const std::string& tenant_id) const {
  std::lock_guard lock(gen_mu_);
  if (!stored_.empty()) {
    if (!tenant_id.empty()) {
      if (auto it = stored_.find(tenant_id); it != stored_.end()) return it->second;
    }
    if (auto it = stored_.find(""); it != stored_.end()) return it->second;
  }
  return current_;
}

int64_t ScriptHost::running_version(const std::string& tenant_id) const {
  auto gen = generation_for(tenant_id);
  return gen ? gen->version_id() : 0;
}

}  // namespace fb::detail
