// sandbox.h: the globals a script sees, and nothing else.
//
// Allowed: the base functions assert, error, getmetatable, ipairs, next, pairs, pcall, rawequal,
// rawget, rawlen, select, tonumber, tostring, type, xpcall, _VERSION; safe versions of load (text
// chunks only, never the state's globals), setmetatable (no __gc: a finalizer would run outside
// any budget), rawset (refuses the sandbox's own tables), collectgarbage ("count" only), print
// (log.info) and require (the host's, scripts directory only); the string, table, math and utf8
// libraries (string.dump removed, the pattern functions bounded: lua_pattern.h; table.move's range bounded by
// the memory cap, table.insert/remove/sort refuse a table with __len); os.time,
// os.date and os.clock; and the modules json, crm, fathom, log, util, store. Not there: io, debug,
// package, coroutine, dofile, loadfile, os.execute/getenv/remove/exit, ...
//
// Isolation between events and scripts: each chunk (entry script or required module) runs in
// its own environment table whose reads fall through to a shared base table. Reading an
// undefined global raises ("undefined global 'x'"); after the chunk's top level has run its
// environment is locked, so assigning a global from a hook raises. Library and module tables are
// protected one of two ways (SandboxMode, measured in bench/mapping):
//  - kReadOnlyProxies: the base holds empty proxy tables whose __index is the real library and
//    whose __newindex raises; built once per state.
//  - kFreshEnvPerEvent: before every event the base is rebuilt from shallow copies, so whatever a
//    script writes into string/table/... is gone for the next event.
// The string metatable is protected (__metatable), so `getmetatable('').__index` cannot reach the
// real string table either.
#pragma once

#include <lua.hpp>

#include "scripting/lua_pattern.h"

namespace fb::detail {

enum class SandboxMode { kReadOnlyProxies, kFreshEnvPerEvent };

struct SandboxOptions {
  SandboxMode mode = SandboxMode::kReadOnlyProxies;
  PatternLimits patterns;
  lua_CFunction require = nullptr;  // the host's require
};

// Builds the sandbox in a fresh state whose LuaHost is already set. Raises on memory errors:
// call it inside a protected call.
void open_sandbox(lua_State* L, const SandboxOptions& options);

// Pushes a new chunk environment (globals may be assigned until lock_env).
void push_new_env(lua_State* L);
// Locks the environment at idx: assigning a global raises from now on.
void lock_env(lua_State* L, int idx);
// Pushes the table that holds the globals of the environment at idx, which lock_env locked.
void push_env_globals(lua_State* L, int idx);

// kFreshEnvPerEvent: rebuilds the base from copies; a no-op for kReadOnlyProxies.
void refresh_for_event(lua_State* L);

}  // namespace fb::detail
