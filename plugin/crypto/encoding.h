// encoding.h: base64 (standard and URL-safe), hex, percent-encoding, HTML escaping, and the
// ASCII comparisons HTTP needs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fb::detail {

std::string base64_encode(const uint8_t* data, size_t n);  // standard alphabet, padded
inline std::string base64_encode(std::string_view s) {
  return base64_encode(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}
// Standard alphabet; padding optional. nullopt on any invalid character.
std::optional<std::string> base64_decode(std::string_view text);
std::string base64url_encode(const uint8_t* data, size_t n);  // URL-safe alphabet, no padding
inline std::string base64url_encode(std::string_view s) {
  return base64url_encode(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}
std::optional<std::string> base64url_decode(std::string_view text);

std::string hex_encode(std::string_view bytes);

// RFC 3986 percent-encoding of everything but unreserved characters.
std::string url_encode(std::string_view s);
// Decodes %XX and, for form bodies, '+' as space. nullopt on a malformed escape.
std::optional<std::string> url_decode(std::string_view s, bool plus_as_space = true);
// application/x-www-form-urlencoded body or query string from ordered pairs.
std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields);
// Parses "a=1&b=2" into ordered pairs; nullopt on a malformed escape.
std::optional<std::vector<std::pair<std::string, std::string>>> form_decode(std::string_view body);

// Escapes & < > " ' for HTML text and attribute values.
std::string html_escape(std::string_view text);

// ASCII lower case; other bytes unchanged (no locale: HTTP names and tokens are ASCII).
inline char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
// ASCII case-insensitive equality (header names, tokens such as "chunked").
bool ascii_iequals(std::string_view a, std::string_view b);
// s without leading and trailing spaces and tabs (HTTP's optional whitespace).
std::string_view trim_ows(std::string_view s);

}  // namespace fb::detail
