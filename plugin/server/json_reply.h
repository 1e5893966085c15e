// json_reply.h: how the sidecar's JSON routes answer: a body, or an error
// {"error": "<code name>", "message": "..."} with the HTTP status of its code.
#pragma once

#include <nlohmann/json.hpp>

#include "fathom_bridge/status.h"
#include "server/http_server.h"

namespace fb::detail {

// 400 invalid/malformed/config, 401, 403, 404, 409 conflicts and reconnect_required, 413, 422
// script, 429, 503 unavailable/timeout, else 500.
int http_status_of(Code c);
void send_json(ServerResponse& res, int status, const nlohmann::json& body);
void send_error(ServerResponse& res, const Status& s);
// Parses the request body (empty: {}) as a JSON object into *out, or answers 400 and returns false.
bool body_object(const ServerRequest& req, ServerResponse& res, nlohmann::json* out);

}  // namespace fb::detail
