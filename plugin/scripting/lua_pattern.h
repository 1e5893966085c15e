// lua_pattern.h: string.find, string.match, string.gmatch and string.gsub with a bounded matcher.
//
// Why: a count hook never interrupts a C function, and Lua's own matcher backtracks without
// limit: string.find(string.rep('a', 200), '.-.-.-.-b') runs for seconds inside one C call, out
// of reach of the time budget. This is our own implementation of Lua 5.4's pattern language
// (same syntax and results: classes, sets, quantifiers * + - ?, anchors, captures, position
// captures, back-references, %b, %f) whose every matching step is counted. A call that needs more
// than `base_steps + steps_per_byte * #subject` steps raises "pattern too complex"; subjects over
// max_subject bytes and patterns over max_pattern bytes are refused up front; the matcher's
// recursion is bounded by max_depth. Plain finds (no specials, or plain=true) use memmem (linear).
#pragma once

#include <lua.hpp>

#include <cstdint>

namespace fb::detail {

struct PatternLimits {
  int64_t max_subject = 1 << 20;  // scripts.max_pattern_subject
  int64_t max_pattern = 8192;
  int max_depth = 200;            // scripts.max_call_depth
  int64_t base_steps = 1'000'000;
  int64_t steps_per_byte = 32;
};

// Replaces find, match, gmatch and gsub in the table at index idx (the string library).
void install_bounded_patterns(lua_State* L, int idx, const PatternLimits& limits);

}  // namespace fb::detail
