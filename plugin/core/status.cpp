#include "fathom_bridge/status.h"

#include <ostream>

namespace fb {

const char* code_name(Code c) noexcept {
  switch (c) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid_argument";
    case Code::kNotFound: return "not_found";
    case Code::kAlreadyExists: return "already_exists";
    case Code::kPermissionDenied: return "permission_denied";
    case Code::kUnauthenticated: return "unauthenticated";
    case Code::kFailedPrecondition: return "failed_precondition";
    case Code::kUnavailable: return "unavailable";
    case Code::kRateLimited: return "rate_limited";
    case Code::kTimeout: return "timeout";
    case Code::kInternal: return "internal";
    case Code::kReconnectRequired: return "reconnect_required";
    case Code::kInvalidGrant: return "invalid_grant";
    case Code::kIo: return "io";
    case Code::kConfig: return "config";
    case Code::kScript: return "script";
    case Code::kConflict: return "conflict";
    case Code::kTooLarge: return "too_large";
    case Code::kMalformed: return "malformed";
    case Code::kRejected: return "rejected";
    case Code::kCancelled: return "cancelled";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  std::string out = code_name(code_);
  if (!message_.empty()) {
    out += ": ";
    out += message_;
  }
  return out;
}

Status Status::with_context(std::string_view context) const {
  if (ok()) return *this;
  std::string m(context);
  m += ": ";
  m += message_;
  return Status(code_, std::move(m));
}

std::ostream& operator<<(std::ostream& os, Code c) { return os << code_name(c); }
std::ostream& operator<<(std::ostream& os, const Status& s) { return os << s.to_string(); }

}  // namespace fb
