// ops_routes.h: the sidecar's routes for operators and their tools.
//
//   GET /readyz            200 {"ready": true, "checks": {...}} or 503 with the failing checks (metrics.h)
//   GET /metrics           Prometheus text format 0.0.4
//   GET /v1/openapi.json   the OpenAPI 3.1 description of every sidecar route (plugin/server/openapi.json)
//
// /readyz and /metrics need no token, like /healthz: probes and scrapers reach them on the
// sidecar's address, and they carry no secret. /v1/openapi.json is behind the /v1 bearer token.
#pragma once

#include <string_view>

#include "server/http_server.h"
#include "server/metrics.h"

namespace fb::detail {

// Mounts the routes (before server.start()). metrics must outlive the server's run.
void mount_ops_routes(HttpServer& server, Metrics& metrics);

// The OpenAPI document served at /v1/openapi.json, as kept in the repository.
std::string_view openapi_document();

}  // namespace fb::detail
