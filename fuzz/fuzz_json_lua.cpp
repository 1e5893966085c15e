// JSON to Lua conversion (bindings/lua/lua_json.cpp), including the lazy transcript that the
// meeting event uses. For any input that parses:
//  - decode then encode is stable: encode(decode(encode(decode(x)))) == encode(decode(x));
//  - the lazy object (transcript left out and built on first read) encodes exactly like the eager
//    one, whether the member was read first (__index) or not (encode materialises it);
//  - after the event (generation bumped) reading a member that was never built raises a Lua error
//    instead of touching freed text.
// Malformed input must fail cleanly with an error and push nothing.
#include <lua.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "lua/lua_json.h"

namespace {

constexpr int kDepth = 64;

struct Job {
  std::string_view text;
  uint64_t generation = 1;
};

[[noreturn]] void fail(const char* what, const std::string& a, const std::string& b) {
  std::fprintf(stderr, "%s\n  a: %s\n  b: %s\n", what, a.c_str(), b.c_str());
  std::abort();
}

int body(lua_State* L) {
  auto* job = static_cast<Job*>(lua_touserdata(L, 1));
  lua_settop(L, 0);
  std::string err;
  if (!fb::lua::push_json_text(L, job->text, kDepth, &err)) {
    if (lua_gettop(L) != 0 || err.empty()) fail("failed parse pushed a value or gave no reason", err, "");
    return 0;
  }
  std::string e1;
  fb::lua::encode_json(L, -1, kDepth + 1, &e1);
  lua_settop(L, 0);
  if (!fb::lua::push_json_text(L, e1, kDepth + 1, &err)) fail("our own encoding does not parse", e1, err);
  std::string e2;
  fb::lua::encode_json(L, -1, kDepth + 1, &e2);
  if (e1 != e2) fail("encode(decode()) is not stable", e1, e2);
  lua_settop(L, 0);

  // The lazy object, twice: once read through __index and pairs, once encoded directly.
  for (int read_first = 0; read_first < 2; ++read_first) {
    fb::lua::LazyJsonSource src{.text = job->text, .generation = job->generation, .max_depth = kDepth};
    if (!fb::lua::push_json_object_lazy(L, &src, {"transcript", "action_items"}, 0, &err)) {
      fail("lazy push refused what the eager push accepted", std::string(job->text), err);
    }
    if (read_first && lua_istable(L, -1)) {
      lua_getfield(L, -1, "transcript");
      lua_pop(L, 1);
      lua_pushnil(L);
      while (lua_next(L, -2)) lua_pop(L, 1);
    }
    std::string lazy;
    fb::lua::encode_json(L, -1, kDepth + 1, &lazy);
    if (lazy != e1) fail("lazy object encodes differently from the eager one", lazy, e1);
    lua_settop(L, 0);
  }

  // Read after its event: a member never built must raise, not read the (gone) text.
  fb::lua::LazyJsonSource src{.text = job->text, .generation = job->generation, .max_depth = kDepth};
  if (fb::lua::push_json_object_lazy(L, &src, {"transcript"}, 0, &err) && lua_istable(L, -1)) {
    src.text = std::string_view();  // the event's text is gone
    ++src.generation;
    lua_getfield(L, -1, "transcript");  // raises (caught by the pcall) when it was left out
  }
  lua_settop(L, 0);
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static lua_State* L = [] {
    lua_State* s = luaL_newstate();
    luaL_openlibs(s);
    fb::lua::install_null_metatable(s);
    return s;
  }();
  Job job{std::string_view(reinterpret_cast<const char*>(data), size), 1};
  lua_pushcfunction(L, body);
  lua_pushlightuserdata(L, &job);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    std::string m = lua_tostring(L, -1) ? lua_tostring(L, -1) : "?";
    lua_pop(L, 1);
    // The only error allowed is the documented one for a member read after its event.
    if (m.find("can only be read while its event is handled") == std::string::npos) {
      fail("unexpected Lua error", m, std::string(job.text.substr(0, 200)));
    }
  }
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
