// The crm module: the operations the host registered, called with a table and returning a table.
// Redis-style: crm.call raises on a host failure, crm.try returns nil, message, code; both are one
// implementation with a flag. crm.<operation>(args) is crm.call("<operation>", args).
#include <string>

#include "lua/lua_host.h"
#include "lua/lua_json.h"
#include "lua/lua_modules.h"

namespace fb::lua {
namespace {

std::string registered_list(lua_State* L) {
  std::string list;
  for (const auto& op : host(L).crm_operations()) list += (list.empty() ? "" : ", ") + op;
  return list.empty() ? "none" : list;
}

int raise_unknown(lua_State* L, const char* op) {
  std::string msg = std::string("crm.") + op + ": no such CRM operation (the host registered: " + registered_list(L) + ")";
  lua_pushlstring(L, msg.data(), msg.size());
  return lua_error(L);
}

// Host memory the script is charged for while this lives (LuaHost::charge_memory). Lua errors are
// C++ exceptions in our build (plugin/scripting/README.md), so the release runs on every path.
class ChargedCopy {
 public:
  ChargedCopy(lua_State* L, const char* op, const char* what, size_t bytes) : h_(host(L)), bytes_(bytes) {
    if (!h_.charge_memory(bytes)) {
      bytes_ = 0;
      luaL_error(L, "crm.%s: not enough script memory for the call's %s (%I bytes)", op, what,
                 static_cast<lua_Integer>(bytes));
    }
  }
  ~ChargedCopy() { h_.release_memory(bytes_); }
  ChargedCopy(const ChargedCopy&) = delete;
  ChargedCopy& operator=(const ChargedCopy&) = delete;

 private:
  LuaHost& h_;
  size_t bytes_;
};

int invoke(lua_State* L, const char* op, int args_idx, bool raise) {
  if (!host(L).crm_has(op)) return raise_unknown(L, op);
  lua_settop(L, args_idx);
  if (lua_isnil(L, args_idx)) {
    lua_newtable(L);
    lua_replace(L, args_idx);
  }
  luaL_checktype(L, args_idx, LUA_TTABLE);
  const auto max_bytes = static_cast<size_t>(host(L).max_crm_bytes());
  std::string args;
  // Raises past scripts.crm_max_bytes while encoding: the host never builds a larger copy.
  encode_json(L, args_idx, host(L).max_depth(), &args, max_bytes, "scripts.crm_max_bytes");
  Result<std::string> r = Status::Internal("not called");
  {
    ChargedCopy held(L, op, "arguments", args.size());
    r = guard_host_call<std::string>(L, [&](LuaHost& h) { return h.crm_call(op, std::move(args)); });
  }
  if (r.ok() && r.value().size() > max_bytes) {
    r = Status::TooLarge("crm." + std::string(op) + ": the CRM's result of " + std::to_string(r.value().size()) +
                         " bytes is over " + std::to_string(max_bytes) + " (scripts.crm_max_bytes)");
  }
  if (!r.ok()) {
    if (!raise) return push_failure(L, r.status());
    return luaL_error(L, "crm.%s failed: %s (%s)", op, r.status().message().c_str(), code_name(r.code()));
  }
  const std::string& text = r.value();
  if (text.empty() || text == "null") {  // "not found" from a find_* operation
    lua_pushnil(L);
    return 1;
  }
  ChargedCopy held(L, op, "result", text.size());
  std::string error;
  if (!push_json_text(L, text, host(L).max_depth(), &error)) {
    Status bad = Status::Malformed("crm." + std::string(op) + ": the host returned malformed JSON: " + error);
    if (!raise) return push_failure(L, bad);
    return luaL_error(L, "%s", bad.message().c_str());
  }
  return 1;
}

// crm.call(operation, args) -> result | nil (top-level null). Raises on host failure or unknown operation.
int crm_call(lua_State* L) { return invoke(L, luaL_checkstring(L, 1), 2, true); }

// crm.try(operation, args) -> result | nil, message, code. Raises only on misuse (unknown operation, bad args).
int crm_try(lua_State* L) { return invoke(L, luaL_checkstring(L, 1), 2, false); }

// crm.has(operation) -> boolean. Never raises except on a non-string argument.
int crm_has(lua_State* L) {
  lua_pushboolean(L, host(L).crm_has(luaL_checkstring(L, 1)));
  return 1;
}

// crm.operations() -> array of registered operation names, sorted. Never raises.
int crm_operations(lua_State* L) {
  auto ops = host(L).crm_operations();
  lua_createtable(L, static_cast<int>(ops.size()), 0);
  for (size_t i = 0; i < ops.size(); ++i) {
    lua_pushlstring(L, ops[i].data(), ops[i].size());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

// The closure behind crm.<operation>(args); upvalue 1 is the operation name.
int crm_bound(lua_State* L) { return invoke(L, lua_tostring(L, lua_upvalueindex(1)), 1, true); }

// __index(crm, name): crm.<operation>, cached per state in upvalue 1. Raises for unknown operations.
int crm_index(lua_State* L) {
  const char* op = luaL_checkstring(L, 2);
  if (!host(L).crm_has(op)) return raise_unknown(L, op);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  lua_pop(L, 1);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, crm_bound, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, lua_upvalueindex(1));
  return 1;
}

}  // namespace

int luaopen_fb_crm(lua_State* L) {
  static const luaL_Reg kFuncs[] = {{"call", crm_call}, {"try", crm_try}, {"has", crm_has},
                                    {"operations", crm_operations}, {nullptr, nullptr}};
  luaL_newlib(L, kFuncs);
  lua_createtable(L, 0, 2);
  lua_newtable(L);  // cache of bound operations
  lua_pushcclosure(L, crm_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, "crm");
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  return 1;
}

}  // namespace fb::lua
