// The util module: small helpers every mapping needs (email domains, internal vs external
// invitees, ISO 8601 times and durations). Misuse (a table where a string belongs) raises;
// unparsable input returns nil, message, code.
#include <algorithm>
#include <cstdio>
#include <cmath>
#include <memory>
#include <string>

#include <idn2.h>

#include "core/clock.h"
#include "crypto/encoding.h"
#include "lua/lua_host.h"
#include "lua/lua_json.h"
#include "lua/lua_modules.h"

namespace fb::lua {
namespace {

// ASCII only, whatever locale the host set: a UTF-8 byte is never touched.
std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = detail::ascii_lower(c);
  return out;
}

// Whether a domain needs IDNA processing: a non-ASCII byte, or a label in its ASCII form ("xn--").
bool international(std::string_view d) {
  for (size_t i = 0; i < d.size(); ++i) {
    if (static_cast<unsigned char>(d[i]) >= 0x80) return true;
    if ((i == 0 || d[i - 1] == '.') && d.size() - i >= 4 && (d[i] == 'x' || d[i] == 'X') &&
        (d[i + 1] == 'n' || d[i + 1] == 'N') && d[i + 2] == '-' && d[i + 3] == '-') {
      return true;
    }
  }
  return false;
}

}  // namespace

// One spelling per domain: lowercase, and an internationalised domain in its Unicode form whether
// the address gave it so ("bücher.example", "BÜCHER.example") or in its ASCII form
// ("xn--bcher-kva.example"), so that one company is not created twice (IDNA2008 with UTS #46
// mapping, by libidn2). A name IDNA refuses is kept as given, lowercased: the address still maps.
std::string normalize_domain(std::string_view d) {
  std::string low = lower(d);
  if (!international(low) || low.find('\0') != std::string::npos) return low;
  using Owned = std::unique_ptr<char, decltype(&idn2_free)>;
  auto to_unicode = [](const char* ascii_form) -> std::string {
    char* unicode = nullptr;
    if (idn2_to_unicode_8z8z(ascii_form, &unicode, 0) != IDN2_OK) return "";
    Owned u(unicode, &idn2_free);
    return u.get();
  };
  char* ascii = nullptr;
  std::string out;
  if (idn2_lookup_u8(reinterpret_cast<const uint8_t*>(low.c_str()), reinterpret_cast<uint8_t**>(&ascii),
                     IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) == IDN2_OK) {
    Owned a(ascii, &idn2_free);
    out = to_unicode(a.get());
  } else if (std::all_of(low.begin(), low.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; })) {
    // IDNA2008 refuses some names that are in use (an emoji label, "xn--ls8h.la"): the ASCII form
    // is still decoded, so that it is the one company with the same name typed in Unicode.
    out = to_unicode(low.c_str());
  }
  if (out.empty()) return low;
  // A full stop IDNA maps to "." ("bücher.example。") must not leave a trailing dot.
  while (!out.empty() && out.back() == '.') out.pop_back();
  return out.empty() ? low : out;
}

namespace {

// The domain of an email address, normalised (normalize_domain), or "" when there is none.
std::string domain_of(std::string_view email) {
  size_t at = email.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 >= email.size()) return "";
  std::string_view d = email.substr(at + 1);
  while (!d.empty() && (d.back() == '.' || d.back() == ' ')) d.remove_suffix(1);
  if (d.empty() || d.find('.') == std::string_view::npos) return "";
  return normalize_domain(d);
}

// The email of arg idx: a string, an invitee-like table with an `email` field, nil or json.null.
// Returns "" when absent. Raises on other types.
std::string email_arg(lua_State* L, int idx) {
  switch (lua_type(L, idx)) {
    case LUA_TSTRING: return lua_tostring(L, idx);
    case LUA_TNIL:
    case LUA_TNONE: return "";
    case LUA_TTABLE: {
      lua_getfield(L, idx, "email");
      std::string e = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
      lua_pop(L, 1);
      return e;
    }
    default:
      if (is_null(L, idx)) return "";
      luaL_typeerror(L, idx, "email string or invitee table");
      return "";
  }
}

// `domain` and `ours` normalised (normalize_domain): the same, or `domain` is a subdomain of it.
bool same_or_under(const std::string& domain, std::string_view ours) {
  return domain == ours || (domain.size() > ours.size() &&
                            domain.compare(domain.size() - ours.size(), ours.size(), ours) == 0 &&
                            domain[domain.size() - ours.size() - 1] == '.');
}

bool domain_in(const std::string& domain, lua_State* L, int list_idx) {
  if (list_idx != 0) {
    for (lua_Integer i = 1;; ++i) {
      if (lua_rawgeti(L, list_idx, i) == LUA_TNIL) {
        lua_pop(L, 1);
        return false;
      }
      if (lua_type(L, -1) != LUA_TSTRING) luaL_argerror(L, list_idx, "domains must be strings");
      bool m = same_or_under(domain, normalize_domain(lua_tostring(L, -1)));
      lua_pop(L, 1);
      if (m) return true;
    }
  }
  for (const auto& d : host(L).company_domains()) {  // normalised when the host set them
    if (same_or_under(domain, d)) return true;
  }
  return false;
}

// 1 internal, 0 external, -1 unknown (no email).
int classify(lua_State* L) {
  int list_idx = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    list_idx = 2;
  }
  std::string domain = domain_of(email_arg(L, 1));
  if (domain.empty()) return -1;
  bool have_domains =
      list_idx != 0 || (!host(L).company_domains().empty() && !host(L).company_domains_from_recorder());
  if (!have_domains && lua_type(L, 1) == LUA_TTABLE) {
    // No domains configured (at most the recorder's, taken as ours): trust Fathom's own is_external
    // flag on an invitee; the recorder's domain decides only for an address without one.
    lua_getfield(L, 1, "is_external");
    int flag = lua_type(L, -1) == LUA_TBOOLEAN ? (lua_toboolean(L, -1) ? 0 : 1) : -1;
    lua_pop(L, 1);
    if (flag >= 0) return flag;
  }
  return domain_in(domain, L, list_idx) ? 1 : 0;
}

// util.email_domain(email) -> lowercase domain | nil. nil/json.null give nil; raises on non-strings.
int util_email_domain(lua_State* L) {
  std::string d = domain_of(email_arg(L, 1));
  if (d.empty()) {
    lua_pushnil(L);
  } else {
    lua_pushlstring(L, d.data(), d.size());
  }
  return 1;
}

// util.is_internal(email_or_invitee [, domains]) -> boolean: the address is in one of our domains
// (or a subdomain). domains defaults to scripts.company_domains. Without an email: false.
int util_is_internal(lua_State* L) {
  lua_pushboolean(L, classify(L) == 1);
  return 1;
}

// util.is_external(email_or_invitee [, domains]) -> boolean: has an email outside our domains.
// Without an email: false (unknown is neither internal nor external).
int util_is_external(lua_State* L) {
  lua_pushboolean(L, classify(L) == 0);
  return 1;
}

// Unix seconds of 1000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the times a four-digit year holds.
// Outside them (or NaN) a number would be cast to int64_t (undefined; in practice INT64_MIN) or
// printed as a five-digit or negative year.
constexpr lua_Number kMinTime = -30610224000.0;
constexpr lua_Number kMaxTime = 253402300799.0;

bool in_time_range(lua_Number t) { return t >= kMinTime && t <= kMaxTime; }  // false for NaN

// Unix seconds of arg idx (ISO 8601 string or number); false with a message on bad text or a
// number out of range.
bool time_arg(lua_State* L, int idx, lua_Number* out, std::string* why) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    *out = lua_tonumber(L, idx);
    if (in_time_range(*out)) return true;
    *why = "time out of range (argument #" + std::to_string(idx) + " is not between the years 1000 and 9999)";
    return false;
  }
  if (lua_type(L, idx) != LUA_TSTRING) {
    if (lua_isnoneornil(L, idx) || is_null(L, idx)) {
      *why = "missing time (argument #" + std::to_string(idx) + ")";
      return false;
    }
    luaL_typeerror(L, idx, "ISO 8601 string or number");
  }
  int64_t s = 0;
  std::string text = lua_tostring(L, idx);
  if (!detail::parse_iso8601(text, &s)) {
    *why = "not an ISO 8601 time: '" + text.substr(0, 64) + "'";
    return false;
  }
  *out = static_cast<lua_Number>(s);
  return true;
}

// util.parse_time(iso) -> unix seconds (integer) | nil, message, "malformed".
int util_parse_time(lua_State* L) {
  lua_Number t;
  std::string why;
  if (!time_arg(L, 1, &t, &why)) return push_failure(L, Status::Malformed(why));
  lua_pushinteger(L, static_cast<lua_Integer>(t));
  return 1;
}

// util.format_time(unix_seconds) -> "2025-03-01T17:01:30Z". Raises on a non-number.
int util_format_time(lua_State* L) {
  lua_Number t = luaL_checknumber(L, 1);
  if (!in_time_range(t)) return luaL_argerror(L, 1, "not a time between the years 1000 and 9999");
  std::string s = detail::format_iso8601(static_cast<int64_t>(std::floor(t)));
  lua_pushlstring(L, s.data(), s.size());
  return 1;
}

// util.duration(from, to) -> seconds from `from` to `to` (integer) | nil, message, "malformed".
// Each argument is an ISO 8601 string or unix seconds.
int util_duration(lua_State* L) {
  lua_Number a, b;
  std::string why;
  if (!time_arg(L, 1, &a, &why) || !time_arg(L, 2, &b, &why)) return push_failure(L, Status::Malformed(why));
  lua_pushinteger(L, static_cast<lua_Integer>(b - a));
  return 1;
}

// util.hms("HH:MM:SS") -> seconds | nil, message, "malformed" (Fathom's transcript/action item stamps).
int util_hms(lua_State* L) {
  size_t len;
  const char* s = luaL_checklstring(L, 1, &len);
  int h = 0, m = 0, sec = 0;
  char tail = 0;
  if (len > 16 || std::sscanf(s, "%d:%d:%d%c", &h, &m, &sec, &tail) != 3 || h < 0 || m < 0 || m > 59 || sec < 0 ||
      sec > 59) {
    return push_failure(L, Status::Malformed("not an HH:MM:SS timestamp: '" + std::string(s, std::min<size_t>(len, 32)) + "'"));
  }
  lua_pushinteger(L, h * 3600 + m * 60 + sec);
  return 1;
}

// util.present(v) -> boolean: v is neither nil nor json.null. Never raises.
int util_present(lua_State* L) {
  lua_pushboolean(L, !lua_isnoneornil(L, 1) && !is_null(L, 1));
  return 1;
}

}  // namespace

int luaopen_fb_util(lua_State* L) {
  static const luaL_Reg kFuncs[] = {{"email_domain", util_email_domain}, {"is_internal", util_is_internal},
                                    {"is_external", util_is_external},   {"parse_time", util_parse_time},
                                    {"format_time", util_format_time},   {"duration", util_duration},
                                    {"hms", util_hms},                   {"present", util_present},
                                    {nullptr, nullptr}};
  luaL_newlib(L, kFuncs);
  return 1;
}

}  // namespace fb::lua
