#include "lua/lua_host.h"

#include <cstring>

namespace fb::lua {

static_assert(LUA_EXTRASPACE >= sizeof(LuaHost*), "the host pointer lives in the state's extra space");

LuaHost& host(lua_State* L) {
  LuaHost* h = nullptr;
  std::memcpy(&h, lua_getextraspace(L), sizeof h);
  return *h;
}

void set_host(lua_State* L, LuaHost* h) { std::memcpy(lua_getextraspace(L), &h, sizeof h); }

int push_failure(lua_State* L, const Status& s) {
  luaL_pushfail(L);
  lua_pushlstring(L, s.message().data(), s.message().size());
  lua_pushstring(L, code_name(s.code()));
  return 3;
}

std::string script_name(lua_State* L, int level) {
  lua_Debug ar;
  // The first Lua function at or above level: a binding called from a helper still names the
  // script that called it.
  for (int l = level; lua_getstack(L, l, &ar); ++l) {
    if (lua_getinfo(L, "S", &ar) && ar.what && std::strcmp(ar.what, "C") != 0) return ar.short_src;
  }
  return "?";
}

}  // namespace fb::lua
