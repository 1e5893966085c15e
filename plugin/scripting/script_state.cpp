#include "scripting/script_state.h"

#include <cctype>
#include <cstring>

#include "core/pipeline.h"
#include "core/utf8.h"
#include "lua/lua_json.h"
#include "lua/lua_modules.h"

namespace fb::detail {
namespace {

const char kEnvs = 0;     // registry: array of the entry scripts' environments
const char kLoaded = 0;   // registry: module name -> value returned by the module
const char kLoading = 0;  // light userdata marking a module whose top level is running
// A transcript with more lines than this is built in Lua only when a script reads it.
constexpr size_t kLazyTranscriptItems = 32;

constexpr int kMaxLogLinesPerEvent = 200;
constexpr size_t kMaxErrorMessage = 2000;

// Whether the message already starts with a "chunk:line:" location.
bool has_location(std::string_view m) {
  for (size_t colon = m.find(':'); colon != std::string_view::npos && colon < 400; colon = m.find(':', colon + 1)) {
    size_t i = colon + 1;
    while (i < m.size() && std::isdigit(static_cast<unsigned char>(m[i]))) ++i;
    if (i > colon + 1 && i < m.size() && m[i] == ':') return true;
  }
  return false;
}

std::string event_context(const EventIdentity& id) {
  std::string c = id.hook;
  if (id.recording_id) {
    c += ", recording " + std::to_string(id.recording_id);
  } else if (id.integration_id) {
    c += ", integration " + std::to_string(id.integration_id);
  }
  return c;
}

void set_string(lua_State* L, const char* key, const std::string& v) {
  lua_pushlstring(L, v.data(), v.size());
  lua_setfield(L, -2, key);
}

void set_integer(lua_State* L, const char* key, int64_t v) {
  lua_pushinteger(L, static_cast<lua_Integer>(v));
  lua_setfield(L, -2, key);
}

void push_integration(lua_State* L, const EventIdentity& id) {
  lua_createtable(L, 0, 3);
  set_integer(L, "id", id.integration_id);
  set_string(L, "tenant_id", id.tenant_id);
  set_string(L, "user_id", id.user_id);
}

// The recorder's email domain: the company's domain when none is configured.
std::string recorder_domain(lua_State* L, int meeting) {
  std::string d;
  if (lua_type(L, meeting) != LUA_TTABLE) return d;
  lua_getfield(L, meeting, "recorded_by");
  if (lua_type(L, -1) == LUA_TTABLE) {
    lua_getfield(L, -1, "email_domain");
    if (lua_type(L, -1) == LUA_TSTRING) d = lua_tostring(L, -1);
    lua_pop(L, 1);
    if (d.empty()) {
      lua_getfield(L, -1, "email");
      if (lua_type(L, -1) == LUA_TSTRING) {
        std::string e = lua_tostring(L, -1);
        if (auto at = e.rfind('@'); at != std::string::npos) d = e.substr(at + 1);
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return lua::normalize_domain(d);  // "" stays ""
}

}  // namespace

std::vector<std::string> company_domains_of(const ScriptConfig& config) {
  std::vector<std::string> out;
  for (const std::string& d : config.company_domains) {
    if (!d.empty()) out.push_back(lua::normalize_domain(d));
  }
  return out;
}

ScriptState::ScriptState(const StateServices* services, std::shared_ptr<Generation> gen)
    : services_(services), gen_(std::move(gen)) {}

ScriptState::~ScriptState() {
  if (services_->watchdog && limits_) services_->watchdog->remove(limits_.get());
  if (L_) lua_close(L_);
}

ScriptState& ScriptState::self(lua_State* L) { return static_cast<ScriptState&>(lua::host(L)); }

Result<std::unique_ptr<ScriptState>> ScriptState::create(const StateServices* services,
                                                         std::shared_ptr<Generation> gen) {
  if (!lua_errors_unwind_cxx()) {
    return Status::Internal(
        "Lua is linked as its C build; fathom-bridge needs the C++ build (liblua5.4-c++, "
        "see plugin/scripting/README.md)");
  }
  std::unique_ptr<ScriptState> s(new ScriptState(services, std::move(gen)));
  const ScriptConfig& c = services->config;
  s->limits_ = std::make_unique<StateLimits>(BudgetLimits{c.instruction_limit, c.time_limit_ms, c.memory_limit_bytes,
                                                          c.max_call_depth, c.hook_mode == "always", c.watchdog_ms,
                                                          c.crm_calls_per_event});
  s->L_ = lua_newstate(&StateLimits::alloc, s->limits_.get());
  if (!s->L_) return Status::Internal("cannot create a Lua state (out of memory)");
  s->limits_->attach(s->L_);
  lua::set_host(s->L_, s.get());
  if (services->watchdog) services->watchdog->add(s->limits_.get());
  s->begin_event(nullptr);
  FB_TRY(s->run_protected(&ScriptState::setup, "load"));
  return s;
}

void ScriptState::begin_event(const HookCall* call) {
  call_ = call;
  ops_ = services_->crm ? services_->crm->snapshot() : std::make_shared<const CrmRegistry::Map>();
  crm_counts_.clear();
  crm_calls_ = 0;
  fathom_cache_.clear();
  fathom_calls_ = 0;
  log_lines_ = 0;
  domains_ = services_->company_domains;
  domains_from_recorder_ = false;
  timings_ = {};
}

Status ScriptState::run_protected(lua_CFunction fn, const std::string& context) {
  if (services_->watchdog) services_->watchdog->call_started();
  limits_->begin_call();
  int base = lua_gettop(L_);
  lua_pushcfunction(L_, &ScriptState::msgh);
  lua_pushcfunction(L_, fn);
  int rc = lua_pcall(L_, 0, 0, base + 1);
  limits_->end_call();
  if (services_->watchdog) services_->watchdog->call_finished();
  std::string msg;
  if (limits_->stopped()) {
    // The stop's own message names the real reason and place, even when the error that
    // reached us was Lua's "not enough memory" or a pcall swallowed the stop.
    msg = limits_->stop_message();
  } else if (rc != LUA_OK) {
    const char* m = lua_tostring(L_, -1);
    msg = m ? m : "(error object is not a string)";
    if (rc == LUA_ERRMEM) msg = "not enough memory";
  }
  lua_settop(L_, base);
  if (rc == LUA_OK && msg.empty()) return Status::Ok();
  healthy_ = false;
  // A script's error may quote any bytes (a meeting's, cut inside a character): as UTF-8, so the
  // message can be stored and sent as JSON.
  msg = utf8_excerpt(msg, kMaxErrorMessage);
  return Status::Script(msg + " [" + context + "]");
}

int ScriptState::msgh(lua_State* L) {
  ScriptState& s = self(L);
  std::string msg;
  if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER) {
    msg = lua_tostring(L, 1);
  } else if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
    msg = lua_tostring(L, -1);
  } else {
    msg = std::string("(error object is a ") + luaL_typename(L, 1) + " value)";
  }
  if (!has_location(msg)) msg = lua_location(L) + msg;
  s.traceback_ = "stack traceback:";
  lua_Debug ar;
  for (int level = 1; level < 24 && lua_getstack(L, level, &ar); ++level) {
    if (!lua_getinfo(L, "Sln", &ar) || ar.currentline <= 0) continue;
    s.traceback_ += "\n  " + std::string(ar.short_src) + ":" + std::to_string(ar.currentline);
    if (ar.name) s.traceback_ += std::string(" in function '") + ar.name + "'";
  }
  lua_pushlstring(L, msg.data(), msg.size());
  return 1;
}

int ScriptState::setup(lua_State* L) {
  ScriptState& s = self(L);
  const ScriptConfig& c = s.services_->config;
  SandboxOptions opts;
  opts.mode = s.services_->mode;
  opts.patterns.max_subject = c.max_pattern_subject;
  opts.patterns.max_depth = c.max_call_depth;
  opts.require = &ScriptState::require;
  open_sandbox(L, opts);
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kLoaded);
  lua_newtable(L);
  int envs = lua_gettop(L);
  lua_pushvalue(L, envs);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kEnvs);
  lua_Integer i = 0;
  for (const ScriptSource& src : s.gen_->entries()) {
    std::string chunk = "@" + src.display;
    if (luaL_loadbufferx(L, src.text.data(), src.text.size(), chunk.c_str(), "t") != LUA_OK) return lua_error(L);
    int fn = lua_gettop(L);
    push_new_env(L);
    lua_pushvalue(L, -1);
    lua_setupvalue(L, fn, 1);  // _ENV
    lua_pushvalue(L, fn);
    lua_call(L, 0, 0);
    lock_env(L, -1);
    push_env_globals(L, -1);  // hooks are looked up there: the environment itself stays empty
    lua_replace(L, -2);
    lua_pushnil(L);
    while (lua_next(L, -2)) {  // remember the hooks this script defines
      if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TFUNCTION &&
          std::strncmp(lua_tostring(L, -2), "on_", 3) == 0) {
        s.hooks_.insert(lua_tostring(L, -2));
      }
      lua_pop(L, 1);
    }
    lua_rawseti(L, envs, ++i);
    lua_pop(L, 1);
  }
  return 0;
}

int ScriptState::require(lua_State* L) {
  ScriptState& s = self(L);
  size_t len;
  const char* name = luaL_checklstring(L, 1, &len);
  auto rel = module_path({name, len});
  if (!rel.ok()) return luaL_error(L, "require: %s", rel.status().message().c_str());
  lua_settop(L, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kLoaded);
  int loaded = lua_gettop(L);
  lua_getfield(L, loaded, name);
  if (lua_touserdata(L, -1) == &kLoading) return luaL_error(L, "require: loop while loading module '%s'", name);
  if (!lua_isnil(L, -1)) return 1;
  lua_pop(L, 1);
  s.host_call_begin();
  auto src = s.gen_->module(*rel);
  s.host_call_end();
  if (!src.ok()) {
    if (src.code() == Code::kNotFound) {
      return luaL_error(L, "module '%s' not found: no file %s in the scripts directory", name,
                        s.gen_->display(*rel).c_str());
    }
    return luaL_error(L, "require '%s': %s", name, src.status().message().c_str());
  }
  const ScriptSource& m = *src.value();
  std::string chunk = "@" + m.display;
  if (luaL_loadbufferx(L, m.text.data(), m.text.size(), chunk.c_str(), "t") != LUA_OK) return lua_error(L);
  int fn = lua_gettop(L);
  lua_pushlightuserdata(L, const_cast<char*>(&kLoading));
  lua_setfield(L, loaded, name);
  push_new_env(L);
  int env = lua_gettop(L);
  lua_pushvalue(L, env);
  lua_setupvalue(L, fn, 1);
  lua_pushvalue(L, fn);
  lua_pushvalue(L, 1);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    // Forget the half-loaded module so a later require reports its real error again.
    lua_pushnil(L);
    lua_setfield(L, loaded, name);
    return lua_error(L);
  }
  lock_env(L, env);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, loaded, name);
  return 1;
}

int ScriptState::dispatch(lua_State* L) {
  ScriptState& s = self(L);
  const HookCall& c = *s.call_;
  int64_t t0 = StateLimits::now_ns();
  refresh_for_event(L);
  int first = lua_gettop(L) + 1;
  switch (c.args) {
    case HookArgs::kMeeting:
    case HookArgs::kSummary: {
      std::string err;
      bool pushed;
      if (c.args == HookArgs::kMeeting) {
        // A long transcript (thousands of Lua tables) is built only if the script reads it.
        s.lazy_.text = c.json;
        s.lazy_.parsed = c.parsed;
        s.lazy_.max_depth = s.max_depth();
        ++s.lazy_.generation;
        pushed = lua::push_json_object_lazy(L, &s.lazy_, {"transcript"}, kLazyTranscriptItems, &err);
      } else {
        pushed = lua::push_json_text(L, c.json, s.max_depth(), &err);
      }
      if (!pushed) {
        return luaL_error(L, "the event's %s JSON is malformed: %s", c.args == HookArgs::kMeeting ? "meeting" : "summary",
                          err.c_str());
      }
      if (c.args == HookArgs::kMeeting && s.domains_.empty()) {
        std::string d = recorder_domain(L, -1);
        if (!d.empty()) {
          s.domains_.push_back(d);
          s.domains_from_recorder_ = true;
        }
      }
      break;
    }
    case HookArgs::kIntegration:
      push_integration(L, c.id);
      break;
    case HookArgs::kIntegrationReason:
      push_integration(L, c.id);
      lua_pushlstring(L, c.reason.data(), c.reason.size());
      break;
  }
  lua_createtable(L, 0, 11);
  set_string(L, "hook", c.id.hook);
  set_integer(L, "integration_id", c.id.integration_id);
  set_string(L, "tenant_id", c.id.tenant_id);
  set_string(L, "user_id", c.id.user_id);
  set_integer(L, "recording_id", c.id.recording_id);
  set_integer(L, "content_version", c.id.content_version);
  set_string(L, "event_id", c.id.event_id);
  set_string(L, "source", c.id.source);
  lua_pushboolean(L, s.services_->dry_run);
  lua_setfield(L, -2, "dry_run");
  lua_createtable(L, static_cast<int>(s.domains_.size()), 0);
  for (size_t i = 0; i < s.domains_.size(); ++i) {
    lua_pushlstring(L, s.domains_[i].data(), s.domains_[i].size());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  lua_setfield(L, -2, "company_domains");
  int nargs = lua_gettop(L) - first + 1;
  int64_t t1 = StateLimits::now_ns();
  s.timings_.convert_ns = t1 - t0;

  lua_rawgetp(L, LUA_REGISTRYINDEX, &kEnvs);
  int envs = lua_gettop(L);
  lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, envs));
  for (lua_Integer i = 1; i <= n; ++i) {
    lua_rawgeti(L, envs, i);
    lua_pushlstring(L, c.id.hook.data(), c.id.hook.size());
    int t = lua_rawget(L, -2);
    if (t == LUA_TNIL) {
      lua_pop(L, 2);
      continue;
    }
    if (t != LUA_TFUNCTION) {
      return luaL_error(L, "%s in %s is a %s, not a function", c.id.hook.c_str(),
                        s.gen_->entries()[static_cast<size_t>(i - 1)].display.c_str(), lua_typename(L, t));
    }
    for (int a = 0; a < nargs; ++a) lua_pushvalue(L, first + a);
    lua_call(L, nargs, 0);
    // A C function (pcall at a tail position) may have swallowed a stop: raise it again here.
    if (s.limits_->stopped()) {
      lua_pushlstring(L, s.limits_->stop_message().data(), s.limits_->stop_message().size());
      return lua_error(L);
    }
    lua_pop(L, 1);
  }
  s.timings_.script_ns = StateLimits::now_ns() - t1;
  return 0;
}

Status ScriptState::call(const HookCall& call) {
  if (!healthy_) return Status::Internal("a Lua state was used after an error");
  begin_event(&call);
  Status st = run_protected(&ScriptState::dispatch, event_context(call.id));
  ++lazy_.generation;  // the event's text is gone: a meeting kept past it cannot read it any more
  lazy_.text = {};
  lazy_.parsed = nullptr;
  call_ = nullptr;
  ops_.reset();
  return st;
}

// ---------------------------------------------------------------- LuaHost

bool ScriptState::crm_has(std::string_view op) const { return ops_ && ops_->find(op) != ops_->end(); }

std::vector<std::string> ScriptState::crm_operations() const {
  std::vector<std::string> out;
  if (ops_) {
    for (const auto& [name, _] : *ops_) out.push_back(name);
  }
  return out;
}

Result<std::string> ScriptState::crm_call(std::string_view op, std::string args_json) {
  if (!call_) return Status::FailedPrecondition("CRM operations can only be called from a hook, not at a script's top level");
  auto it = ops_->find(op);
  if (it == ops_->end()) return Status::NotFound("no such CRM operation");
  if (++crm_calls_ > services_->config.crm_calls_per_event) {
    limits_->stop_crm_calls();
    return Status::RateLimited("at most " + std::to_string(services_->config.crm_calls_per_event) +
                               " CRM calls per event (scripts.crm_calls_per_event)");
  }
  int n = ++crm_counts_[std::string(op)];
  const EventIdentity& id = call_->id;
  CrmCall cc;
  cc.operation = std::string(op);
  cc.args_json = std::move(args_json);
  cc.idempotency_key = "fb1:" + std::to_string(id.integration_id) + ":" + id.event_id + ":" + id.hook + ":" +
                       cc.operation + ":" + std::to_string(n);
  cc.integration_id = id.integration_id;
  cc.tenant_id = id.tenant_id;
  cc.user_id = id.user_id;
  cc.dry_run = services_->dry_run;
  cc.script_version = gen_->version_id();
  if (!cc.dry_run) CrmAttribution::record(cc.script_version);  // the job log / webhook event record
  Result<std::string> r = it->second(cc);
  if (services_->crm_observer) services_->crm_observer(cc, r);
  return r;
}

int64_t ScriptState::current_recording_id() const { return call_ ? call_->id.recording_id : 0; }

Result<std::string> ScriptState::fathom_content(std::string_view what, int64_t recording_id) {
  if (!call_) return Status::FailedPrecondition("fathom: only available inside a hook");
  std::string key = std::string(what) + ":" + std::to_string(recording_id);
  if (auto it = fathom_cache_.find(key); it != fathom_cache_.end()) return it->second;
  if (!services_->content) {
    return Status::Unavailable(services_->dry_run
                                   ? "fathom: no Fathom access in a dry run (the meeting's own transcript and "
                                     "default_summary fields are available when the file has them)"
                                   : "fathom: no content source is configured");
  }
  if (fathom_calls_ >= services_->config.fathom_calls_per_event) {
    return Status::RateLimited("fathom: at most " + std::to_string(services_->config.fathom_calls_per_event) +
                               " calls per event (scripts.fathom_calls_per_event)");
  }
  ++fathom_calls_;
  Result<std::string> r = what == "transcript"
                              ? services_->content->transcript_json(call_->id.integration_id, recording_id)
                              : services_->content->summary_json(call_->id.integration_id, recording_id);
  if (r.ok()) fathom_cache_[key] = r.value();
  return r;
}

Result<std::optional<std::string>> ScriptState::store_get(std::string_view key) {
  if (!call_) return Status::FailedPrecondition("store: only available inside a hook");
  return services_->store->get(call_->id.integration_id, key);
}

Status ScriptState::store_set(std::string_view key, std::string_view value_json) {
  if (!call_) return Status::FailedPrecondition("store: only available inside a hook");
  return services_->store->set(call_->id.integration_id, key, value_json);
}

Status ScriptState::store_delete(std::string_view key) {
  if (!call_) return Status::FailedPrecondition("store: only available inside a hook");
  return services_->store->remove(call_->id.integration_id, key);
}

void ScriptState::log(LogLevel level, std::string_view script, std::string_view message) {
  if (++log_lines_ > kMaxLogLinesPerEvent) {
    if (log_lines_ != kMaxLogLinesPerEvent + 1) return;
    level = LogLevel::kWarn;
    message = "log limit reached: further lines of this event are dropped";
  }
  if (services_->log_sink) {
    services_->log_sink(level, script, message);
    return;
  }
  if (!log_enabled(level)) return;
  std::string line = "[" + std::string(script) + "] " + std::string(message);
  log_write(level, "script", line);
}

HookCall meeting_hook_call(const char* hook, const MeetingEvent& event) {
  HookCall c;
  c.id.hook = hook;
  c.id.integration_id = event.integration_id;
  c.id.tenant_id = event.tenant_id;
  c.id.user_id = event.user_id;
  c.id.recording_id = event.recording_id;
  c.id.content_version = event.content_version;
  c.id.event_id = "rec" + std::to_string(event.recording_id) + ".v" + std::to_string(event.content_version);
  c.id.source = event.source;
  c.args = HookArgs::kMeeting;
  c.json = event.raw_json;
  c.parsed = event.parsed;
  return c;
}

}  // namespace fb::detail
