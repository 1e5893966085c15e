// The log module: lines go to the host's log (FB_LOG, component "script") prefixed with the
// script's name. Arguments are converted like print does; a line is cut at 4 KiB.
#include <algorithm>
#include <string>

#include "core/utf8.h"
#include "lua/lua_host.h"
#include "lua/lua_modules.h"

namespace fb::lua {
namespace {

constexpr size_t kMaxLine = 4096;

int write(lua_State* L, detail::LogLevel level) {
  int n = lua_gettop(L);
  std::string line;
  for (int i = 1; i <= n && line.size() < kMaxLine; ++i) {
    size_t len;
    const char* s = luaL_tolstring(L, i, &len);  // honours __tostring; json.null prints "null"
    if (i > 1) line += ' ';
    // Only what can still be shown: a 60 MB argument is not copied (outside the script's memory
    // limit) to keep its first 4 KiB.
    line.append(s, std::min(len, kMaxLine + 1 - std::min(line.size(), kMaxLine)));
    lua_pop(L, 1);
  }
  if (line.size() > kMaxLine) line = detail::utf8_text(line, kMaxLine) + "...";  // cut on a character
  std::string script = script_name(L, 1);
  host(L).log(level, script, line);
  return 0;
}

// log.debug(...) / log.info(...) / log.warn(...) / log.error(...) -> nothing. Never raises
// (except from a __tostring metamethod).
int log_debug(lua_State* L) { return write(L, detail::LogLevel::kDebug); }
int log_info(lua_State* L) { return write(L, detail::LogLevel::kInfo); }
int log_warn(lua_State* L) { return write(L, detail::LogLevel::kWarn); }
int log_error(lua_State* L) { return write(L, detail::LogLevel::kError); }

}  // namespace

// print(...) -> nothing: log.info. Never raises.
int lua_print(lua_State* L) { return log_info(L); }

int luaopen_fb_log(lua_State* L) {
  static const luaL_Reg kFuncs[] = {{"debug", log_debug}, {"info", log_info}, {"warn", log_warn},
                                    {"error", log_error}, {nullptr, nullptr}};
  luaL_newlib(L, kFuncs);
  return 1;
}

}  // namespace fb::lua
