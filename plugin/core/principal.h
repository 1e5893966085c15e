// principal.h: who is asking. Every integration belongs to exactly one (tenant, user); every
// operation on an integration takes the caller's Principal and is refused with kPermissionDenied
// (or kNotFound, so ids cannot be probed) when it does not own the integration.
#pragma once

#include <string>

#include "fathom_bridge/status.h"

namespace fb::detail {

struct Principal {
  std::string tenant_id;
  std::string user_id;
  std::string team_id;  // optional CRM team
};

// Checks that tenant and user are non-empty printable strings of at most 200 bytes.
Status validate_principal(const Principal& p);

}  // namespace fb::detail
