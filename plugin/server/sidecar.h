// sidecar.h: fathom-bridge as an HTTP service, for hosts that would rather call routes than link
// a library. `fathom-bridge serve` runs it.
//
// Public routes (the browser and Fathom call them):
//   GET  <path of fathom.redirect_uri>       the OAuth callback: the popup page, or a 302 to the frontend
//   POST {webhooks.path_prefix}/{token}      webhook deliveries (webhook_routes.h)
//   GET  /healthz                            200 "ok"
//   GET  /readyz, GET /metrics               readiness and Prometheus metrics (ops_routes.h)
// Host routes (JSON; `Authorization: Bearer <server.api_token>` when a token is configured; without
// one the sidecar refuses to listen on anything but loopback). The token is operator-wide: it is
// the CRM backend's credential, not a tenant's. Routes that act on an integration take the
// (tenant_id, user_id) that owns it; listings take an optional tenant_id and list every tenant
// without it (token-health, sync/jobs, webhooks/events). Identifiers are checked as in the C ABI
// (fathom_bridge.h, convention 8): 400 naming the field.
//   POST /v1/connect/start        {tenant_id, user_id, team_id?, mode: "popup"|"redirect"} -> {authorize_url, expires_at}
//   POST /v1/connect/callback     {tenant_id, user_id, query} -> the callback outcome to serve (the CRM
//                                 forwards its callback request with the user signed in there)
//   POST /v1/connect/api-key      {tenant_id, user_id, api_key} -> {integration_id}
//   POST /v1/disconnect           {tenant_id, user_id, integration_id}
//   POST /v1/access-token         {tenant_id, user_id, integration_id} -> {access_token}
//   GET  /v1/token-health         ?tenant_id=&user_id= -> [report rows]
//   POST /v1/deactivate-expired   -> [{integration_id, tenant_id, user_id}]
//   POST /v1/sync                 {tenant_id, user_id, integration_id, mode?, since?, until?, recording_id?} -> job
//   GET  /v1/sync/jobs            ?tenant_id=&integration_id=&status=&limit= -> [jobs]
//   GET  /v1/webhooks/events      ?tenant_id=&status=&integration_id=&limit= -> [events]
//   GET  /v1/webhooks/routes      ?tenant_id=&user_id=&integration_id= -> [routes]
//   POST /v1/webhooks/routes      {tenant_id, user_id, integration_id, secret?} -> route (a webhook made in Fathom's settings)
//   POST /v1/webhooks/routes/register {tenant_id, user_id, integration_id} -> route (created through Fathom's API)
//   POST /v1/webhooks/routes/rotate   {tenant_id, user_id, route_id, secret} -> route (old secret kept for the grace period)
//   POST /v1/webhooks/routes/remove   {tenant_id, user_id, route_id} -> {removed}
//   POST /v1/webhooks/replay      {event_id} or {event_id: "dead"} -> {replayed}
//   POST /v1/scripts/reload
//   GET  /v1/openapi.json         the OpenAPI 3.1 description of every route (plugin/server/openapi.json)
//   GET  /v1/events               ?after=ID&limit=N&wait=S -> {events: [{id, type, ...}], next: ID}: the durable
//                                 event feed by cursor; wait=S long-polls (server/event_routes.h)
//   GET  /v1/events/stream        the same as Server-Sent Events (Last-Event-ID resumes)
//   GET  /v1/events/deliveries    ?limit=N -> the push delivery log (events.push_url), newest first
// User routes (the CRM's browser, with the CRM's session JWT; user_api in config.h; user_routes.h):
//   GET  /fathom/connect, GET /fathom/status, POST /fathom/sync, POST /fathom/disconnect (+ OPTIONS)
//   GET  /fathom/widget.js        the connect widget (widget/fathom-connect.js)
// Errors: {"error": "<code name>", "message": "..."} with 400/403/404/409/429/502/503 by code.
// CRM operations: when server.crm_url is set, every crm.<op> call is POSTed there (see config.h).
#pragma once

#include <memory>
#include <vector>

#include "fathom_bridge/bridge.h"
#include "fathom_bridge/status.h"
#include "server/http_server.h"

namespace fb::detail {

// Registers every documented CRM operation so that the scripts' crm.<op> calls are POSTed to url
// (server.crm_url), as the sidecar does; the CLI's sync uses it too. The handlers own their
// transport, so they stay valid as long as the bridge keeps them.
Status forward_crm_operations(Bridge& bridge, const std::string& url);

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
