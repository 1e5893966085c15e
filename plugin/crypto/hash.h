// hash.h: SHA-256, HMAC-SHA256 and constant-time comparison (OpenSSL).
#pragma once

#include <string>
#include <string_view>

namespace fb::detail {

// Raw 32-byte digests.
std::string sha256(std::string_view data);
std::string hmac_sha256(std::string_view key, std::string_view data);
// HMAC over several parts without concatenating them first (webhook "id.ts.body").
std::string hmac_sha256_parts(std::string_view key, std::initializer_list<std::string_view> parts);
// True when a and b are equal; time depends only on the lengths.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace fb::detail
