#include "server/sidecar.h"

#include <mutex>
#include <nlohmann/json.hpp>

#include "bridge/bridge_impl.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/utf8.h"
#include "crypto/hash.h"
#include "http/http_client.h"
#include "scripting/dry_run.h"
#include "server/event_routes.h"
#include "server/http_server.h"
#include "server/json_reply.h"
#include "server/metrics.h"
#include "server/ops_routes.h"
#include "server/script_routes.h"
#include "server/user_routes.h"
#include "server/webhook_routes.h"

namespace fb::detail {
namespace {

using nlohmann::json;

// Sends a Result<std::string> that already holds JSON text.
void send_result(ServerResponse& res, const Result<std::string>& r) {
  if (!r.ok()) return send_error(res, r.status());
  res.status = 200;
  res.set_content(*r, "application/json");
}

bool string_field(const json& j, const char* key, bool required, std::string* out, ServerResponse& res) {
  if (!j.contains(key) || j[key].is_null()) {
    if (required) send_error(res, Status::InvalidArgument(std::string("field '") + key + "' is required"));
    return !required;
  }
  if (!j[key].is_string()) {
    send_error(res, Status::InvalidArgument(std::string("field '") + key + "' must be a string"));
    return false;
  }
  *out = j[key].get<std::string>();
  return true;
}

bool int_field(const json& j, const char* key, bool required, int64_t* out, ServerResponse& res) {
  if (!j.contains(key) || j[key].is_null()) {
    if (required) send_error(res, Status::InvalidArgument(std::string("field '") + key + "' is required"));
    return !required;
  }
  if (!j[key].is_number_integer()) {
    send_error(res, Status::InvalidArgument(std::string("field '") + key + "' must be an integer"));
    return false;
  }
  *out = j[key].get<int64_t>();
  return true;
}

bool caller_of(const json& j, Caller* c, ServerResponse& res) {
  return string_field(j, "tenant_id", true, &c->tenant_id, res) && string_field(j, "user_id", true, &c->user_id, res) &&
         string_field(j, "team_id", false, &c->team_id, res);
}

int64_t query_int(const ServerRequest& req, const char* key, int64_t fallback) {
  if (!req.has_param(key)) return fallback;
  try {
    return std::stoll(req.param(key));
  } catch (...) {
    return fallback;
  }
}

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

}  // namespace

struct Sidecar::State {
  Bridge* bridge = nullptr;
  std::unique_ptr<HttpServer> server;
  std::shared_ptr<EventRoutes> events;  // GET /v1/events and /v1/events/stream over the durable feed
  std::unique_ptr<Metrics> metrics;  // /metrics, /readyz (ops_routes.h)
};

namespace {

// Forwards crm.<op> calls to the host's URL (server.crm_url).
// The handlers live in the bridge, which may outlive the sidecar: they share the transport.
Status register_crm_forwarding(Bridge& bridge, std::shared_ptr<HttplibTransport> transport, const std::string& url) {
  // Signed like the pushed events (Standard Webhooks, events.push_secret), so the CRM can check
  // that a call came from the bridge; webhook-id is the idempotency key, the same on a retry.
  std::string key;
  if (!bridge.config().events.push_secret.empty()) {
    FB_ASSIGN(key, parse_whsec(bridge.config().events.push_secret, "events.push_secret"));
  }
  for (const std::string& op : documented_crm_operations()) {
    FB_TRY(bridge.register_crm_operation(op, [transport, url, key](const CrmCall& call) -> Result<std::string> {
      HttpRequest req{"POST", url, {{"Idempotency-Key", call.idempotency_key}}, crm_call_json(call), "application/json"};
      if (!key.empty()) {
        for (auto& h : standard_webhook_headers(key, "crm_" + call.idempotency_key, system_clock().now_s(), req.body)) {
          req.headers.push_back(std::move(h));
        }
      }
      FB_ASSIGN(HttpResponse resp, transport->send(req));
      if (resp.status / 100 != 2) {
        std::string detail = utf8_text(resp.body, 300);  // the CRM's bytes: cut on a character
        return Status::Unavailable("CRM host answered " + std::to_string(resp.status) + " to " + call.operation +
                                   (detail.empty() ? "" : ": " + detail));
      }
      json result = json::parse(resp.body.empty() ? "{}" : resp.body, nullptr, false);
      if (result.is_discarded()) return Status::Malformed("CRM host's answer to " + call.operation + " is not JSON");
      return result.dump();
    }));
  }
  return Status::Ok();
}

void send_route(ServerResponse& res, const Result<WebhookRoute>& r) {
  if (!r.ok()) return send_error(res, r.status());
  res.status = 200;
  res.set_content(r->to_json(), "application/json");
}

// /v1/webhooks/routes*: webhook routes with a hand-made or rotated secret (bridge.h). A secret
// arrives in a request body and is never part of an answer.
void mount_webhook_route_routes(HttpServer& svr, Bridge& bridge) {
  svr.route("GET", "/v1/webhooks/routes", [&bridge](const ServerRequest& req, ServerResponse& res) {
    auto r = bridge.webhook_routes({req.param("tenant_id"), req.param("user_id"), ""},
                                   query_int(req, "integration_id", 0));
    if (!r.ok()) return send_error(res, r.status());
    json out = json::array();
    for (const auto& w : *r) out.push_back(json::parse(w.to_json()));
    send_json(res, 200, out);
  });
  svr.route("POST", "/v1/webhooks/routes", [&bridge](const ServerRequest& req, ServerResponse& res) {
    json b;
    Caller c;
    int64_t id = 0;
    std::string secret;
    if (!body_object(req, res, &b) || !caller_of(b, &c, res) || !int_field(b, "integration_id", true, &id, res) ||
        !string_field(b, "secret", false, &secret, res)) {
      return;
    }
    send_route(res, bridge.add_webhook_route(c, id, secret));
  });
  svr.route("POST", "/v1/webhooks/routes/register", [&bridge](const ServerRequest& req, ServerResponse& res) {
    json b;
    Caller c;
    int64_t id = 0;
    if (!body_object(req, res, &b) || !caller_of(b, &c, res) || !int_field(b, "integration_id", true, &id, res)) return;
    send_route(res, bridge.register_webhook_route(c, id));
  });
  svr.route("POST", "/v1/webhooks/routes/rotate", [&bridge](const ServerRequest& req, ServerResponse& res) {
    json b;
    Caller c;
    int64_t id = 0;
    std::string secret;
    if (!body_object(req, res, &b) || !caller_of(b, &c, res) || !int_field(b, "route_id", true, &id, res) ||
        !string_field(b, "secret", true, &secret, res)) {
      return;
    }
    send_route(res, bridge.rotate_webhook_secret(c, id, secret));
  });
  svr.route("POST", "/v1/webhooks/routes/remove", [&bridge](const ServerRequest& req, ServerResponse& res) {
    json b;
    Caller c;
    int64_t id = 0;
    if (!body_object(req, res, &b) || !caller_of(b, &c, res) || !int_field(b, "route_id", true, &id, res)) return;
    Status s = bridge.remove_webhook_route(c, id);
    if (!s.ok()) return send_error(res, s);
    send_json(res, 200, {{"removed", id}});
  });
}

void mount_host_routes(HttpServer& svr, Bridge& bridge) {
  const Config& config = bridge.config();
  std::string token = config.server.api_token;

  // Every /v1 route checks the bearer token first.
  svr.guard("/v1/", [token](const ServerRequest& req, ServerResponse& res) {
    if (!bearer_authorized(req, token)) {
      send_json(res, 401, {{"error", "unauthenticated"}, {"message", "missing or wrong bearer token"}});
      return false;
    }
    return true;
  });

  svr.route("GET", "/healthz", [](const ServerRequest&, ServerResponse& res) { res.set_content("ok", "text/plain"); });

  std::string callback_path = "/oauth/callback";
  if (auto u = parse_url(config.fathom.redirect_uri); u.ok()) {
    callback_path = u->path_and_query.substr(0, u->path_and_query.find('?'));
  }
  svr.route("GET", callback_path, [&bridge](const ServerRequest& req, ServerResponse& res) {
    CallbackOutcome o = bridge.connect_callback(std::string(req.query));
    res.status = o.http_status;
    res.set_header("Cache-Control", "no-store");
    if (!o.location.empty()) {
      res.set_header("Location", o.location);
    } else {
      res.set_header("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'");
      res.set_content(o.body, o.content_type.empty() ? "text/html; charset=utf-8" : o.content_type);
    }
  });

  svr.route("POST", "/v1/connect/start", [&bridge](const ServerRequest& req, ServerResponse& res) {
    json b;
    Caller c;
    std::string mode = "popup";
    if (!body_object(req, res, &b) || !caller_of(b, &c, res) || !string_field(b, "mode", false, &mode, res)) return;
    if (mode != "popup" && mode != "redirect") return send_error(res, Status::InvalidArgument("mode must be popup or redirect"));
    auto r = bridge.connect_start(c, mode == "popup" ? ReturnMode::kPopup : ReturnMode::kRedirect);
    if (!r.ok()) return send_error(res, r.status());
    send_json(res, 200, {{"authorize_url", r->authorize_url}, {"expires_at", r->expires_at}});
  });
  // For a CRM that serves the callback URL itself, inside its own session: it forwards the query
  // with the CRM user signed in there, and a state started by another user is refused
  // (Bridge::connect_callback with signed_in). Answers the outcome the CRM serves to the browser:
  // {"ok", "error", "reason", "http_status", "content_type", "body" | "location", ...}.
  svr.route("POST", "/v1/connect/callback", [&bridge](const ServerRequest& req, ServerResponse& res) {
    json b;
    Caller c;
    std::string query;
    if (!body_object(req, res, &b) || !caller_of(b, &c, res) || !string_field(b, "query", true, &query, res)) return;
    CallbackOutcome o = bridge.connect_callback(query, c);
    res.set_header("Cache-Control", "no-store");
    res.set_content(o.to_json(), "application/json");
  });
  svr.route("POST", "/v1/connect/api-key", [&bridge](const ServerRequest& req, ServerResponse& res) {
    json b;
    Caller c;
    std::string key;
    if (!body_object(req, res, &b) || !caller_of(b, &c, res) || !string_field(b, "api_key", true, &key, res)) return;
    auto r = bridge.connect_api_key(c, key);
    if (!r.ok()) return send_error(res, r.status());
    send_json(res, 200, {{"integration_id", *r}});
  });
  svr.route("POST", "/v1/disconnect", [&bridge](const ServerRequest& req, ServerResponse& res) {
    json b;
    Caller c;
    int64_t id = 0;
    if (!body_object(req, res, &b) || !caller_of(b, &c, res) || !int_field(b, "integration_id", true, &id, res)) return;
    Status s = bridge.disconnect(c, id);
    if (!s.ok()) return send_error(res, s);
    send_json(res, 200, {{"disconnected", id}});
  });
  svr.route("POST", "/v1/access-token", [&bridge](const ServerRequest& req, ServerResponse& res) {
    json b;
    Caller c;
    int64_t id = 0;
    if (!body_object(req, res, &b) || !caller_of(b, &c, res) || !int_field(b, "integration_id", true, &id, res)) return;
    auto r = bridge.access_token(c, id);
    if (!r.ok()) return send_error(res, r.status());
    res.set_header("Cache-Control", "no-store");
    send_json(res, 200, {{"access_token", *r}});
  });
  svr.route("GET", "/v1/token-health", [&bridge](const ServerRequest& req, ServerResponse& res) {
    send_result(res, bridge.token_health_json(req.param("tenant_id"), req.param("user_id")));
  });
  svr.route("POST", "/v1/deactivate-expired", [&bridge](const ServerRequest&, ServerResponse& res) {
    send_result(res, bridge.deactivate_expired());
  });
  svr.route("POST", "/v1/sync", [&bridge](const ServerRequest& req, ServerResponse& res) {
    json b;
    Caller c;
    int64_t id = 0;
    fb::SyncRequest sr;
    std::string since, until;
    if (!body_object(req, res, &b) || !caller_of(b, &c, res) || !int_field(b, "integration_id", true, &id, res) ||
        !string_field(b, "mode", false, &sr.mode, res) || !string_field(b, "since", false, &since, res) ||
        !string_field(b, "until", false, &until, res) || !int_field(b, "recording_id", false, &sr.recording_id, res)) {
      return;
    }
    if (!since.empty() && !parse_iso8601(since, &sr.since)) return send_error(res, Status::InvalidArgument("field 'since' is not ISO 8601"));
    if (!until.empty() && !parse_iso8601(until, &sr.until)) return send_error(res, Status::InvalidArgument("field 'until' is not ISO 8601"));
    if (b.contains("async") && !b["async"].is_boolean()) {
      return send_error(res, Status::InvalidArgument("field 'async' must be true or false"));
    }
    if (b.contains("wait_if_running") && !b["wait_if_running"].is_boolean()) {
      return send_error(res, Status::InvalidArgument("field 'wait_if_running' must be true or false"));
    }
    sr.wait_if_running = b.value("wait_if_running", false);
    if (!b.value("async", false)) return send_result(res, bridge.sync(c, id, sr));
    // Started: 202 with the job (watch it at /v1/sync/job, stop it at /v1/sync/cancel).
    auto job = bridge.sync_start(c, id, sr);
    if (!job.ok()) return send_error(res, job.status());
    res.status = 202;
    res.set_content(*job, "application/json");
  });
  svr.route("POST", "/v1/sync/job", [&bridge](const ServerRequest& req, ServerResponse& res) {
    json b;
    Caller c;
    int64_t job = 0;
    if (!body_object(req, res, &b) || !caller_of(b, &c, res) || !int_field(b, "job_id", true, &job, res)) return;
    send_result(res, bridge.sync_job(c, job));
  });
  svr.route("POST", "/v1/sync/cancel", [&bridge](const ServerRequest& req, ServerResponse& res) {
    json b;
    Caller c;
    int64_t job = 0;
    if (!body_object(req, res, &b) || !caller_of(b, &c, res) || !int_field(b, "job_id", true, &job, res)) return;
    Status s = bridge.sync_cancel(c, job);
    if (!s.ok()) return send_error(res, s);
    send_json(res, 202, {{"job_id", job}, {"cancel_requested", true}});
  });
  // The API token is operator-wide: without tenant_id these list every tenant; with it, one.
  svr.route("GET", "/v1/sync/jobs", [&bridge](const ServerRequest& req, ServerResponse& res) {
    send_result(res, bridge.sync_jobs_json(query_int(req, "integration_id", 0), req.param("status"),
                                           static_cast<int>(query_int(req, "limit", 50)), req.param("tenant_id")));
  });
  svr.route("GET", "/v1/webhooks/events", [&bridge](const ServerRequest& req, ServerResponse& res) {
    send_result(res, bridge.webhook_events_json(req.param("status"), query_int(req, "integration_id", 0),
                                                static_cast<int>(query_int(req, "limit", 100)),
                                                req.param("tenant_id")));
  });
  mount_webhook_route_routes(svr, bridge);
  svr.route("POST", "/v1/webhooks/replay", [&bridge](const ServerRequest& req, ServerResponse& res) {
    json b;
    std::string id;
    if (!body_object(req, res, &b)) return;
    if (b.contains("event_id") && b["event_id"].is_number_integer()) {
      id = std::to_string(b["event_id"].get<int64_t>());
    } else if (!string_field(b, "event_id", true, &id, res)) {
      return;
    }
    auto r = bridge.webhook_replay(id);
    if (!r.ok()) return send_error(res, r.status());
    send_json(res, 200, {{"replayed", *r}});
  });
  svr.route("GET", "/v1/events/deliveries", [&bridge](const ServerRequest& req, ServerResponse& res) {
    send_result(res, bridge.event_deliveries_json(static_cast<int>(query_int(req, "limit", 100))));
  });
  svr.route("POST", "/v1/scripts/reload", [&bridge](const ServerRequest&, ServerResponse& res) {
    Status s = bridge.reload_scripts();
    if (!s.ok()) return send_error(res, s);
    send_json(res, 200, {{"reloaded", true}});
  });
}

}  // namespace

Status forward_crm_operations(Bridge& bridge, const std::string& url) {
  return register_crm_forwarding(bridge, std::make_shared<HttplibTransport>(), url);
}

Sidecar::Sidecar(std::unique_ptr<State> state) : state_(std::move(state)) {}
Sidecar::~Sidecar() { stop(); }
int Sidecar::port() const { return state_->server->port(); }
std::vector<HttpServer::RouteInfo> Sidecar::routes() const { return state_->server->routes(); }
void Sidecar::stop() {
  if (state_ && state_->events) state_->events->stop();  // answers the waiting long polls first
  if (state_ && state_->server) state_->server->stop();
}

Result<std::unique_ptr<Sidecar>> Sidecar::start(Bridge& bridge, int port_override) {
  const Config& config = bridge.config();
  if (config.server.api_token.empty() && !is_loopback(config.server.host)) {
    return Status::Config("setting 'server.api_token' (FATHOM_BRIDGE_API_TOKEN) is required to listen on " +
                          config.server.host + ": the host routes would be open to the network");
  }
  auto state = std::make_unique<State>();
  state->bridge = &bridge;
  HttpServerOptions options = HttpServer::options_from(config.server, config.webhooks);
  if (port_override >= 0) options.port = port_override;
  state->server = std::make_unique<HttpServer>(options);
  if (!config.server.crm_url.empty()) FB_TRY(forward_crm_operations(bridge, config.server.crm_url));
  state->metrics = std::make_unique<Metrics>(bridge);
  mount_webhook_routes(*state->server, *bridge.impl().receiver, &state->metrics->ingest_latency());
  mount_host_routes(*state->server, bridge);
  mount_ops_routes(*state->server, *state->metrics);
  mount_script_routes(*state->server, bridge);  // /v1/scripts/*: stored script versions (issue 15)
  state->events = EventRoutes::mount(*state->server, *bridge.impl().events, config.server.api_token);
  FB_TRY(mount_user_routes(*state->server, bridge));  // /fathom/*: the CRM's browser, by its user's JWT
  FB_TRY(state->server->start());
  FB_LOG(kInfo, "sidecar") << "listening on " << options.host << ":" << state->server->port();
  return std::unique_ptr<Sidecar>(new Sidecar(std::move(state)));
}

}  // namespace fb::detail
