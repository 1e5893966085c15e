// The fathom module: read-only access to a recording's transcript and summary through the host's
// MeetingContentSource (cache first, then the rate-limited API). The host bounds the number of
// calls per event; over the bound, and on every API failure, the functions return nil, message, code.
#include <string>

#include "lua/lua_host.h"
#include "lua/lua_json.h"
#include "lua/lua_modules.h"

namespace fb::lua {
namespace {

int content(lua_State* L, const char* what) {
  lua_Integer rec = luaL_optinteger(L, 1, 0);
  if (rec == 0) rec = host(L).current_recording_id();
  if (rec <= 0) return luaL_argerror(L, 1, "no recording in this hook: pass a recording id");
  Result<std::string> r = guard_host_call<std::string>(
      L, [&](LuaHost& h) { return h.fathom_content(what, static_cast<int64_t>(rec)); });
  if (!r.ok()) return push_failure(L, r.status());
  std::string error;
  if (!push_json_text(L, r.value(), host(L).max_depth(), &error)) {
    return push_failure(L, Status::Malformed(std::string("fathom.") + what + ": " + error));
  }
  return 1;
}

// fathom.transcript([recording_id]) -> array of {speaker, text, timestamp} | nil, message, code.
// Raises only when there is no recording to read.
int fathom_transcript(lua_State* L) { return content(L, "transcript"); }

// fathom.summary([recording_id]) -> {template_name, markdown_formatted} | nil, message, code.
// Raises only when there is no recording to read.
int fathom_summary(lua_State* L) { return content(L, "summary"); }

}  // namespace

int luaopen_fb_fathom(lua_State* L) {
  static const luaL_Reg kFuncs[] = {{"transcript", fathom_transcript}, {"summary", fathom_summary}, {nullptr, nullptr}};
  luaL_newlib(L, kFuncs);
  return 1;
}

}  // namespace fb::lua
