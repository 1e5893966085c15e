#include "core/principal.h"

namespace fb::detail {
namespace {

// Decodes one UTF-8 sequence at s[i]; returns its length, or 0 when it is not well formed
// (Unicode 15, table 3-7: no overlong forms, no surrogates, nothing above U+10FFFF).
size_t utf8_sequence(std::string_view s, size_t i, char32_t* cp) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  size_t n = 0;
  char32_t min = 0;
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    min = 0x10000;
  } else {
    return 0;
  }
  *cp = c & (0x7F >> n);
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
    *cp = (*cp << 6) | (b(k) & 0x3F);
  }
  if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF)) return 0;
  return n;
}

}  // namespace

Status validate_identifier(std::string_view v, const char* name, bool required) {
  if (v.empty()) {
    return required ? Status::InvalidArgument(std::string(name) + " is required") : Status::Ok();
  }
  if (v.size() > kMaxIdentifierBytes) {
    return Status::InvalidArgument(std::string(name) + " is longer than " + std::to_string(kMaxIdentifierBytes) +
                                   " bytes");
  }
  for (size_t i = 0; i < v.size();) {
    char32_t cp = 0;
    size_t n = utf8_sequence(v, i, &cp);
    if (n == 0) {
      return Status::InvalidArgument(std::string(name) + " is not valid UTF-8 (byte " + std::to_string(i) + ")");
    }
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
      return Status::InvalidArgument(std::string(name) + " contains a control character");
    }
    i += n;
  }
  return Status::Ok();
}

Status validate_principal(const Principal& p) {
  FB_TRY(validate_identifier(p.tenant_id, "tenant_id", true));
  FB_TRY(validate_identifier(p.user_id, "user_id", true));
  return validate_identifier(p.team_id, "team_id", false);
}

}  // namespace fb::detail
