#include "server/json_reply.h"

namespace fb::detail {

int http_status_of(Code c) {
  switch (c) {
    case Code::kOk: return 200;
    case Code::kInvalidArgument:
    case Code::kMalformed:
    case Code::kConfig: return 400;
    case Code::kUnauthenticated: return 401;
    case Code::kPermissionDenied: return 403;
    case Code::kNotFound: return 404;
    case Code::kAlreadyExists:
    case Code::kConflict:
    case Code::kFailedPrecondition:
    case Code::kReconnectRequired:
    case Code::kInvalidGrant: return 409;
    case Code::kTooLarge: return 413;
    case Code::kScript: return 422;
    case Code::kRateLimited: return 429;
    case Code::kUnavailable:
    case Code::kTimeout: return 503;
    default: return 500;
  }
}

void send_json(ServerResponse& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void send_error(ServerResponse& res, const Status& s) {
  send_json(res, http_status_of(s.code()), {{"error", code_name(s.code())}, {"message", s.message()}});
}

// Parses the request body as a JSON object or answers 400.
bool body_object(const ServerRequest& req, ServerResponse& res, nlohmann::json* out) {
  std::string_view text = req.body.empty() ? std::string_view("{}") : req.body;
  *out = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (out->is_discarded() || !out->is_object()) {
    send_error(res, Status::InvalidArgument("request body must be a JSON object"));
    return false;
  }
  return true;
}

}  // namespace fb::detail
