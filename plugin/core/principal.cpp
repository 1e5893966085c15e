#include "core/principal.h"

#include "core/utf8.h"

namespace fb::detail {
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
