// UTF-8 for text that leaves the process as JSON or as a PostgreSQL text value: both refuse bytes
// that are not well-formed UTF-8 (nlohmann::json::dump throws, PostgreSQL fails the statement), so a
// message carrying such bytes (an error a CRM echoed, a Lua error quoting a meeting's bytes) or cut
// inside a character could fail the very write that records it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace fb::detail {

// Decodes one UTF-8 sequence at s[i]; returns its length, or 0 when it is not well formed
// (Unicode 15, table 3-7: no overlong forms, no surrogates, nothing above U+10FFFF).
size_t utf8_sequence(std::string_view s, size_t i, char32_t* cp);

// `s` as well-formed UTF-8 of at most max_bytes: each ill-formed byte, and NUL (which PostgreSQL
// text cannot hold), becomes U+FFFD, and the cut falls on a character boundary (never inside a
// character).
std::string utf8_text(std::string_view s, size_t max_bytes = std::string::npos);

// `s` as utf8_text, and when that is longer than max_bytes, its first max_bytes (cut on a
// character) followed by `marker`, so a reader knows text was left out. The bound holds after the
// replacements (each ill-formed byte becomes three), not only on the bytes given.
std::string utf8_excerpt(std::string_view s, size_t max_bytes, std::string_view marker = "...");

}  // namespace fb::detail
