// lua_modules.h: entry points of the fathom-bridge Lua modules, in the shape of Lua's own
// luaopen_* functions. Each pushes its module table; none touches the global table (the sandbox
// decides where modules live). Every module needs the state's LuaHost (lua_host.h).
#pragma once

#include <lua.hpp>
#include <string>
#include <string_view>

namespace fb::lua {

int luaopen_fb_json(lua_State* L);    // json: encode, decode, null, array, is_null (lua_json.h)
int luaopen_fb_crm(lua_State* L);     // crm: call, try, has, operations, and crm.<operation>(args)
int luaopen_fb_fathom(lua_State* L);  // fathom: transcript, summary (read-only, rate-limited)
int luaopen_fb_log(lua_State* L);     // log: debug, info, warn, error; and print
int luaopen_fb_util(lua_State* L);    // util: email_domain, is_internal, is_external, parse_time, ...
int luaopen_fb_store(lua_State* L);   // store: get, set, delete (per integration, SQLite)

// One spelling per email domain, as util.email_domain gives it: lowercase, and an internationalised
// domain in its Unicode form whichever form it was written in. A name IDNA refuses: lowercased.
std::string normalize_domain(std::string_view domain);

// print(...) for the sandbox: log.info with the script's name.
int lua_print(lua_State* L);

}  // namespace fb::lua
