// lua_json.h: JSON <-> Lua values without a JSON text round trip inside Lua, and the json module.
//
// Parsed JSON (simdjson DOM) becomes Lua values directly: objects and arrays are tables, integers
// that fit int64 are Lua integers, other numbers floats, and JSON null is the one sentinel
// json.null everywhere (a light userdata: `v == json.null` works; indexing it raises a clear
// error). A top-level null decodes to nil only where a binding documents it (crm results).
#pragma once

#include <lua.hpp>

#include <cstdint>
#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>

#include "core/parsed_json.h"

namespace fb::lua {

// Pushes json.null.
void push_null(lua_State* L);
bool is_null(lua_State* L, int idx);
// Sets the metatable shared by all light userdata, so json.null prints as "null" and indexing it
// raises "attempt to index a JSON null value". Called once per state.
void install_null_metatable(lua_State* L);

// Parses text and pushes its value. Returns false and sets *error (nothing pushed) when the text is
// malformed or nested deeper than max_depth. Raises only on a Lua memory error.
// Not reentrant per thread (one parser per thread is reused).
bool push_json_text(lua_State* L, std::string_view text, int max_depth, std::string* error);

// Where the members that push_json_object_lazy leaves out come from: the event's JSON text, which
// is readable while `generation` still has the value it had when the object was pushed. The owner
// bumps generation when the event ends (the text is gone then).
struct LazyJsonSource {
  std::string_view text;
  // text already parsed by the caller (issue 11), or null: then it is parsed here. Both the table
  // and the members built later read this document instead of parsing text again.
  const detail::ParsedJson* parsed = nullptr;
  uint64_t generation = 0;
  int max_depth = 64;
};

// Like push_json_text for a JSON object, except that the members named in lazy_keys whose value is
// an array of more than min_items elements are left out: a long transcript is thousands of Lua
// tables most scripts never read. Such a member is built from src->text when first read
// (__index), before pairs() (__pairs) and before json.encode sees the table; assigning it replaces
// it. Read after the event, it raises "meeting.<key> can only be read while its event is handled".
// src must outlive the Lua state. Not an object: the same as push_json_text.
bool push_json_object_lazy(lua_State* L, const LazyJsonSource* src, std::initializer_list<std::string_view> lazy_keys,
                           size_t min_items, std::string* error);

// Builds every member push_json_object_lazy left out of the table at idx; other values: no-op.
void materialize_lazy(lua_State* L, int idx);

// Appends the JSON encoding of the value at idx to *out. Raises a Lua error naming the offending
// path for values JSON cannot hold: functions, userdata other than json.null, NaN/inf, strings
// that are not UTF-8, keys that are not strings or integers, nesting deeper than max_depth (which
// is also how a cycle shows). Objects are written with sorted keys (stable output); a table is an
// array when its keys are exactly 1..n or it was marked with json.array; {} is an object.
// Raises "... is over <max_bytes> bytes" as soon as the text would grow past max_bytes: a table
// that holds one large string many times cannot make the host build an unbounded copy.
// limit_setting names the setting behind max_bytes in that message, when there is one.
void encode_json(lua_State* L, int idx, int max_depth, std::string* out, size_t max_bytes = SIZE_MAX,
                 const char* limit_setting = nullptr);

// The json module: json.encode, json.decode, json.null, json.array, json.is_null.
int luaopen_fb_json(lua_State* L);

}  // namespace fb::lua
