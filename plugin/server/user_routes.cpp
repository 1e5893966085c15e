#include "server/user_routes.h"

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "http/http_client.h"
#include "server/connect_widget.h"  // generated from widget/fathom-connect.js by CMake
#include "server/json_reply.h"
#include "server/user_auth.h"

namespace fb::detail {
namespace {

using nlohmann::json;

// The browser's form of an origin: the default port of the scheme is left out.
std::string browser_origin(const std::string& url) {
  auto u = parse_url(url);
  if (!u.ok()) return "";
  const bool default_port = (u->scheme == "https" && u->port == 443) || (u->scheme == "http" && u->port == 80);
  return u->scheme + "://" + u->host + (default_port ? "" : ":" + std::to_string(u->port));
}

struct UserApi {
  Bridge& bridge;
  std::unique_ptr<UserTokenVerifier> verifier;  // null while user_api is off
  std::vector<std::string> origins;
  std::string callback_origin;  // where the popup's message comes from (fathom.redirect_uri)

  // CORS for an actual request. False after answering 403 for an Origin that is not allowed.
  bool cors(const ServerRequest& req, ServerResponse& res) const {
    res.set_header("Vary", "Origin");
    res.set_header("Cache-Control", "no-store");
    if (!req.has_header("Origin")) return true;  // not a browser's cross-origin request
    const std::string origin(req.header("Origin"));
    if (std::find(origins.begin(), origins.end(), origin) == origins.end()) {
      send_json(res, 403, {{"error", "permission_denied"}, {"reason", "origin_not_allowed"},
                           {"message", "origin '" + origin + "' is not in user_api.allowed_origins"}});
      return false;
    }
    res.set_header("Access-Control-Allow-Origin", origin);
    return true;
  }

  // CORS, then the token. False after answering.
  bool authenticate(const ServerRequest& req, ServerResponse& res, Principal* who) const {
    if (!cors(req, res)) return false;
    if (!verifier) {
      send_json(res, 404, {{"error", "not_found"},
                           {"message", "the user routes are off: set user_api.jwt_secret or user_api.jwks_file"}});
      return false;
    }
    UserTokenCheck c = verifier->verify(req.header("Authorization"), system_clock().now_s());
    if (!c.ok()) {
      res.set_header("WWW-Authenticate", "Bearer error=\"invalid_token\", error_description=\"" + c.reason + "\"");
      send_json(res, 401, {{"error", "unauthenticated"}, {"reason", c.reason}, {"message", c.message}});
      return false;
    }
    *who = c.principal;
    return true;
  }

  // The user's integrations as the token health report has them (this user only).
  Result<json> health(const Principal& p) const {
    FB_ASSIGN(std::string text, bridge.token_health_json(p.tenant_id, p.user_id));
    json rows = json::parse(text, nullptr, false);
    if (!rows.is_array()) return Status::Internal("token health report is not a JSON array");
    return rows;
  }
};

// The safe view of one integration: nothing that is a secret or another tenant's.
json safe_view(const json& row) {
  return {{"integration_id", row["integration_id"]}, {"kind", row["kind"]},
          {"token_status", row["status"]},           {"expires_at", row["expires_at"]},
          {"has_refresh_token", row["has_refresh_token"]}, {"last_sync_at", row["last_sync_at"]},
          {"fathom_email", row["fathom_email"]}};
}

// The user's current integration: the newest one that is not disconnected, or null.
json current_of(const json& rows) {
  json best;
  for (const auto& r : rows) {
    if (r.value("status", "") == "disconnected" || !r.value("active", true)) continue;
    if (best.is_null() || r["integration_id"].get<int64_t>() > best["integration_id"].get<int64_t>()) best = r;
  }
  return best;
}

// The integration a sync or disconnect acts on: the body's integration_id, else the current one.
// A body id is passed on as given: the bridge answers kNotFound for another user's.
bool target_of(const UserApi& api, const Principal& who, const json& body, ServerResponse& res, int64_t* id) {
  if (body.contains("integration_id")) {
    if (!body["integration_id"].is_number_integer()) {
      send_error(res, Status::InvalidArgument("field 'integration_id' must be an integer"));
      return false;
    }
    *id = body["integration_id"].get<int64_t>();
    return true;
  }
  auto rows = api.health(who);
  if (!rows.ok()) {
    send_error(res, rows.status());
    return false;
  }
  json current = current_of(*rows);
  if (current.is_null()) {
    send_error(res, Status::NotFound("no Fathom connection for this user"));
    return false;
  }
  *id = current["integration_id"].get<int64_t>();
  return true;
}

Caller caller_of(const Principal& p) { return {p.tenant_id, p.user_id, p.team_id}; }

}  // namespace

std::string_view connect_widget_source() { return kConnectWidgetSource; }

Status mount_user_routes(HttpServer& server, Bridge& bridge) {
  const Config& config = bridge.config();
  auto api = std::make_shared<UserApi>(UserApi{bridge, nullptr, config.user_api.allowed_origins,
                                               browser_origin(config.fathom.redirect_uri)});
  if (config.user_api.enabled()) {
    FB_ASSIGN(api->verifier, UserTokenVerifier::create(config.user_api));
  }

  // The preflight of each route: its method, the Authorization and Content-Type headers.
  auto preflight = [api](const char* method) {
    return [api, method](const ServerRequest& req, ServerResponse& res) {
      if (!api->cors(req, res)) return;
      res.status = 204;
      res.set_header("Access-Control-Allow-Methods", method);
      res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
      res.set_header("Access-Control-Max-Age", "600");
    };
  };
  server.route("OPTIONS", "/fathom/connect", preflight("GET"));
  server.route("OPTIONS", "/fathom/status", preflight("GET"));
  server.route("OPTIONS", "/fathom/sync", preflight("POST"));
  server.route("OPTIONS", "/fathom/disconnect", preflight("POST"));

  server.route("GET", "/fathom/connect", [api](const ServerRequest& req, ServerResponse& res) {
    Principal who;
    if (!api->authenticate(req, res, &who)) return;
    std::string mode = req.has_param("mode") ? req.param("mode") : "popup";
    if (mode != "popup" && mode != "redirect") {
      return send_error(res, Status::InvalidArgument("query 'mode' must be popup or redirect"));
    }
    auto r = api->bridge.connect_start(caller_of(who), mode == "popup" ? ReturnMode::kPopup : ReturnMode::kRedirect);
    if (!r.ok()) return send_error(res, r.status());
    send_json(res, 200, {{"url", r->authorize_url}, {"expires_at", r->expires_at}, {"mode", mode},
                         {"callback_origin", api->callback_origin}});
  });

  server.route("GET", "/fathom/status", [api](const ServerRequest& req, ServerResponse& res) {
    Principal who;
    if (!api->authenticate(req, res, &who)) return;
    auto rows = api->health(who);
    if (!rows.ok()) return send_error(res, rows.status());
    json views = json::array();
    for (const auto& r : *rows) views.push_back(safe_view(r));
    json current = current_of(*rows);
    std::string state = current.is_null() ? "disconnected"
                        : current.value("status", "") == "reconnect_required" ? "reconnect_required"
                                                                               : "connected";
    send_json(res, 200, {{"state", state}, {"integration", current.is_null() ? json(nullptr) : safe_view(current)},
                         {"integrations", views}});
  });

  server.route("POST", "/fathom/sync", [api](const ServerRequest& req, ServerResponse& res) {
    Principal who;
    json body;
    int64_t id = 0;
    if (!api->authenticate(req, res, &who) || !body_object(req, res, &body) || !target_of(*api, who, body, res, &id)) return;
    SyncRequest sr;
    if (body.contains("mode")) {
      if (!body["mode"].is_string() || (body["mode"] != "incremental" && body["mode"] != "backfill")) {
        return send_error(res, Status::InvalidArgument("field 'mode' must be \"incremental\" or \"backfill\""));
      }
      sr.mode = body["mode"];
    }
    // The widget's "Sync now" during a scheduled sync (or a second click) gets that sync's result.
    sr.wait_if_running = true;
    auto r = api->bridge.sync(caller_of(who), id, sr);
    if (!r.ok()) return send_error(res, r.status());
    res.status = 200;
    res.set_content(*r, "application/json");
  });

  server.route("POST", "/fathom/disconnect", [api](const ServerRequest& req, ServerResponse& res) {
    Principal who;
    json body;
    int64_t id = 0;
    if (!api->authenticate(req, res, &who) || !body_object(req, res, &body) || !target_of(*api, who, body, res, &id)) return;
    Status s = api->bridge.disconnect(caller_of(who), id);
    if (!s.ok()) return send_error(res, s);
    send_json(res, 200, {{"disconnected", id}});
  });

  // Public: a module script is fetched in CORS mode, so any page may load it.
  server.route("GET", "/fathom/widget.js", [](const ServerRequest&, ServerResponse& res) {
    res.set_header("Access-Control-Allow-Origin", "*");
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_content(std::string(connect_widget_source()), "text/javascript; charset=utf-8");
  });
  return Status::Ok();
}

}  // namespace fb::detail
