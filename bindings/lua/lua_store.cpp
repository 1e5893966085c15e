// The store module: a small per-integration key/value store persisted by the host (SQLite table
// script_store), for state a rule needs across events ("reconnect task already open").
// Values are anything json.encode accepts. Misuse raises; storage failures return nil, message, code.
#include <string>

#include "lua/lua_host.h"
#include "lua/lua_json.h"
#include "lua/lua_modules.h"

namespace fb::lua {
namespace {

constexpr size_t kMaxKey = 200;
constexpr size_t kMaxValue = 64 * 1024;

std::string_view key_arg(lua_State* L) {
  size_t len;
  const char* k = luaL_checklstring(L, 1, &len);
  if (len == 0 || len > kMaxKey) luaL_argerror(L, 1, "key must be 1 to 200 bytes");
  return {k, len};
}

// store.get(key) -> value | nil (absent) | nil, message, code (storage failure). Raises on a bad key.
int store_get(lua_State* L) {
  std::string_view key = key_arg(L);
  auto r = guard_host_call<std::optional<std::string>>(L, [&](LuaHost& h) { return h.store_get(key); });
  if (!r.ok()) return push_failure(L, r.status());
  if (!r.value()) {
    lua_pushnil(L);
    return 1;
  }
  std::string error;
  if (!push_json_text(L, *r.value(), host(L).max_depth(), &error)) {
    return push_failure(L, Status::Malformed("store.get: stored value is not JSON: " + error));
  }
  return 1;
}

// store.delete(key) -> true | nil, message, code. Raises on a bad key.
int store_delete(lua_State* L) {
  std::string_view key = key_arg(L);
  auto r = guard_host_call<bool>(L, [&](LuaHost& h) -> Result<bool> {
    FB_TRY(h.store_delete(key));
    return true;
  });
  if (!r.ok()) return push_failure(L, r.status());
  lua_pushboolean(L, 1);
  return 1;
}

// store.set(key, value) -> true | nil, message, code. value nil deletes. Raises on a bad key, a
// value JSON cannot hold, or a value over 64 KiB encoded.
int store_set(lua_State* L) {
  std::string_view key = key_arg(L);
  if (lua_isnoneornil(L, 2)) return store_delete(L);
  std::string value;
  // Bounded while encoding: a table that shares one subtree many times ({t, t} forty levels deep)
  // is small in Lua and exabytes as text. kMaxValue + 2 refuses nothing the check below accepts.
  encode_json(L, 2, host(L).max_depth(), &value, kMaxValue + 2, "store values over 64 KiB are refused");
  if (value.size() > kMaxValue) luaL_argerror(L, 2, "value is over 64 KiB when encoded");
  auto r = guard_host_call<bool>(L, [&](LuaHost& h) -> Result<bool> {
    FB_TRY(h.store_set(key, value));
    return true;
  });
  if (!r.ok()) return push_failure(L, r.status());
  lua_pushboolean(L, 1);
  return 1;
}

}  // namespace

int luaopen_fb_store(lua_State* L) {
  static const luaL_Reg kFuncs[] = {{"get", store_get}, {"set", store_set}, {"delete", store_delete}, {nullptr, nullptr}};
  luaL_newlib(L, kFuncs);
  return 1;
}

}  // namespace fb::lua
