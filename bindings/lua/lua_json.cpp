#include "lua/lua_json.h"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <vector>

#include "lua/lua_host.h"

namespace fb::lua {
namespace {

// The address is the identity of json.null; the byte itself is never read.
const char kNullTag = 0;
const char kArrayMarkKey = 0;  // registry key of the json.array marker metatable

// ---------------------------------------------------------------- decoding

class Pusher {
 public:
  Pusher(lua_State* L, int max_depth) : L_(L), max_depth_(max_depth) {}

  bool push(simdjson::dom::element e, int depth) {
    using T = simdjson::dom::element_type;
    switch (e.type()) {
      case T::OBJECT: {
        if (depth >= max_depth_) return too_deep();
        simdjson::dom::object obj = e.get_object().value_unsafe();
        luaL_checkstack(L_, 3, "JSON too deep");
        lua_createtable(L_, 0, static_cast<int>(std::min<size_t>(obj.size(), 1 << 16)));
        for (auto field : obj) {
          lua_pushlstring(L_, field.key.data(), field.key.size());
          if (!push(field.value, depth + 1)) return false;
          lua_rawset(L_, -3);
        }
        return true;
      }
      case T::ARRAY: {
        if (depth >= max_depth_) return too_deep();
        simdjson::dom::array arr = e.get_array().value_unsafe();
        luaL_checkstack(L_, 2, "JSON too deep");
        lua_createtable(L_, static_cast<int>(std::min<size_t>(arr.size(), 1 << 20)), 0);
        lua_Integer i = 0;
        for (auto v : arr) {
          if (!push(v, depth + 1)) return false;
          lua_rawseti(L_, -2, ++i);
        }
        return true;
      }
      case T::STRING: {
        std::string_view s = e.get_string().value_unsafe();
        lua_pushlstring(L_, s.data(), s.size());
        return true;
      }
      case T::INT64: lua_pushinteger(L_, e.get_int64().value_unsafe()); return true;
      case T::UINT64: lua_pushnumber(L_, static_cast<lua_Number>(e.get_uint64().value_unsafe())); return true;
      case T::DOUBLE: lua_pushnumber(L_, e.get_double().value_unsafe()); return true;
      case T::BOOL: lua_pushboolean(L_, e.get_bool().value_unsafe()); return true;
      case T::NULL_VALUE: push_null(L_); return true;
    }
    error_ = "unknown JSON value type";
    return false;
  }

  const std::string& error() const { return error_; }

 private:
  bool too_deep() {
    error_ = "JSON nested deeper than " + std::to_string(max_depth_) + " levels";
    return false;
  }
  lua_State* L_;
  int max_depth_;
  std::string error_;
};

simdjson::dom::parser& thread_parser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

bool push_json_text_with(simdjson::dom::parser& parser, lua_State* L, std::string_view text, int max_depth,
                         std::string* error) {
  simdjson::dom::element doc;
  auto err = parser.parse(text.data(), text.size()).get(doc);
  if (err) {
    *error = std::string("malformed JSON: ") + simdjson::error_message(err);
    return false;
  }
  int top = lua_gettop(L);
  Pusher p(L, max_depth);
  if (!p.push(doc, 0)) {
    lua_settop(L, top);
    *error = p.error();
    return false;
  }
  return true;
}

// ---------------------------------------------------------------- encoding

bool valid_utf8(std::string_view s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) { ++i; continue; }
    int len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + len > n) return false;
    for (int k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

void append_string(std::string* out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t run = 0;  // start of the pending run of bytes that need no escaping
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      default:
        out->append("\\u00");
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 15]);
    }
  }
  out->append(s.data() + run, s.size() - run);
  out->push_back('"');
}

class Encoder {
 public:
  Encoder(lua_State* L, int max_depth, std::string* out, size_t max_bytes, const char* limit_setting)
      : L_(L), max_depth_(max_depth), out_(out), max_bytes_(max_bytes), limit_setting_(limit_setting) {}

  void encode(int idx, int depth) {
    idx = lua_absindex(L_, idx);
    check_size(0);
    switch (lua_type(L_, idx)) {
      case LUA_TNIL: out_->append("null"); return;
      case LUA_TBOOLEAN: out_->append(lua_toboolean(L_, idx) ? "true" : "false"); return;
      case LUA_TNUMBER: return encode_number(idx);
      case LUA_TSTRING: {
        size_t len;
        const char* s = lua_tolstring(L_, idx, &len);
        if (!valid_utf8({s, len})) fail("cannot encode a string that is not valid UTF-8");
        check_size(len);
        append_string(out_, {s, len});
        check_size(0);  // escapes may have grown it
        return;
      }
      case LUA_TLIGHTUSERDATA:
        if (is_null(L_, idx)) { out_->append("null"); return; }
        break;
      case LUA_TTABLE: return encode_table(idx, depth);
      default: break;
    }
    fail(std::string("cannot encode a ") + luaL_typename(L_, idx) + " value");
  }

 private:
  struct PathItem {
    std::string_view key;  // empty: an array index
    lua_Integer index = 0;
  };

  // Fails when the text, grown by `adding` more bytes, would be over max_bytes_.
  void check_size(size_t adding) {
    if (out_->size() + adding + 2 > max_bytes_ || out_->size() + adding + 2 < adding) {
      fail("the JSON text is over " + std::to_string(max_bytes_) + " bytes" +
           (limit_setting_ ? std::string(" (") + limit_setting_ + ")" : std::string()));
    }
  }

  [[noreturn]] void fail(const std::string& why) {
    std::string where;
    for (const auto& p : path_) {
      if (p.key.data()) {
        where += '.';
        where.append(p.key);
      } else {
        where += '[' + std::to_string(p.index) + ']';
      }
    }
    if (where.empty()) where = "(top level)";
    lua_pushfstring(L_, "%s (at %s)", why.c_str(), where.c_str());
    lua_error(L_);
    std::abort();  // unreachable: lua_error does not return
  }

  void encode_number(int idx) {
    char buf[64];
    std::to_chars_result r;
    if (lua_isinteger(L_, idx)) {
      r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(lua_tointeger(L_, idx)));
    } else {
      double d = lua_tonumber(L_, idx);
      if (!std::isfinite(d)) fail("cannot encode NaN or infinity");
      if (d == 0 && std::signbit(d)) {  // "-0" would decode as the integer 0 (fuzz_json_lua)
        out_->append("-0.0");
        return;
      }
      // The shortest form of an integral double past the int64 range is all digits (-2^65 is
      // "-36893488147419103232"), which JSON parsers (ours included) reject as an integer out of
      // range: those are written with an exponent instead. (fuzz_json_lua finding, issue 16.)
      if (std::fabs(d) >= 9223372036854775808.0) {
        r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
      } else {
        r = std::to_chars(buf, buf + sizeof buf, d);
      }
    }
    out_->append(buf, r.ptr);
  }

  bool marked_array(int idx) {
    if (!lua_getmetatable(L_, idx)) return false;
    lua_rawgetp(L_, LUA_REGISTRYINDEX, &kArrayMarkKey);
    bool marked = lua_rawequal(L_, -1, -2);
    lua_pop(L_, 2);
    return marked;
  }

  // Keys of the tables being encoded, one range per nesting level on a shared stack; string
  // keys are views of the table's own (live) key strings.
  struct Key {
    std::string_view text;  // string keys
    lua_Integer num = 0;    // integer keys
    bool is_int = false;
    bool operator<(const Key& o) const {
      if (is_int != o.is_int) return is_int;  // integer keys first, in numeric order
      return is_int ? num < o.num : text < o.text;
    }
  };

  void encode_table(int idx, int depth) {
    if (depth >= max_depth_) fail("nested deeper than " + std::to_string(max_depth_) + " levels (or a cycle)");
    luaL_checkstack(L_, 4, "JSON encode");
    materialize_lazy(L_, lua_absindex(L_, idx));
    // One pass over the keys decides array vs object and collects the object's keys.
    size_t first = keys_.size();
    lua_Integer count = 0, max_int = 0;
    bool all_ints = true;
    lua_pushnil(L_);
    while (lua_next(L_, idx)) {
      lua_pop(L_, 1);
      ++count;
      if (lua_type(L_, -1) == LUA_TNUMBER && lua_isinteger(L_, -1)) {
        lua_Integer k = lua_tointeger(L_, -1);
        if (k < 1) all_ints = false;
        max_int = std::max(max_int, k);
        keys_.push_back({{}, k, true});
      } else if (lua_type(L_, -1) == LUA_TSTRING) {
        all_ints = false;
        size_t len;
        const char* s = lua_tolstring(L_, -1, &len);
        keys_.push_back({{s, len}, 0, false});
      } else {
        fail(std::string("cannot encode a table with a ") + luaL_typename(L_, -1) + " key");
      }
    }
    bool is_array = (count > 0 && all_ints && max_int == count) || (count == 0 && marked_array(idx));
    if (is_array) {
      keys_.resize(first);
      out_->push_back('[');
      for (lua_Integer i = 1; i <= count; ++i) {
        if (i > 1) out_->push_back(',');
        path_.push_back({std::string_view(), i});
        lua_rawgeti(L_, idx, i);
        encode(-1, depth + 1);
        lua_pop(L_, 1);
        path_.pop_back();
      }
      out_->push_back(']');
      return;
    }
    std::sort(keys_.begin() + static_cast<long>(first), keys_.end());
    out_->push_back('{');
    for (size_t k = first; k < keys_.size(); ++k) {
      Key key = keys_[k];  // a copy: nested tables push onto keys_ and may reallocate it
      if (k > first) out_->push_back(',');
      char buf[32];
      std::string_view text = key.text;
      if (key.is_int) {
        auto r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(key.num));
        text = std::string_view(buf, static_cast<size_t>(r.ptr - buf));
      } else if (!valid_utf8(text)) {
        fail("cannot encode a key that is not valid UTF-8");
      }
      append_string(out_, text);
      out_->push_back(':');
      path_.push_back({key.is_int ? std::string_view() : text, key.num});
      if (key.is_int) {
        lua_rawgeti(L_, idx, key.num);
      } else {
        lua_pushlstring(L_, text.data(), text.size());
        lua_rawget(L_, idx);
      }
      encode(-1, depth + 1);
      lua_pop(L_, 1);
      path_.pop_back();
    }
    keys_.resize(first);
    out_->push_back('}');
  }

  lua_State* L_;
  int max_depth_;
  std::string* out_;
  size_t max_bytes_;
  const char* limit_setting_;
  std::vector<PathItem> path_;
  std::vector<Key> keys_;
};

// ---------------------------------------------------------------- module

// json.null[key] -> never returns: raises "attempt to index a JSON null value (key 'k')".
int null_index(lua_State* L) {
  if (lua_type(L, 2) == LUA_TSTRING) {
    return luaL_error(L, "attempt to index a JSON null value (key '%s'); test it with util.present(v)",
                      lua_tostring(L, 2));
  }
  return luaL_error(L, "attempt to index a JSON null value; test it with util.present(v)");
}

// tostring(json.null) -> "null" (other light userdata: "userdata: 0x..."). Never raises.
int null_tostring(lua_State* L) {
  if (is_null(L, 1)) {
    lua_pushliteral(L, "null");
  } else {
    lua_pushfstring(L, "userdata: %p", lua_touserdata(L, 1));
  }
  return 1;
}

// json.encode(value) -> string. Raises on values JSON cannot hold.
int json_encode(lua_State* L) {
  luaL_checkany(L, 1);
  std::string out;
  encode_json(L, 1, host(L).max_depth(), &out, static_cast<size_t>(host(L).max_json_bytes()));
  lua_pushlstring(L, out.data(), out.size());
  return 1;
}

// json.decode(text) -> value | nil, message, code. Raises when text is not a string.
int json_decode(lua_State* L) {
  size_t len;
  const char* s = luaL_checklstring(L, 1, &len);
  if (static_cast<int64_t>(len) > host(L).max_json_bytes()) {
    return push_failure(L, Status::TooLarge("JSON text of " + std::to_string(len) + " bytes is over the limit of " +
                                            std::to_string(host(L).max_json_bytes())));
  }
  // simdjson's document for the text (its tape, structural indexes and string buffer, ~14 bytes per
  // byte of text) counts against the script's memory while it is built: a 16 MB text took ~200 MB
  // the memory limit did not see. A text over 1 MiB is parsed on a parser of its own, freed after,
  // so a worker thread does not keep that memory for its next events.
  LuaHost& h = host(L);
  const size_t parse_bytes = len * 14;
  if (!h.charge_memory(parse_bytes)) {
    return luaL_error(L, "json.decode: not enough script memory to parse %I bytes of JSON",
                      static_cast<lua_Integer>(len));
  }
  struct Release {
    LuaHost& h;
    size_t n;
    ~Release() { h.release_memory(n); }
  } release{h, parse_bytes};
  std::string error;
  bool pushed;
  if (len > (size_t{1} << 20)) {
    simdjson::dom::parser own;
    pushed = push_json_text_with(own, L, {s, len}, h.max_depth(), &error);
  } else {
    pushed = push_json_text(L, {s, len}, h.max_depth(), &error);
  }
  if (!pushed) return push_failure(L, Status::Malformed(error));
  return 1;
}

// json.array([t]) -> t, marked to encode as a JSON array even when empty. Raises when t has a metatable.
int json_array(lua_State* L) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  if (lua_getmetatable(L, 1)) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &kArrayMarkKey);
    if (!lua_rawequal(L, -1, -2)) return luaL_argerror(L, 1, "table already has a metatable");
    lua_settop(L, 1);
    return 1;
  }
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kArrayMarkKey);
  lua_setmetatable(L, 1);
  lua_settop(L, 1);
  return 1;
}

// json.is_null(v) -> boolean. Never raises.
int json_is_null(lua_State* L) {
  lua_pushboolean(L, is_null(L, 1));
  return 1;
}

}  // namespace

void push_null(lua_State* L) { lua_pushlightuserdata(L, const_cast<char*>(&kNullTag)); }

bool is_null(lua_State* L, int idx) {
  return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == &kNullTag;
}

void install_null_metatable(lua_State* L) {
  push_null(L);
  lua_createtable(L, 0, 4);
  lua_pushcfunction(L, null_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, null_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "json.null");
  lua_setfield(L, -2, "__name");
  lua_pushliteral(L, "json.null");
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
  // The json.array marker: protected, so a script cannot unmark or reuse it for other tricks.
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "json.array");
  lua_setfield(L, -2, "__metatable");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kArrayMarkKey);
}

namespace {

// The lazy members' metatable holds this marker under kLazyMarkKey; its closures share upvalues:
// 1 = the LazyJsonSource (light userdata), 2 = its generation when pushed, 3 = {key = true} of the
// members still left out.
const char kLazyMarkKey = 0;

// The source's document: the caller's parse when it handed one down, else a parse of its text on
// this thread's parser (valid until its next parse).
simdjson::error_code parse_source(const LazyJsonSource& src, simdjson::dom::element* doc) {
  if (src.parsed != nullptr && src.parsed->ok()) {
    *doc = src.parsed->root();
    return simdjson::SUCCESS;
  }
  return thread_parser().parse(src.text.data(), src.text.size()).get(*doc);
}

// Builds member `key` of table t from the event's text, stores it, and takes it off the pending
// set. Runs inside one of the closures below (their upvalues: the source, its generation, the set).
void build_member(lua_State* L, int t, std::string_view key) {
  const auto* src = static_cast<const LazyJsonSource*>(lua_touserdata(L, lua_upvalueindex(1)));
  auto gen = static_cast<uint64_t>(lua_tointeger(L, lua_upvalueindex(2)));
  if (src == nullptr || src->generation != gen) {
    luaL_error(L, "meeting.%s can only be read while its event is handled", std::string(key).c_str());
    return;
  }
  // The last member of that name, as in the eager table (where a later duplicate key overwrites
  // an earlier one); doc[key] would find the first.
  simdjson::dom::element doc;
  simdjson::dom::object obj;
  simdjson::dom::element value;
  bool found = false;
  if (!parse_source(*src, &doc) && !doc.get(obj)) {
    for (auto field : obj) {
      if (field.key == key) {
        value = field.value;
        found = true;
      }
    }
  }
  if (!found) {
    luaL_error(L, "meeting.%s could not be read again from the event", std::string(key).c_str());
    return;
  }
  Pusher p(L, src->max_depth);
  int top = lua_gettop(L);
  if (!p.push(value, 1)) {
    lua_settop(L, top);
    luaL_error(L, "meeting.%s: %s", std::string(key).c_str(), p.error().c_str());
    return;
  }
  lua_pushlstring(L, key.data(), key.size());
  lua_insert(L, -2);
  lua_rawset(L, t);
  lua_pushlstring(L, key.data(), key.size());
  lua_pushnil(L);
  lua_rawset(L, lua_upvalueindex(3));
}

void build_all(lua_State* L, int t) {
  std::vector<std::string> keys;
  lua_pushnil(L);
  while (lua_next(L, lua_upvalueindex(3))) {
    lua_pop(L, 1);
    keys.emplace_back(lua_tostring(L, -1));
  }
  for (const auto& k : keys) build_member(L, t, k);
}

// __index(t, k): a member still left out is built now.
int lazy_index(lua_State* L) {
  if (lua_type(L, 2) != LUA_TSTRING) return 0;
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(3)) == LUA_TNIL) return 0;
  lua_pop(L, 1);
  size_t len;
  const char* k = lua_tolstring(L, 2, &len);
  build_member(L, 1, {k, len});
  lua_pushvalue(L, 2);
  lua_rawget(L, 1);
  return 1;
}

// __newindex(t, k, v): an assignment replaces a member that was left out.
int lazy_newindex(lua_State* L) {
  lua_pushvalue(L, 2);
  lua_pushnil(L);
  lua_rawset(L, lua_upvalueindex(3));
  lua_settop(L, 3);
  lua_rawset(L, 1);
  return 0;
}

// __pairs(t): every member is built first, then plain next.
int lazy_pairs(lua_State* L) {
  build_all(L, 1);
  lua_pushcfunction(L, [](lua_State* S) -> int {
    lua_settop(S, 2);
    return lua_next(S, 1) ? 2 : (lua_pushnil(S), 1);
  });
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

// materialize_lazy's worker, run as a closure with the metatable's upvalues.
int lazy_build_all(lua_State* L) {
  build_all(L, 1);
  return 0;
}

}  // namespace

bool push_json_object_lazy(lua_State* L, const LazyJsonSource* src, std::initializer_list<std::string_view> lazy_keys,
                           size_t min_items, std::string* error) {
  simdjson::dom::element doc;
  auto err = parse_source(*src, &doc);
  if (err) {
    *error = std::string("malformed JSON: ") + simdjson::error_message(err);
    return false;
  }
  simdjson::dom::object obj;
  int top = lua_gettop(L);
  Pusher p(L, src->max_depth);
  if (doc.get(obj) != simdjson::SUCCESS) {
    if (!p.push(doc, 0)) {
      lua_settop(L, top);
      *error = p.error();
      return false;
    }
    return true;
  }
  luaL_checkstack(L, 8, "JSON too deep");
  lua_createtable(L, 0, static_cast<int>(std::min<size_t>(obj.size(), 1 << 16)));
  int t = lua_gettop(L);
  int pending = 0;
  for (auto field : obj) {
    bool lazy = false;
    if (field.value.is_array()) {
      for (std::string_view k : lazy_keys) lazy = lazy || k == field.key;
      lazy = lazy && field.value.get_array().value_unsafe().size() > min_items;
    }
    if (lazy) {
      if (pending == 0) {
        lua_newtable(L);
        pending = lua_gettop(L);
      }
      lua_pushlstring(L, field.key.data(), field.key.size());
      lua_pushboolean(L, 1);
      lua_rawset(L, pending);
      // A duplicate key: the last member wins, as in the eager table.
      lua_pushlstring(L, field.key.data(), field.key.size());
      lua_pushnil(L);
      lua_rawset(L, t);
      continue;
    }
    if (pending != 0) {  // a later duplicate of a member left out replaces it
      lua_pushlstring(L, field.key.data(), field.key.size());
      lua_pushnil(L);
      lua_rawset(L, pending);
    }
    lua_pushlstring(L, field.key.data(), field.key.size());
    if (!p.push(field.value, 1)) {
      lua_settop(L, top);
      *error = p.error();
      return false;
    }
    lua_rawset(L, t);
  }
  if (pending == 0) return true;
  lua_createtable(L, 0, 6);
  int mt = lua_gettop(L);
  auto push_closure = [&](lua_CFunction fn) {
    lua_pushlightuserdata(L, const_cast<LazyJsonSource*>(src));
    lua_pushinteger(L, static_cast<lua_Integer>(src->generation));
    lua_pushvalue(L, pending);
    lua_pushcclosure(L, fn, 3);
  };
  push_closure(lazy_index);
  lua_setfield(L, mt, "__index");
  push_closure(lazy_newindex);
  lua_setfield(L, mt, "__newindex");
  push_closure(lazy_pairs);
  lua_setfield(L, mt, "__pairs");
  push_closure(lazy_build_all);  // what materialize_lazy calls; its key also marks the metatable
  lua_rawsetp(L, mt, &kLazyMarkKey);
  lua_pushliteral(L, "meeting");
  lua_setfield(L, mt, "__metatable");  // getmetatable() shows a name; setmetatable() is refused
  lua_setmetatable(L, t);
  lua_settop(L, t);
  return true;
}

void materialize_lazy(lua_State* L, int idx) {
  if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return;
  idx = lua_absindex(L, idx);
  if (lua_rawgetp(L, -1, &kLazyMarkKey) != LUA_TFUNCTION) {
    lua_pop(L, 2);
    return;
  }
  lua_pushvalue(L, idx);
  lua_call(L, 1, 0);
  lua_pop(L, 1);
}

bool push_json_text(lua_State* L, std::string_view text, int max_depth, std::string* error) {
  return push_json_text_with(thread_parser(), L, text, max_depth, error);
}

void encode_json(lua_State* L, int idx, int max_depth, std::string* out, size_t max_bytes,
                 const char* limit_setting) {
  Encoder(L, max_depth, out, max_bytes, limit_setting).encode(idx, 0);
}

int luaopen_fb_json(lua_State* L) {
  static const luaL_Reg kFuncs[] = {{"encode", json_encode}, {"decode", json_decode}, {"array", json_array},
                                    {"is_null", json_is_null}, {nullptr, nullptr}};
  luaL_newlib(L, kFuncs);
  push_null(L);
  lua_setfield(L, -2, "null");
  return 1;
}

}  // namespace fb::lua
