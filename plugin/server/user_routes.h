// user_routes.h: the routes a CRM's browser calls for its signed-in user, authenticated by the
// CRM's own session JWT (user_auth.h, settings user_api in config.h), and the connect widget.
//
//   GET  /fathom/connect?mode=popup|redirect -> {url, expires_at, mode, callback_origin}
//   GET  /fathom/status                      -> {state, integration, integrations}: safe fields only
//   POST /fathom/sync        {integration_id?, mode?}  -> the sync job record (waits for the sync)
//   POST /fathom/disconnect  {integration_id?}         -> {disconnected: id}
//   OPTIONS on each of them: the CORS preflight
//   GET  /fathom/widget.js                   the connect widget (widget/fathom-connect.js), public
//
// Who: the token's tenant, user and (optional) team claims. A user reaches their own integrations
// only: another user's integration_id is answered 404 like one that does not exist. Without
// integration_id, sync and disconnect act on the user's current integration (the newest that is
// not disconnected).
//
// state: "connected", "reconnect_required" (the grant was revoked or cannot be refreshed: connect
// again) or "disconnected" (nothing usable). An integration in the view has integration_id, kind,
// token_status (valid, expiring_soon, expired, refresh_in_doubt, reconnect_required,
// disconnected), expires_at, has_refresh_token, last_sync_at and fathom_email (the Fathom account,
// null until known) and nothing else: no tokens, no error texts, no other tenant's data.
//
// Refusals: 401 {"error": "unauthenticated", "reason", "message"} with a WWW-Authenticate header
// for a missing or unacceptable token (reasons in user_auth.h); 403 {"reason":
// "origin_not_allowed"} for a request or preflight whose Origin is not in user_api.allowed_origins
// (a request without Origin, from a server, is not a CORS request and is served); 404 for every
// route but widget.js while user_api has no jwt_secret or jwks_file.
//
// CORS: an allowed Origin is echoed in Access-Control-Allow-Origin (with Vary: Origin), never
// with Access-Control-Allow-Credentials: the token travels in the Authorization header, no cookie
// is read or set. A preflight answers 204 with the route's method, Authorization and
// Content-Type allowed, cached 10 minutes.
#pragma once

#include "fathom_bridge/bridge.h"
#include "fathom_bridge/status.h"
#include "server/http_server.h"

namespace fb::detail {

// Mounts the routes above on server (before it starts). kConfig when user_api.jwks_file cannot be
// used. The bridge must outlive the server's run.
Status mount_user_routes(HttpServer& server, Bridge& bridge);

// The widget's JavaScript source, as served at /fathom/widget.js.
std::string_view connect_widget_source();

}  // namespace fb::detail
