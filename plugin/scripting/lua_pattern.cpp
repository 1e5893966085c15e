// A bounded implementation of Lua 5.4's pattern matching (see lua_pattern.h for why).
// Written from the language reference (manual section 6.4.1), not from lstrlib.c.
#include "scripting/lua_pattern.h"

#include <cctype>
#include <cstring>
#include <string_view>

namespace fb::detail {
namespace {

constexpr int kMaxCaptures = 32;
constexpr ptrdiff_t kCapOpen = -1;      // capture started, not closed yet
constexpr ptrdiff_t kCapPosition = -2;  // a () position capture

const PatternLimits& limits_of(lua_State* L) {
  return *static_cast<const PatternLimits*>(lua_touserdata(L, lua_upvalueindex(1)));
}

bool class_match(unsigned char c, unsigned char cl) {
  bool r;
  switch (std::tolower(cl)) {
    case 'a': r = std::isalpha(c); break;
    case 'c': r = std::iscntrl(c); break;
    case 'd': r = std::isdigit(c); break;
    case 'g': r = std::isgraph(c); break;
    case 'l': r = std::islower(c); break;
    case 'p': r = std::ispunct(c); break;
    case 's': r = std::isspace(c); break;
    case 'u': r = std::isupper(c); break;
    case 'w': r = std::isalnum(c); break;
    case 'x': r = std::isxdigit(c); break;
    case 'z': r = c == 0; break;  // deprecated in the manual, still in Lua 5.4 (frontiers use it)
    default: return cl == c;  // %. %% %[ ...: the character itself
  }
  return std::isupper(cl) ? !r : r;  // %A is the complement of %a
}

// p points at '[', close at the set's closing ']'.
bool set_match(unsigned char c, const char* p, const char* close) {
  bool found_means = true;
  ++p;
  if (*p == '^') {
    found_means = false;
    ++p;
  }
  while (p < close) {
    if (*p == '%') {
      // As Lua's matchbracketclass: a '%' right before the closing ']' escapes that ']' (in
      // "[+-%%]" the range '+'-'%' takes the first '%', so the second one matches ']').
      if (class_match(c, static_cast<unsigned char>(p[1]))) return found_means;
      p += 2;
    } else if (p + 2 < close && p[1] == '-') {
      if (static_cast<unsigned char>(p[0]) <= c && c <= static_cast<unsigned char>(p[2])) return found_means;
      p += 3;
    } else {
      if (static_cast<unsigned char>(*p) == c) return found_means;
      ++p;
    }
  }
  return !found_means;
}

class Matcher {
 public:
  Matcher(lua_State* L, std::string_view subject, std::string_view pattern, const PatternLimits& lim,
          const char* fname)
      : L_(L),
        src_(subject.data()),
        src_end_(subject.data() + subject.size()),
        pat_end_(pattern.data() + pattern.size()),
        max_steps_(lim.base_steps + lim.steps_per_byte * static_cast<int64_t>(subject.size())),
        max_depth_(lim.max_depth),
        fname_(fname) {}

  // Starts a new attempt; the step budget is for the whole library call.
  void reset() {
    level_ = 0;
    depth_ = 0;
  }

  // The end of the match of pattern p against the subject from s, or null.
  const char* match(const char* s, const char* p) {
    if (++depth_ > max_depth_) {
      luaL_error(L_, "pattern too complex (string.%s: nested deeper than %d)", fname_, max_depth_);
    }
    const char* r = match_here(s, p);
    --depth_;
    return r;
  }

  // One step, or `n` for work that scans more than a few bytes of pattern or subject (a long
  // [set] is scanned on every step, a back-reference compares its whole capture): the budget
  // counts work, so an 8 KB set against a 1 MiB subject stops within it instead of running for
  // half a minute in steps of one.
  void tick(int64_t n = 1) {
    if ((steps_ += n) > max_steps_) {
      luaL_error(L_, "pattern too complex (string.%s: over %I matching steps for a %I-byte subject)", fname_,
                 static_cast<lua_Integer>(max_steps_), static_cast<lua_Integer>(src_end_ - src_));
    }
  }

  // Pushes capture i (or the whole match s..e when the pattern has no captures and i == 0).
  void push_capture(int i, const char* s, const char* e) {
    if (i >= level_) {
      if (i != 0) luaL_error(L_, "invalid capture index %%%d", i + 1);
      lua_pushlstring(L_, s, static_cast<size_t>(e - s));
      return;
    }
    const Capture& c = cap_[i];
    if (c.len == kCapOpen) luaL_error(L_, "unfinished capture");
    if (c.len == kCapPosition) {
      lua_pushinteger(L_, static_cast<lua_Integer>(c.init - src_) + 1);
    } else {
      lua_pushlstring(L_, c.init, static_cast<size_t>(c.len));
    }
  }

  // Pushes all captures; with none, the whole match when `whole` is true. Returns the count.
  int push_captures(const char* s, const char* e, bool whole) {
    int n = (level_ == 0 && whole) ? 1 : level_;
    luaL_checkstack(L_, n, "too many captures");
    for (int i = 0; i < n; ++i) push_capture(i, s, e);
    return n;
  }

  int level() const { return level_; }

 private:
  struct Capture {
    const char* init;
    ptrdiff_t len;
  };

  // The end of the single-character item at p (a char, %x, or a [set]).
  const char* item_end(const char* p) {
    char c = *p++;
    if (c == '%') {
      if (p >= pat_end_) luaL_error(L_, "malformed pattern (ends with '%%')");
      return p + 1;
    }
    if (c == '[') {
      if (p < pat_end_ && *p == '^') ++p;
      // The first character of a set is literal, even ']'.
      do {
        if (p >= pat_end_) luaL_error(L_, "malformed pattern (missing ']')");
        char cc = *p++;
        if (cc == '%') {
          if (p >= pat_end_) luaL_error(L_, "malformed pattern (missing ']')");
          ++p;
        }
      } while (p >= pat_end_ || *p != ']');
      return p + 1;
    }
    return p;
  }

  bool single_match(const char* s, const char* p, const char* ep) const {
    if (s >= src_end_) return false;
    unsigned char c = static_cast<unsigned char>(*s);
    switch (*p) {
      case '.': return true;
      case '%': return class_match(c, static_cast<unsigned char>(p[1]));
      case '[': return set_match(c, p, ep - 1);
      default: return static_cast<unsigned char>(*p) == c;
    }
  }

  const char* match_here(const char* s, const char* p) {
    for (;;) {
      tick();
      if (p == pat_end_) return s;
      switch (*p) {
        case '(':
          if (p + 1 < pat_end_ && p[1] == ')') return open_capture(s, p + 2, kCapPosition);
          return open_capture(s, p + 1, kCapOpen);
        case ')':
          return close_capture(s, p + 1);
        case '$':
          if (p + 1 == pat_end_) return s == src_end_ ? s : nullptr;
          break;  // a '$' elsewhere is an ordinary character
        case '%':
          if (p + 1 < pat_end_) {
            char n = p[1];
            if (n == 'b') {
              s = balanced(s, p + 2);
              if (!s) return nullptr;
              p += 4;
              continue;
            }
            if (n == 'f') {
              p += 2;
              if (p >= pat_end_ || *p != '[') luaL_error(L_, "missing '[' after '%%f' in pattern");
              const char* ep = item_end(p);
              tick(2 * item_weight(p, ep));  // the set is tested twice, before and at s
              unsigned char prev = s == src_ ? 0 : static_cast<unsigned char>(s[-1]);
              unsigned char cur = s < src_end_ ? static_cast<unsigned char>(*s) : 0;
              if (set_match(prev, p, ep - 1) || !set_match(cur, p, ep - 1)) return nullptr;
              p = ep;
              continue;
            }
            if (std::isdigit(static_cast<unsigned char>(n))) {
              s = backref(s, n);
              if (!s) return nullptr;
              p += 2;
              continue;
            }
          }
          break;
        default:
          break;
      }
      const char* ep = item_end(p);
      const int64_t extra = item_weight(p, ep) - 1;
      if (extra > 0) tick(extra);
      bool m = single_match(s, p, ep);
      char q = ep < pat_end_ ? *ep : '\0';
      if (ep < pat_end_ && q == '?') {
        if (m) {
          if (const char* r = match(s + 1, ep + 1)) return r;
        }
        p = ep + 1;
        continue;
      }
      if (ep < pat_end_ && q == '+') return m ? longest(s + 1, p, ep) : nullptr;
      if (ep < pat_end_ && q == '*') return longest(s, p, ep);
      if (ep < pat_end_ && q == '-') return shortest(s, p, ep);
      if (!m) return nullptr;
      ++s;
      p = ep;
    }
  }

  // Greedy repetition: take as many as possible, then give back one at a time.
  const char* longest(const char* s, const char* p, const char* ep) {
    ptrdiff_t n = 0;
    const int64_t w = item_weight(p, ep);
    while (single_match(s + n, p, ep)) {
      tick(w);
      ++n;
    }
    for (; n >= 0; --n) {
      if (const char* r = match(s + n, ep + 1)) return r;
    }
    return nullptr;
  }

  // Lazy repetition: try the rest first, then take one more.
  const char* shortest(const char* s, const char* p, const char* ep) {
    const int64_t w = item_weight(p, ep);
    for (;;) {
      if (const char* r = match(s, ep + 1)) return r;
      tick(w);
      if (!single_match(s, p, ep)) return nullptr;
      ++s;
    }
  }

  // The steps one match of the item p..ep costs: 1, and 1 more per 4 bytes of a longer item (a
  // set is scanned to its end, and each %x in it is a class test).
  static int64_t item_weight(const char* p, const char* ep) { return 1 + (ep - p) / 4; }

  const char* open_capture(const char* s, const char* p, ptrdiff_t what) {
    if (level_ >= kMaxCaptures) luaL_error(L_, "too many captures");
    cap_[level_] = {s, what};
    ++level_;
    const char* r = match(s, p);
    if (!r) --level_;
    return r;
  }

  const char* close_capture(const char* s, const char* p) {
    int open = -1;
    for (int i = level_ - 1; i >= 0; --i) {
      if (cap_[i].len == kCapOpen) {
        open = i;
        break;
      }
    }
    if (open < 0) luaL_error(L_, "invalid pattern capture");
    cap_[open].len = s - cap_[open].init;
    const char* r = match(s, p);
    if (!r) cap_[open].len = kCapOpen;
    return r;
  }

  // %bxy at p (p points at x).
  const char* balanced(const char* s, const char* p) {
    if (p + 1 >= pat_end_) luaL_error(L_, "malformed pattern (missing arguments to '%%b')");
    if (s >= src_end_ || *s != p[0]) return nullptr;
    char open = p[0], close = p[1];
    int depth = 1;
    while (++s < src_end_) {
      tick();
      if (*s == close) {
        if (--depth == 0) return s + 1;
      } else if (*s == open) {
        ++depth;
      }
    }
    return nullptr;
  }

  // %1-%9: the text of an earlier, closed capture.
  const char* backref(const char* s, char digit) {
    int l = digit - '1';
    if (l < 0 || l >= level_ || cap_[l].len == kCapOpen) luaL_error(L_, "invalid capture index %%%d", l + 1);
    ptrdiff_t len = cap_[l].len;
    if (len > 64) tick(len / 64);
    if (len >= 0 && src_end_ - s >= len && std::memcmp(cap_[l].init, s, static_cast<size_t>(len)) == 0) {
      return s + len;
    }
    return nullptr;
  }

  lua_State* L_;
  const char* src_;
  const char* src_end_;
  const char* pat_end_;
  int64_t steps_ = 0;
  int64_t max_steps_;
  int max_depth_;
  const char* fname_;
  int level_ = 0;
  int depth_ = 0;
  Capture cap_[kMaxCaptures];
};

size_t start_index(lua_Integer pos, size_t len) {
  if (pos > 0) return static_cast<size_t>(pos);
  if (pos == 0) return 1;
  if (pos < -static_cast<lua_Integer>(len)) return 1;
  return len + static_cast<size_t>(pos) + 1;
}

bool has_specials(std::string_view p) {
  for (char c : p) {
    if (std::strchr("^$*+?.([%-", c) && c != '\0') return true;
  }
  return false;
}

void check_sizes(lua_State* L, const char* fname, size_t ls, size_t lp) {
  const PatternLimits& lim = limits_of(L);
  if (static_cast<int64_t>(ls) > lim.max_subject) {
    luaL_error(L, "string.%s: subject of %I bytes is over the limit of %I (scripts.max_pattern_subject)", fname,
               static_cast<lua_Integer>(ls), static_cast<lua_Integer>(lim.max_subject));
  }
  if (static_cast<int64_t>(lp) > lim.max_pattern) {
    luaL_error(L, "string.%s: pattern of %I bytes is over the limit of %I", fname, static_cast<lua_Integer>(lp),
               static_cast<lua_Integer>(lim.max_pattern));
  }
}

int find_or_match(lua_State* L, bool find) {
  const char* fname = find ? "find" : "match";
  size_t ls, lp;
  const char* s = luaL_checklstring(L, 1, &ls);
  const char* p = luaL_checklstring(L, 2, &lp);
  size_t init = start_index(luaL_optinteger(L, 3, 1), ls);
  if (init > ls + 1) {
    luaL_pushfail(L);
    return 1;
  }
  check_sizes(L, fname, ls, find ? 0 : lp);
  if (find && (lua_toboolean(L, 4) || !has_specials({p, lp}))) {
    const void* hit = memmem(s + init - 1, ls - (init - 1), p, lp);
    if (!hit) {
      luaL_pushfail(L);
      return 1;
    }
    size_t at = static_cast<size_t>(static_cast<const char*>(hit) - s);
    lua_pushinteger(L, static_cast<lua_Integer>(at + 1));
    lua_pushinteger(L, static_cast<lua_Integer>(at + lp));
    return 2;
  }
  check_sizes(L, fname, ls, lp);
  bool anchored = lp > 0 && *p == '^';
  std::string_view pat = anchored ? std::string_view(p + 1, lp - 1) : std::string_view(p, lp);
  Matcher m(L, {s, ls}, pat, limits_of(L), fname);
  const char* from = s + init - 1;
  const char* end = s + ls;
  do {
    m.reset();
    m.tick();
    if (const char* e = m.match(from, pat.data())) {
      if (!find) return m.push_captures(from, e, true);
      lua_pushinteger(L, static_cast<lua_Integer>(from - s) + 1);
      lua_pushinteger(L, static_cast<lua_Integer>(e - s));
      return m.push_captures(nullptr, nullptr, false) + 2;
    }
  } while (from++ < end && !anchored);
  luaL_pushfail(L);
  return 1;
}

// string.find(s, pattern [, init [, plain]]) -> start, end, captures... | nil. Raises on bad patterns and limits.
int bounded_find(lua_State* L) { return find_or_match(L, true); }

// string.match(s, pattern [, init]) -> captures... | nil. Raises on bad patterns and limits.
int bounded_match(lua_State* L) { return find_or_match(L, false); }

struct GmatchState {
  size_t pos;         // where the next search starts
  ptrdiff_t last;     // end of the previous match, -1 when none (an empty match may not repeat there)
};

// The gmatch iterator: upvalues limits, subject, pattern, state.
int gmatch_step(lua_State* L) {
  size_t ls, lp;
  const char* s = lua_tolstring(L, lua_upvalueindex(2), &ls);
  const char* p = lua_tolstring(L, lua_upvalueindex(3), &lp);
  auto* st = static_cast<GmatchState*>(lua_touserdata(L, lua_upvalueindex(4)));
  Matcher m(L, {s, ls}, {p, lp}, limits_of(L), "gmatch");
  for (const char* from = s + st->pos; from <= s + ls; ++from) {
    m.reset();
    m.tick();
    const char* e = m.match(from, p);
    if (e && e - s != st->last) {
      st->pos = static_cast<size_t>(e - s);
      st->last = e - s;
      return m.push_captures(from, e, true);
    }
  }
  return 0;
}

// string.gmatch(s, pattern [, init]) -> iterator. Raises on limits; pattern errors raise when iterating.
int bounded_gmatch(lua_State* L) {
  size_t ls, lp;
  luaL_checklstring(L, 1, &ls);
  luaL_checklstring(L, 2, &lp);
  size_t pos = start_index(luaL_optinteger(L, 3, 1), ls) - 1;
  if (pos > ls) pos = ls + 1;  // starts past the end: the iterator finds nothing
  check_sizes(L, "gmatch", ls, lp);
  lua_settop(L, 2);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);  // limits, s, p
  auto* st = static_cast<GmatchState*>(lua_newuserdatauv(L, sizeof(GmatchState), 0));
  st->pos = pos;
  st->last = -1;
  lua_pushcclosure(L, gmatch_step, 4);
  return 1;
}

void add_replacement_string(lua_State* L, Matcher& m, luaL_Buffer* b, const char* s, const char* e) {
  size_t l;
  const char* r = lua_tolstring(L, 3, &l);
  for (size_t i = 0; i < l; ++i) {
    if (r[i] != '%') {
      luaL_addchar(b, r[i]);
      continue;
    }
    ++i;
    char c = i < l ? r[i] : '\0';
    if (c == '%') {
      luaL_addchar(b, '%');
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      if (c == '0') {
        luaL_addlstring(b, s, static_cast<size_t>(e - s));
      } else {
        m.push_capture(c - '1', s, e);
        luaL_tolstring(L, -1, nullptr);
        lua_remove(L, -2);
        luaL_addvalue(b);
      }
    } else {
      luaL_error(L, "invalid use of '%%' in replacement string");
    }
  }
}

// Adds the replacement for the match s..e (a false or nil result keeps the matched text).
void add_replacement(lua_State* L, Matcher& m, luaL_Buffer* b, const char* s, const char* e, int repl_type) {
  if (repl_type == LUA_TSTRING || repl_type == LUA_TNUMBER) {
    add_replacement_string(L, m, b, s, e);
    return;
  }
  if (repl_type == LUA_TFUNCTION) {
    lua_pushvalue(L, 3);
    int n = m.push_captures(s, e, true);
    lua_call(L, n, 1);
  } else {
    m.push_capture(0, s, e);
    lua_gettable(L, 3);
  }
  if (!lua_toboolean(L, -1)) {  // nil or false keeps the original text
    lua_pop(L, 1);
    luaL_addlstring(b, s, static_cast<size_t>(e - s));
  } else if (!lua_isstring(L, -1)) {
    luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
  } else {
    luaL_addvalue(b);
  }
}

// string.gsub(s, pattern, repl [, n]) -> string, count. Raises on bad patterns, replacements and limits.
int bounded_gsub(lua_State* L) {
  size_t ls, lp;
  const char* s = luaL_checklstring(L, 1, &ls);
  const char* p = luaL_checklstring(L, 2, &lp);
  int tr = lua_type(L, 3);
  luaL_argexpected(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
                   "string/function/table");
  lua_Integer max_n = luaL_optinteger(L, 4, static_cast<lua_Integer>(ls) + 1);
  check_sizes(L, "gsub", ls, lp);
  bool anchored = lp > 0 && *p == '^';
  std::string_view pat = anchored ? std::string_view(p + 1, lp - 1) : std::string_view(p, lp);
  Matcher m(L, {s, ls}, pat, limits_of(L), "gsub");
  const char* src = s;
  const char* end = s + ls;
  const char* last = nullptr;
  lua_Integer n = 0;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  while (n < max_n) {
    m.reset();
    m.tick();
    const char* e = m.match(src, pat.data());
    if (e && e != last) {
      ++n;
      add_replacement(L, m, &b, src, e, tr);
      src = last = e;
    } else if (src < end) {
      luaL_addchar(&b, *src++);
    } else {
      break;
    }
    if (anchored) break;
  }
  luaL_addlstring(&b, src, static_cast<size_t>(end - src));
  luaL_pushresult(&b);
  lua_pushinteger(L, n);
  return 2;
}

}  // namespace

void install_bounded_patterns(lua_State* L, int idx, const PatternLimits& limits) {
  idx = lua_absindex(L, idx);
  auto* lim = static_cast<PatternLimits*>(lua_newuserdatauv(L, sizeof(PatternLimits), 0));
  *lim = limits;
  static const luaL_Reg kFuncs[] = {{"find", bounded_find}, {"match", bounded_match}, {"gmatch", bounded_gmatch},
                                    {"gsub", bounded_gsub}, {nullptr, nullptr}};
  for (const luaL_Reg* f = kFuncs; f->name; ++f) {
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, f->func, 1);
    lua_setfield(L, idx, f->name);
  }
  lua_pop(L, 1);
}

}  // namespace fb::detail
