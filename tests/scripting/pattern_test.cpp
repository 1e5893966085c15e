// The bounded pattern functions against Lua's own: the same results for a wide set of subjects,
// patterns, init positions and replacement kinds, and errors where Lua errs. Then the limits.
#include <boost/test/unit_test.hpp>

#include <lua.hpp>

#include <cstring>
#include <string>

#include "scripting/lua_pattern.h"

namespace {

const char* const kHarness = R"LUA(
local subjects = {
  "", "hello world", "  key = value  ", "THE (quick) fox", "a,b,,c", "[[x]]", "f(a(b)c)d", "aaa",
  "hello\0world", "x=1, y=22, z=333", "\195\160\195\169 utf8", "THE END$", "one two  three", "%d literal",
  "abcabcabc", "--x--", "1.5e10 + 0x1F", "\tTab\nNew line", "^caret^", "a.b.c",
}
local patterns = {
  "", "o", "l+", "l*", "l-", "l?", "^h", "d$", "%a+", "%A+", "%d+", "%s*(%S+)%s*=%s*(%S+)%s*", "()ll()",
  "(h)(e)", "%((%a+)%)", "%b()", "%b[]", "%f[%a]%a+", "%f[%A]", "%f[%w]%w+%f[%W]", "[%w_]+", "[^%s]+",
  "[a-f]+", "[]]", "[^]]+", "[%]]", "(a*(.)%w(%s*))", "(%w+)%s*=%s*(%w+)", "^(%w+)", ".-", "(.-)%s", "a-b",
  "%.", "x*$", "(o)(.-)%1", "[%a-]+", "[a%-z]+", "%x+", "%p", "%c", "%u%l*", "%g+", "$", "^$", "^", "(()",
  "(%a)%1", "[%d.]+", "%z", "\0", "w\0", "[\0-\31]", ".+", "^.-$", "(.)(.)", "[^%a%d]", "abc", "(abc)+",
  "^(.-)%s*$", "(%d)(%d?)", "[+-]?%d+", "%-%-", "%^", "%$$", "(%w+)(%.?)",
  -- malformed: both implementations must raise
  "%", "[a", "(", ")", "%1", "(%1)", "%b", "%ba", "%f", "%fa", "(()%2)", "[%", "%g(",
}
local inits = { false, 1, 3, -3, 0, 100, -100 }

local function ser(...)
  local out = { tostring(select("#", ...)) }
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    out[#out + 1] = type(v) .. ":" .. tostring(v)
  end
  return table.concat(out, ",")
end

local results = {}
local function run(name, f)
  local ok, r = pcall(function() return ser(f()) end)
  results[#results + 1] = name .. "=" .. (ok and r or "ERROR")
end

local repl_table = { hello = "HI", o = "0", a = false, [1] = "one" }
local function repl_fn(...) if select("#", ...) == 0 then return nil end return "<" .. select("#", ...) .. ":" .. tostring((...)) .. ">" end

for si, s in ipairs(subjects) do
  for pi, p in ipairs(patterns) do
    local key = si .. "/" .. pi
    for _, init in ipairs(inits) do
      local i = init or nil
      run(key .. " find " .. tostring(init), function() return s:find(p, i) end)
      run(key .. " match " .. tostring(init), function() return s:match(p, i) end)
      run(key .. " gmatch " .. tostring(init), function()
        local t = {}
        for a, b in s:gmatch(p, i) do
          t[#t + 1] = tostring(a) .. "/" .. tostring(b)
          if #t > 60 then break end
        end
        return table.concat(t, ";")
      end)
    end
    run(key .. " plainfind", function() return s:find(p, 1, true) end)
    run(key .. " gsub str", function() return s:gsub(p, "<%0|%1>") end)
    run(key .. " gsub pct", function() return s:gsub(p, "%%") end)
    run(key .. " gsub fn", function() return s:gsub(p, repl_fn) end)
    run(key .. " gsub tbl", function() return s:gsub(p, repl_table) end)
    run(key .. " gsub max", function() return s:gsub(p, "#", 2) end)
    run(key .. " gsub num", function() return s:gsub(p, 7) end)
  end
end
run("bad repl", function() return ("abc"):gsub("b", "%x") end)
run("bad repl type", function() return ("abc"):gsub("b", true) end)
run("bad repl value", function() return ("abc"):gsub("b", function() return {} end) end)
run("capture index", function() return ("abc"):gsub("(b)", "%2") end)
return table.concat(results, "\n"), #results
)LUA";

// Runs the harness in a state; bounded: with our pattern functions installed.
std::pair<std::string, long long> run_harness(bool bounded) {
  lua_State* L = luaL_newstate();
  luaL_openlibs(L);
  if (bounded) {
    lua_getglobal(L, "string");
    fb::detail::install_bounded_patterns(L, -1, fb::detail::PatternLimits{});
    lua_pop(L, 1);
  }
  std::pair<std::string, long long> out;
  if (luaL_loadbuffer(L, kHarness, std::strlen(kHarness), "=harness") != LUA_OK || lua_pcall(L, 0, 2, 0) != LUA_OK) {
    out.first = std::string("harness failed: ") + lua_tostring(L, -1);
  } else {
    out.first = lua_tostring(L, -2);
    out.second = lua_tointeger(L, -1);
  }
  lua_close(L);
  return out;
}

// Runs one chunk in a bounded state; returns "ok:<result>" or "error:<message>".
std::string run_bounded(const std::string& code, fb::detail::PatternLimits limits = {}) {
  lua_State* L = luaL_newstate();
  luaL_openlibs(L);
  lua_getglobal(L, "string");
  fb::detail::install_bounded_patterns(L, -1, limits);
  lua_pop(L, 1);
  std::string out;
  if (luaL_loadbuffer(L, code.data(), code.size(), "=t") != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
    out = std::string("error:") + lua_tostring(L, -1);
  } else {
    out = std::string("ok:") + (lua_tostring(L, -1) ? lua_tostring(L, -1) : "nil");
  }
  lua_close(L);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(patterns)

BOOST_AUTO_TEST_CASE(same_results_as_lua_for_every_case) {
  auto stock = run_harness(false);
  auto ours = run_harness(true);
  BOOST_REQUIRE_GT(stock.second, 20000);
  BOOST_TEST(stock.second == ours.second);
  // Compare line by line so a failure names the case.
  size_t a = 0, b = 0, mismatches = 0;
  while (a < stock.first.size() && b < ours.first.size() && mismatches < 10) {
    size_t ea = stock.first.find('\n', a), eb = ours.first.find('\n', b);
    std::string la = stock.first.substr(a, ea - a), lb = ours.first.substr(b, eb - b);
    if (la != lb) {
      ++mismatches;
      BOOST_TEST(la == lb);
    }
    if (ea == std::string::npos || eb == std::string::npos) break;
    a = ea + 1;
    b = eb + 1;
  }
  BOOST_TEST(mismatches == 0u);
  BOOST_TEST(stock.first.size() == ours.first.size());
}

BOOST_AUTO_TEST_CASE(pathological_patterns_stop_with_a_clear_error) {
  for (const char* code : {"return string.find(string.rep('a', 200), '.-.-.-.-b')",
                           "return select('#', string.match(string.rep('a', 5000), '(.-)(.-)(.-)b'))",
                           "return (string.gsub(string.rep('a', 3000), '.-.-.-b', 'x'))",
                           "for x in string.gmatch(string.rep('a', 400), '(.-.-.-.-b)') do end return 'done'"}) {
    BOOST_TEST_CONTEXT(code) {
      std::string r = run_bounded(code);
      BOOST_TEST(r.find("error:") == 0u, r);
      BOOST_TEST(r.find("pattern too complex") != std::string::npos, r);
    }
  }
}

BOOST_AUTO_TEST_CASE(ordinary_large_work_fits_the_budget) {
  // A 512 KiB subject with a simple pattern: linear, well inside steps_per_byte.
  std::string r = run_bounded(
      "local s = string.rep('key=value; ', 48000) local n = select(2, s:gsub('(%w+)=(%w+)', '%2=%1')) return n");
  BOOST_TEST(r == "ok:48000");
  r = run_bounded("local s = string.rep('a', 1000000) .. 'needle' return (s:find('needle', 1, true))");
  BOOST_TEST(r == "ok:1000001");
}

BOOST_AUTO_TEST_CASE(size_limits) {
  fb::detail::PatternLimits lim;
  lim.max_subject = 1000;
  std::string r = run_bounded("return string.find(string.rep('a', 2000), 'b')", lim);
  BOOST_TEST(r.find("subject of 2000 bytes is over the limit of 1000 (scripts.max_pattern_subject)") !=
                 std::string::npos, r);
  r = run_bounded("return string.match('abc', string.rep('a', 9000))");
  BOOST_TEST(r.find("pattern of 9000 bytes is over the limit") != std::string::npos, r);
  r = run_bounded("return string.match(string.rep('a', 300), string.rep('a?', 300))");
  BOOST_TEST(r.find("nested deeper than 200") != std::string::npos, r);
}

BOOST_AUTO_TEST_SUITE_END()
