// The bounded Lua pattern matcher (plugin/scripting/lua_pattern.cpp) against a step budget.
// Input: pattern, a NUL byte, subject (no NUL: the input is the pattern and the subject is a
// fixed text). string.find, match, gmatch and gsub run in a state with the bounded matcher and a
// small budget; each call returns or raises a Lua error, never crashes or runs away (libFuzzer's
// -timeout catches a call that does). When our call finished within the small budget, stock
// Lua 5.4's matcher (the same backtracking, so as bounded) runs the same call in a second state
// and both must agree: the bounded matcher promises Lua's syntax and results.
#include <lua.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "scripting/lua_pattern.h"

namespace {

lua_State* make_state(bool bounded) {
  lua_State* L = luaL_newstate();
  luaL_openlibs(L);
  if (bounded) {
    static fb::detail::PatternLimits limits = [] {
      fb::detail::PatternLimits l;
      l.max_subject = 4096;
      l.max_pattern = 1024;
      l.base_steps = 20000;
      l.steps_per_byte = 8;
      return l;
    }();
    lua_getglobal(L, "string");
    fb::detail::install_bounded_patterns(L, lua_gettop(L), limits);
    lua_pop(L, 1);
  }
  return L;
}

// Runs string.<fn>(subject, pattern, extra...) and renders the outcome as text: "ok:" and the
// results, or "err:" and the message.
std::string run(lua_State* L, const char* fn, std::string_view subject, std::string_view pattern, int variant) {
  lua_settop(L, 0);
  lua_getglobal(L, "string");
  lua_getfield(L, -1, fn);
  lua_remove(L, 1);
  lua_pushlstring(L, subject.data(), subject.size());
  lua_pushlstring(L, pattern.data(), pattern.size());
  int nargs = 2;
  if (std::string_view(fn) == "gsub") {
    lua_pushstring(L, variant == 0 ? "<%0|%1>" : "%%");
    nargs = 3;
  } else if (std::string_view(fn) != "gmatch") {
    lua_pushinteger(L, variant == 0 ? 1 : -3);
    nargs = 3;
  }
  std::string out;
  if (lua_pcall(L, nargs, LUA_MULTRET, 0) != LUA_OK) {
    const char* m = lua_tostring(L, -1);
    return std::string("err:") + (m ? m : "?");
  }
  out = "ok:";
  if (std::string_view(fn) == "gmatch") {
    // Drive the iterator a bounded number of times.
    for (int i = 0; i < 64; ++i) {
      lua_pushvalue(L, 1);
      if (lua_pcall(L, 0, LUA_MULTRET, 0) != LUA_OK) {
        const char* m = lua_tostring(L, -1);
        return std::string("err:") + (m ? m : "?");
      }
      if (lua_gettop(L) < 2 || lua_isnil(L, 2)) break;
      for (int j = 2; j <= lua_gettop(L); ++j) {
        size_t n = 0;
        const char* s = luaL_tolstring(L, j, &n);
        out.append(s, n).push_back('\x1f');
        lua_pop(L, 1);
      }
      lua_settop(L, 1);
    }
    return out;
  }
  for (int j = 1; j <= lua_gettop(L); ++j) {
    size_t n = 0;
    const char* s = luaL_tolstring(L, j, &n);
    out.append(s, n).push_back('\x1f');
    lua_pop(L, 1);
  }
  return out;
}

bool is_limit(const std::string& r) {
  return r.rfind("err:", 0) == 0 && (r.find("too complex") != std::string::npos ||
                                     r.find("over the limit") != std::string::npos ||
                                     r.find("stack overflow") != std::string::npos);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static lua_State* bounded = make_state(true);
  static lua_State* stock = make_state(false);
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t nul = in.find('\0');
  std::string_view pattern = in.substr(0, nul);
  std::string_view subject = nul == std::string_view::npos
                                 ? std::string_view("hello world, 2024-03-01 (a[b]c) aaaaaaaaaaaaaaaaaaaab")
                                 : in.substr(nul + 1);
  if (subject.size() > 256 || pattern.size() > 128) return 0;
  for (const char* fn : {"find", "match", "gmatch", "gsub"}) {
    for (int variant = 0; variant < 2; ++variant) {
      std::string ours = run(bounded, fn, subject, pattern, variant);
      if (is_limit(ours)) continue;
      std::string theirs = run(stock, fn, subject, pattern, variant);
      if (is_limit(theirs)) continue;
      bool ours_ok = ours.rfind("ok:", 0) == 0;
      bool theirs_ok = theirs.rfind("ok:", 0) == 0;
      if (ours_ok != theirs_ok || (ours_ok && ours != theirs)) {
        std::fprintf(stderr, "string.%s variant %d differs from Lua 5.4:\n  ours:  %s\n  stock: %s\n", fn, variant,
                     ours.c_str(), theirs.c_str());
        std::abort();
      }
    }
  }
  lua_gc(bounded, LUA_GCCOLLECT);
  return 0;
}
