// principal.h: who is asking. Every integration belongs to exactly one (tenant, user); every
// operation on an integration takes the caller's Principal and is refused with kPermissionDenied
// (or kNotFound, so ids cannot be probed) when it does not own the integration.
//
// Identifiers (tenant, user, team) are checked here, in one place, by every entry point: the C
// ABI, the C++ API and the sidecar all reach validate_principal / validate_identifier before a
// value is stored or used as a filter. A value that passes is valid UTF-8, at most 200 bytes, and
// has no control characters, so it can always be written to JSON, logs and terminals.
#pragma once

#include <string>
#include <string_view>

#include "fathom_bridge/status.h"

namespace fb::detail {

struct Principal {
  std::string tenant_id;
  std::string user_id;
  std::string team_id;  // optional CRM team
};

inline constexpr size_t kMaxIdentifierBytes = 200;

// kInvalidArgument naming the field (`name`) when value is empty (and required), longer than
// kMaxIdentifierBytes, not valid UTF-8 (overlong forms, surrogates and code points above U+10FFFF
// included), or contains a control character (C0, DEL or C1).
Status validate_identifier(std::string_view value, const char* name, bool required);

// Checks tenant and user (required) and team (optional) with validate_identifier.
Status validate_principal(const Principal& p);

}  // namespace fb::detail
