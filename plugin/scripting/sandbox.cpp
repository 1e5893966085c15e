#include "scripting/sandbox.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "lua/lua_host.h"
#include "lua/lua_json.h"
#include "lua/lua_modules.h"
#include "scripting/limits.h"

namespace fb::detail {
namespace {

// Registry keys (their addresses).
const char kPristine = 0;   // name -> pristine value (library tables with only allowed fields)
const char kBase = 0;       // the current base table
const char kBaseMeta = 0;   // metatable of every base: strict reads
const char kEnvOpen = 0;    // metatable of an environment during its chunk's top level
const char kEnvLocked = 0;  // metatable of a locked environment
const char kMode = 0;       // SandboxMode as an integer
const char kRealLoad = 0;   // the unrestricted load, used by the safe one

const char* const kMarker = "__fb_protected";  // set in every metatable of ours

bool is_ours(lua_State* L, int idx) {
  if (!lua_getmetatable(L, idx)) return false;
  lua_pushstring(L, kMarker);
  bool ours = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  return ours;
}

// __index of a base: the name is not a global anywhere.
int undefined_global(lua_State* L) {
  if (lua_type(L, 2) == LUA_TSTRING) return luaL_error(L, "undefined global '%s'", lua_tostring(L, 2));
  return luaL_error(L, "undefined global (a %s key)", luaL_typename(L, 2));
}

// __newindex of a locked environment.
int locked_global(lua_State* L) {
  return luaL_error(L,
                    "assignment to global '%s' outside the script's top level (keep per-event state in locals, "
                    "lasting state in the store module)",
                    lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?");
}

// __newindex of a read-only proxy; upvalue 1 is the library's name.
int readonly_write(lua_State* L) {
  return luaL_error(L, "attempt to modify read-only table '%s' (field '%s')", lua_tostring(L, lua_upvalueindex(1)),
                    lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?");
}

// The iterator of a proxy's pairs(): next over the table in upvalue 1, whatever the state
// argument, so the real table is never handed to the script.
int proxy_next(lua_State* L) {
  lua_settop(L, 2);
  if (lua_next(L, lua_upvalueindex(1))) return 2;
  lua_pushnil(L);
  return 1;
}

// __pairs of a proxy: iterate the table behind it. Upvalue 1 is proxy_next over that table. The
// state returned is the proxy itself: returning the real table (as `next, real, nil`) let
// `local _, real = pairs(string)` write into the library every later event shares.
int proxy_pairs(lua_State* L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

void mark(lua_State* L, int mt_idx) {
  mt_idx = lua_absindex(L, mt_idx);
  lua_pushboolean(L, 1);
  lua_setfield(L, mt_idx, kMarker);
}

// Replaces the function on top of the stack (the proxy's __newindex) by the metatable of a proxy
// for the table at idx: reads and pairs() go to that table, writes call the function.
void push_proxy_meta(lua_State* L, int idx, const char* protected_as) {
  idx = lua_absindex(L, idx);
  int newindex = lua_gettop(L);
  lua_createtable(L, 0, 5);
  lua_pushvalue(L, idx);
  lua_setfield(L, -2, "__index");
  lua_pushvalue(L, newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushvalue(L, idx);
  lua_pushcclosure(L, proxy_next, 1);
  lua_pushcclosure(L, proxy_pairs, 1);
  lua_setfield(L, -2, "__pairs");
  lua_pushstring(L, protected_as);
  lua_setfield(L, -2, "__metatable");
  mark(L, -1);
  lua_remove(L, newindex);
}

// Pushes a read-only proxy of the table at idx.
void push_proxy(lua_State* L, int idx, const char* name) {
  idx = lua_absindex(L, idx);
  lua_newtable(L);
  lua_pushstring(L, name);
  lua_pushcclosure(L, readonly_write, 1);
  push_proxy_meta(L, idx, "read-only");
  lua_setmetatable(L, -2);
}

// Pushes a shallow copy of the table at idx, sharing its metatable.
void push_copy(lua_State* L, int idx) {
  idx = lua_absindex(L, idx);
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
  if (lua_getmetatable(L, idx)) lua_setmetatable(L, -2);
}

SandboxMode mode_of(lua_State* L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kMode);
  auto m = static_cast<SandboxMode>(lua_tointeger(L, -1));
  lua_pop(L, 1);
  return m;
}

// Builds a base from the pristine values (proxies or copies) and makes it current.
void build_base(lua_State* L, SandboxMode mode) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kPristine);
  int pristine = lua_gettop(L);
  lua_createtable(L, 0, 40);
  int base = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, pristine)) {
    if (lua_type(L, -1) == LUA_TTABLE) {
      if (mode == SandboxMode::kReadOnlyProxies) {
        push_proxy(L, -1, lua_tostring(L, -2));
      } else {
        push_copy(L, -1);
      }
      lua_replace(L, -2);
    }
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, base);
  }
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kBaseMeta);
  lua_setmetatable(L, base);
  for (const void* key : {static_cast<const void*>(&kEnvOpen), static_cast<const void*>(&kEnvLocked)}) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, key);
    lua_pushvalue(L, base);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
  }
  lua_pushvalue(L, base);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kBase);
  lua_settop(L, pristine - 1);
}

// ---------------------------------------------------------------- safe base functions

// setmetatable(t, mt) -> t. Raises for __gc metamethods and protected metatables.
int safe_setmetatable(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int t = lua_type(L, 2);
  luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
  if (t == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL) {
      return luaL_error(L, "setmetatable: __gc metamethods are not allowed in scripts (a finalizer runs outside the "
                           "script's time budget)");
    }
    lua_pop(L, 1);
  }
  if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL) return luaL_error(L, "cannot change a protected metatable");
  lua_settop(L, 2);
  lua_setmetatable(L, 1);
  return 1;
}

// rawset(t, k, v) -> t. Raises for the sandbox's own tables (environments, read-only proxies).
int safe_rawset(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkany(L, 2);
  luaL_checkany(L, 3);
  if (is_ours(L, 1)) return luaL_error(L, "rawset: this table is protected by the sandbox");
  lua_settop(L, 3);
  lua_rawset(L, 1);
  return 1;
}

// The most source text one load() compiles. Lua's parser matches gotos and labels against each
// other in quadratic time inside one C call, where no budget hook fires: a hostile 23 MB chunk of
// them kept the parser busy for 17 s past a 2 s budget, and 1 MiB of the densest blocks still took
// over 2 s. The densest 256 KiB (one block of ~8,000 gotos and labels) parse in ~0.1 s.
constexpr size_t kMaxLoadBytes = size_t{256} << 10;

// A reader function's pieces, counted: upvalue 1 the script's reader, 2 the bytes read so far.
int counted_reader(lua_State* L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_call(L, 0, 1);
  size_t n = 0;
  if (lua_isstring(L, -1)) lua_tolstring(L, -1, &n);  // a number piece is text to the parser too
  const lua_Integer total = lua_tointeger(L, lua_upvalueindex(2)) + static_cast<lua_Integer>(n);
  if (static_cast<size_t>(total) > kMaxLoadBytes) {
    return luaL_error(L, "load: chunk is over the limit of %d bytes", static_cast<int>(kMaxLoadBytes));
  }
  lua_pushinteger(L, total);
  lua_replace(L, lua_upvalueindex(2));
  return 1;
}

// load(chunk [, chunkname [, mode [, env]]]) -> function | nil, message. Text chunks only, of at
// most kMaxLoadBytes; without env the chunk gets a new, isolated environment (never the state's
// globals).
int safe_load(lua_State* L) {
  bool has_env = !lua_isnone(L, 4);
  luaL_checkany(L, 1);
  lua_settop(L, 4);
  if (lua_type(L, 1) == LUA_TSTRING && lua_rawlen(L, 1) > kMaxLoadBytes) {
    luaL_pushfail(L);
    lua_pushfstring(L, "load: chunk of %I bytes is over the limit of %d bytes",
                    static_cast<lua_Integer>(lua_rawlen(L, 1)), static_cast<int>(kMaxLoadBytes));
    return 2;
  }
  if (lua_type(L, 1) == LUA_TFUNCTION) {
    lua_pushvalue(L, 1);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, counted_reader, 2);
    lua_replace(L, 1);
  }
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kRealLoad);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushliteral(L, "t");  // binary chunks (bytecode) can crash the VM: never
  if (has_env) {
    lua_pushvalue(L, 4);
  } else {
    push_new_env(L);
  }
  lua_call(L, 4, LUA_MULTRET);
  return lua_gettop(L) - 4;
}

// The message handler of safe_xpcall; upvalue 1 is the script's handler. After a budget stop the
// script's handler is not called and the stop's message stays the error: Lua calls a message
// handler before unwinding, and when the error was raised by the budget hook it does so with hooks
// off (none may run inside a hook), so `xpcall(loop, loop)` would loop with nothing to stop it.
int guarded_handler(lua_State* L) {
  if (budget_stopped(L)) return 1;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

// xpcall(f, msgh, ...) -> true, results... | false, msgh's result. Lua's xpcall, except that the
// handler is skipped after a budget stop (guarded_handler). Raises when msgh is not a function.
int safe_xpcall(lua_State* L) {
  int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, guarded_handler, 1);
  lua_replace(L, 2);
  lua_pushboolean(L, 1);  // the first result when f succeeds
  lua_pushvalue(L, 1);
  lua_rotate(L, 3, 2);  // true and f go below f's arguments
  if (lua_pcall(L, n - 2, LUA_MULTRET, 2) != LUA_OK) {
    lua_pushboolean(L, 0);
    lua_pushvalue(L, -2);
    return 2;
  }
  return lua_gettop(L) - 2;
}

// collectgarbage("count") -> KiB in use. Any other option raises.
int safe_collectgarbage(lua_State* L) {
  const char* opt = luaL_optstring(L, 1, "collect");
  if (std::strcmp(opt, "count") != 0) {
    return luaL_error(L, "collectgarbage('%s') is not allowed in scripts (only 'count')", opt);
  }
  lua_pushnumber(L, lua_gc(L, LUA_GCCOUNT) + lua_gc(L, LUA_GCCOUNTB) / 1024.0);
  return 1;
}

// ---------------------------------------------------------------- table library loops

// table.move, insert, remove and sort loop in C, where no count hook fires, for as many elements as
// a range or the table's length says; moving or shifting nils stores and allocates nothing, so
// neither the memory cap nor the time budget saw `table.move({}, 1, math.maxinteger - 1, 1, {})`
// or a __len of 2^50, and the worker never came back. No table a script can build holds more
// elements than its memory cap has 16-byte slots for, so a longer range is refused; a __len is
// refused outright, because the original calls it again after any check of ours.
lua_Integer max_table_elements(lua_State* L) {
  void* ud = nullptr;
  if (lua_getallocf(L, &ud) != &StateLimits::alloc) return lua_Integer{1} << 24;
  return std::max<lua_Integer>(static_cast<const StateLimits*>(ud)->limits().memory_limit_bytes / 16, 1024);
}

// Upvalue 1: the library's function; upvalue 2: its name ("table.move"). Checks, then runs it in
// this same call, so its errors still name 'move' or 'table.move'.
int bounded_table_call(lua_State* L) {
  const char* name = lua_tostring(L, lua_upvalueindex(2));
  if (std::strcmp(name, "table.move") == 0) {
    lua_Integer f = luaL_checkinteger(L, 2);
    lua_Integer e = luaL_checkinteger(L, 3);
    lua_Integer max = max_table_elements(L);
    if (e >= f) {
      auto n = static_cast<lua_Unsigned>(e) - static_cast<lua_Unsigned>(f) + 1u;
      if (n == 0 || n > static_cast<lua_Unsigned>(max)) {
        return luaL_error(L, "table.move: a range of %s elements is more than a script's table can hold (%I with "
                             "scripts.memory_limit_bytes)",
                          std::to_string(n).c_str(), max);
      }
    }
  } else if (lua_type(L, 1) == LUA_TTABLE && luaL_getmetafield(L, 1, "__len") != LUA_TNIL) {
    return luaL_error(L, "%s: a table with a __len metamethod is not allowed in scripts (its length would bound a loop "
                         "the time budget cannot stop)",
                      name);
  }
  return lua_tocfunction(L, lua_upvalueindex(1))(L);
}

// Replaces table.move/insert/remove/sort in the library table at idx by bounded_table_call.
void bound_table_loops(lua_State* L, int idx) {
  idx = lua_absindex(L, idx);
  for (const char* f : {"move", "insert", "remove", "sort"}) {
    lua_getfield(L, idx, f);
    lua_pushfstring(L, "table.%s", f);
    lua_pushcclosure(L, bounded_table_call, 2);
    lua_setfield(L, idx, f);
  }
}

void copy_field(lua_State* L, int from, int to, const char* name) {
  from = lua_absindex(L, from);
  to = lua_absindex(L, to);
  lua_getfield(L, from, name);
  lua_setfield(L, to, name);
}

}  // namespace

void open_sandbox(lua_State* L, const SandboxOptions& options) {
  lua_pushinteger(L, static_cast<lua_Integer>(options.mode));
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kMode);

  // The real libraries, in the state's own globals (which no script can reach).
  static const luaL_Reg kLibs[] = {{LUA_GNAME, luaopen_base},      {LUA_STRLIBNAME, luaopen_string},
                                   {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
                                   {LUA_UTF8LIBNAME, luaopen_utf8}, {LUA_OSLIBNAME, luaopen_os}};
  for (const auto& lib : kLibs) {
    luaL_requiref(L, lib.name, lib.func, 1);
    lua_pop(L, 1);
  }
  lua_pushglobaltable(L);
  int g = lua_gettop(L);
  lua_getfield(L, g, "load");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kRealLoad);

  // string: bounded patterns, no dump; the metatable of strings is protected.
  lua_getfield(L, g, LUA_STRLIBNAME);
  install_bounded_patterns(L, -1, options.patterns);
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  lua_pop(L, 1);
  lua_pushliteral(L, "");
  lua_getmetatable(L, -1);
  lua_pushliteral(L, "protected by fathom-bridge");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 2);
  lua::install_null_metatable(L);
  lua_getfield(L, g, LUA_TABLIBNAME);
  bound_table_loops(L, -1);
  lua_pop(L, 1);

  // Pristine values: everything a base is built from.
  lua_createtable(L, 0, 40);
  int pristine = lua_gettop(L);
  for (const char* name : {"assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget",
                           "rawlen", "select", "tonumber", "tostring", "type", "_VERSION"}) {
    copy_field(L, g, pristine, name);
  }
  static const luaL_Reg kSafe[] = {{"setmetatable", safe_setmetatable}, {"rawset", safe_rawset},
                                   {"load", safe_load},                 {"collectgarbage", safe_collectgarbage},
                                   {"print", lua::lua_print},           {"xpcall", safe_xpcall},
                                   {nullptr, nullptr}};
  luaL_setfuncs(L, kSafe, 0);
  if (options.require) {
    lua_pushcfunction(L, options.require);
    lua_setfield(L, pristine, "require");
  }
  for (const char* lib : {LUA_STRLIBNAME, LUA_TABLIBNAME, LUA_MATHLIBNAME, LUA_UTF8LIBNAME}) copy_field(L, g, pristine, lib);
  lua_createtable(L, 0, 3);
  lua_getfield(L, g, LUA_OSLIBNAME);
  for (const char* f : {"time", "date", "clock"}) copy_field(L, -1, -2, f);
  lua_pop(L, 1);
  lua_setfield(L, pristine, LUA_OSLIBNAME);
  static const luaL_Reg kModules[] = {{"json", lua::luaopen_fb_json},     {"crm", lua::luaopen_fb_crm},
                                      {"fathom", lua::luaopen_fb_fathom}, {"log", lua::luaopen_fb_log},
                                      {"util", lua::luaopen_fb_util},     {"store", lua::luaopen_fb_store}};
  for (const auto& m : kModules) {
    m.func(L);
    lua_setfield(L, pristine, m.name);
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kPristine);
  lua_pop(L, 1);  // globals

  // Shared metatables: strict base, open and locked environments.
  lua_createtable(L, 0, 3);
  lua_pushcfunction(L, undefined_global);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, "protected by fathom-bridge");
  lua_setfield(L, -2, "__metatable");
  mark(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kBaseMeta);
  for (const void* key : {static_cast<const void*>(&kEnvOpen), static_cast<const void*>(&kEnvLocked)}) {
    lua_createtable(L, 0, 4);
    lua_pushliteral(L, "protected by fathom-bridge");
    lua_setfield(L, -2, "__metatable");
    mark(L, -1);
    if (key == &kEnvLocked) {
      lua_pushcfunction(L, locked_global);
      lua_setfield(L, -2, "__newindex");
    }
    lua_rawsetp(L, LUA_REGISTRYINDEX, key);
  }
  build_base(L, options.mode);
}

void push_new_env(lua_State* L) {
  lua_createtable(L, 0, 8);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "_G");
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kEnvOpen);
  lua_setmetatable(L, -2);
}

void lock_env(lua_State* L, int idx) {
  idx = lua_absindex(L, idx);
  // The top level's globals move to a table the script cannot reach; the environment stays
  // empty, so every assignment to a global (new or existing) reaches __newindex and raises.
  lua_createtable(L, 0, 16);
  int globals = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, globals);
  }
  lua_pushnil(L);
  while (lua_next(L, globals)) {  // clear the environment (lua_next over globals: idx changes)
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_pushnil(L);
    lua_rawset(L, idx);
  }
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kEnvLocked);  // __index: the base; __newindex raises
  lua_setmetatable(L, globals);
  lua_pushcfunction(L, locked_global);
  push_proxy_meta(L, globals, "protected by fathom-bridge");
  lua_setmetatable(L, idx);
  lua_pop(L, 1);  // globals
}

void push_env_globals(lua_State* L, int idx) {
  lua_getmetatable(L, idx);
  lua_pushliteral(L, "__index");
  lua_rawget(L, -2);
  lua_remove(L, -2);
}

void refresh_for_event(lua_State* L) {
  if (mode_of(L) == SandboxMode::kFreshEnvPerEvent) build_base(L, SandboxMode::kFreshEnvPerEvent);
}

}  // namespace fb::detail
