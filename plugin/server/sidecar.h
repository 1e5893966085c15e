// sidecar.h: fathom-bridge as an HTTP service, for hosts that would rather call routes than link
// a library. `fathom-bridge serve` runs it.
//
// Public routes (the browser and Fathom call them):
//   GET  <path of fathom.redirect_uri>       the OAuth callback: the popup page, or a 302 to the frontend
//   POST {webhooks.path_prefix}/{token}      webhook deliveries (webhook_routes.h)
//   GET  /healthz                            200 "ok"
//   GET  /readyz, GET /metrics               readiness and Prometheus metrics (ops_routes.h)
// Host routes (JSON; `Authorization: Bearer <server.api_token>` when a token is configured; without
// one the sidecar refuses to listen on anything but loopback):
//   POST /v1/connect/start        {tenant_id, user_id, team_id?, mode: "popup"|"redirect"} -> {authorize_url, expires_at}
//   POST /v1/connect/api-key      {tenant_id, user_id, api_key} -> {integration_id}
//   POST /v1/disconnect           {tenant_id, user_id, integration_id}
//   POST /v1/access-token         {tenant_id, user_id, integration_id} -> {access_token}
//   GET  /v1/token-health         ?tenant_id=&user_id= -> [report rows]
//   POST /v1/deactivate-expired   -> [{integration_id, tenant_id, user_id}]
//   POST /v1/sync                 {tenant_id, user_id, integration_id, mode?, since?, until?, recording_id?} -> job
//   GET  /v1/sync/jobs            ?integration_id=&status=&limit= -> [jobs]
//   GET  /v1/webhooks/events      ?status=&integration_id=&limit= -> [events]
//   POST /v1/webhooks/replay      {event_id} or {event_id: "dead"} -> {replayed}
//   POST /v1/scripts/reload
//   GET  /v1/openapi.json         the OpenAPI 3.1 description of every route (plugin/server/openapi.json)
//   GET  /v1/events               ?after=SEQ -> {events: [{seq, type, ...}], next: SEQ} (the last server.event_buffer events)
// Errors: {"error": "<code name>", "message": "..."} with 400/403/404/409/429/502/503 by code.
// CRM operations: when server.crm_url is set, every crm.<op> call is POSTed there (see config.h).
#pragma once

#include <memory>
#include <vector>

#include "fathom_bridge/bridge.h"
#include "fathom_bridge/status.h"
#include "server/http_server.h"

namespace fb::detail {

class Sidecar {
 public:
  struct State;
  // Mounts every route on a new HttpServer and starts it. The bridge must outlive the Sidecar.
  // port_override >= 0 replaces server.port (0 = any free port).
  static Result<std::unique_ptr<Sidecar>> start(Bridge& bridge, int port_override = -1);
  ~Sidecar();
  int port() const;
  // Every route mounted (for the OpenAPI coverage check).
  std::vector<HttpServer::RouteInfo> routes() const;
  void stop();

 private:
  explicit Sidecar(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace fb::detail
