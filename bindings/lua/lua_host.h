// lua_host.h: what the Lua modules (crm, fathom, json, log, util, store) need from their embedding.
//
// The scripting layer (plugin/scripting) implements LuaHost once per lua_State and stores a
// pointer in the state's extra space (set_host); each binding finds it with host(L). The modules
// never see the pool, the config or the CRM registry: only this interface.
//
// Errors: Lua 5.4 is linked as its C++ build (liblua5.4-c++), so lua_error throws and C++
// destructors run while a Lua error unwinds a binding (plugin/scripting/README.md explains the
// choice). A binding still never lets a C++ exception other than Lua's own cross into Lua: Lua's
// catch(...) would turn it into a garbled error, so host calls are wrapped (guard_host_call).
#pragma once

#include <lua.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/log.h"
#include "fathom_bridge/status.h"

namespace fb::lua {

class LuaHost {
 public:
  virtual ~LuaHost() = default;

  // ---- crm ----
  virtual bool crm_has(std::string_view op) const = 0;
  // Registered operation names, sorted.
  virtual std::vector<std::string> crm_operations() const = 0;
  // Calls the host's operation with a JSON object; returns its JSON result (text) or the host's
  // failure. The implementation derives the idempotency key (per event, per operation, per call).
  virtual Result<std::string> crm_call(std::string_view op, std::string args_json) = 0;

  // ---- fathom (read-only) ----
  // The recording of the event being handled (0 outside meeting hooks).
  virtual int64_t current_recording_id() const = 0;
  // what is "transcript" or "summary"; JSON text, or an expected failure (rate limit, not found,
  // no access in a dry run).
  virtual Result<std::string> fathom_content(std::string_view what, int64_t recording_id) = 0;

  // ---- store (per integration) ----
  // JSON text of the value, nullopt when the key is absent.
  virtual Result<std::optional<std::string>> store_get(std::string_view key) = 0;
  virtual Status store_set(std::string_view key, std::string_view value_json) = 0;
  virtual Status store_delete(std::string_view key) = 0;

  // ---- log ----
  virtual void log(detail::LogLevel level, std::string_view script, std::string_view message) = 0;

  // ---- util ----
  // Our company's email domains for util.is_internal, each normalised once (normalize_domain in
  // lua_modules.h): util compares an address's domain with them as they are.
  virtual const std::vector<std::string>& company_domains() const = 0;
  // True when company_domains() is not configured but the recorder's domain, taken as ours: then
  // Fathom's own is_external flag on an invitee is trusted first (a gmail.com recorder's gmail.com
  // client is external).
  virtual bool company_domains_from_recorder() const { return false; }

  // ---- limits ----
  // Nesting bound for JSON encoding/decoding and other recursive bindings.
  virtual int max_depth() const = 0;
  // Largest JSON text json.decode accepts (and json.encode produces), in bytes.
  virtual int64_t max_json_bytes() const = 0;
  // Largest JSON text of a CRM call's arguments, and of its result (scripts.crm_max_bytes).
  virtual int64_t max_crm_bytes() const = 0;
  // Host memory held for the script (a CRM call's encoded arguments, its result text) counts
  // against the script's memory limit while held. False, with the script stopped for memory,
  // when it does not fit; every successful charge is released with the same size.
  virtual bool charge_memory(size_t bytes) = 0;
  virtual void release_memory(size_t bytes) = 0;
  // The script's time budget stops while the host works (a slow CRM is not the script's fault).
  virtual void host_call_begin() = 0;
  virtual void host_call_end() = 0;
};

// The host of a state; set once after the state is created. REQUIRES: set_host was called.
LuaHost& host(lua_State* L);
void set_host(lua_State* L, LuaHost* h);

// Runs fn (a host call) with the budget paused and every C++ exception turned into a Status, so
// nothing but a Lua error ever unwinds through the interpreter.
template <typename T, typename Fn>
Result<T> guard_host_call(lua_State* L, Fn&& fn) {
  LuaHost& h = host(L);
  h.host_call_begin();
  Result<T> r = Status::Internal("host call did not run");
  try {
    r = fn(h);
  } catch (const std::exception& e) {
    r = Status::Internal(std::string("host call threw: ") + e.what());
  } catch (...) {
    r = Status::Internal("host call threw a non-standard exception");
  }
  h.host_call_end();
  return r;
}

// Expected failure, STYLE.md: pushes nil, message, code name; returns 3.
int push_failure(lua_State* L, const Status& s);

// The name of the script running at the given stack level ("scripts/mapping.lua"), or "?".
std::string script_name(lua_State* L, int level = 1);

}  // namespace fb::lua
