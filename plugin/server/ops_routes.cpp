#include "server/ops_routes.h"

#include "server/openapi_document.h"  // generated from openapi.json by CMake

namespace fb::detail {

std::string_view openapi_document() { return kOpenApiDocument; }

void mount_ops_routes(HttpServer& server, Metrics& metrics) {
  server.route("GET", "/readyz", [&metrics](const ServerRequest&, ServerResponse& res) {
    Readiness r = metrics.readiness();
    res.status = r.ready ? 200 : 503;
    res.set_header("Cache-Control", "no-store");
    res.set_content(r.to_json(), "application/json");
  });
  server.route("GET", "/metrics", [&metrics](const ServerRequest&, ServerResponse& res) {
    res.set_content(metrics.render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  server.route("GET", "/v1/openapi.json", [](const ServerRequest&, ServerResponse& res) {
    res.set_content(std::string(openapi_document()), "application/json");
  });
}

}  // namespace fb::detail
