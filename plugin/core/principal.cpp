#include "core/principal.h"

namespace fb::detail {
namespace {

Status check_field(const std::string& v, const char* name, bool required) {
  if (v.empty()) {
    return required ? Status::InvalidArgument(std::string(name) + " is required") : Status::Ok();
  }
  if (v.size() > 200) return Status::InvalidArgument(std::string(name) + " is longer than 200 bytes");
  for (unsigned char c : v) {
    if (c < 0x20 || c == 0x7f) return Status::InvalidArgument(std::string(name) + " contains a control character");
  }
  return Status::Ok();
}

}  // namespace

Status validate_principal(const Principal& p) {
  FB_TRY(check_field(p.tenant_id, "tenant_id", true));
  FB_TRY(check_field(p.user_id, "user_id", true));
  return check_field(p.team_id, "team_id", false);
}

}  // namespace fb::detail
