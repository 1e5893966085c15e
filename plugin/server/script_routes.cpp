#include "server/script_routes.h"

#include <nlohmann/json.hpp>

#include "server/json_reply.h"

namespace fb::detail {
namespace {

using nlohmann::json;

// A string member that may be absent or null ("" then); false (after answering 400) for another type.
bool optional_text(const json& b, const char* key, std::string* out, ServerResponse& res) {
  if (!b.contains(key) || b[key].is_null()) return true;
  if (b[key].is_string()) {
    *out = b[key].get<std::string>();
    return true;
  }
  send_error(res, Status::InvalidArgument(std::string("'") + key + "' must be a string"));
  return false;
}

void reply(ServerResponse& res, const Result<std::string>& r, int status = 200) {
  if (!r.ok()) return send_error(res, r.status());
  res.status = status;
  res.set_content(*r, "application/json");
}

}  // namespace

void mount_script_routes(HttpServer& svr, Bridge& bridge) {
  svr.route("GET", "/v1/scripts/versions", [&bridge](const ServerRequest& req, ServerResponse& res) {
    std::string limit = req.param("limit");
    int n = 50;
    try {
      if (!limit.empty()) n = std::stoi(limit);
    } catch (const std::exception&) {
      return send_error(res, Status::InvalidArgument("limit must be a number"));
    }
    reply(res, bridge.script_versions_json(req.param("tenant_id"), n));
  });
  svr.route("POST", "/v1/scripts/versions", [&bridge](const ServerRequest& req, ServerResponse& res) {
    json b;
    std::string tenant, author, note;
    if (!body_object(req, res, &b) || !optional_text(b, "tenant_id", &tenant, res) ||
        !optional_text(b, "author", &author, res) || !optional_text(b, "note", &note, res)) {
      return;
    }
    if (!b.contains("files") || !b["files"].is_object()) {
      return send_error(res, Status::InvalidArgument("'files' must be an object of path -> Lua source"));
    }
    reply(res, bridge.script_upload(tenant, b["files"].dump(), author, note), 201);
  });
  svr.route("POST", "/v1/scripts/activate", [&bridge](const ServerRequest& req, ServerResponse& res) {
    json b;
    std::string tenant, author;
    if (!body_object(req, res, &b) || !optional_text(b, "tenant_id", &tenant, res) ||
        !optional_text(b, "author", &author, res)) {
      return;
    }
    if (!b.contains("version_id") || !b["version_id"].is_number_integer()) {
      return send_error(res, Status::InvalidArgument("'version_id' must be an integer"));
    }
    reply(res, bridge.script_activate(tenant, b["version_id"].get<int64_t>(), author));
  });
  svr.route("POST", "/v1/scripts/rollback", [&bridge](const ServerRequest& req, ServerResponse& res) {
    json b;
    std::string tenant, author;
    if (!body_object(req, res, &b) || !optional_text(b, "tenant_id", &tenant, res) ||
        !optional_text(b, "author", &author, res)) {
      return;
    }
    reply(res, bridge.script_rollback(tenant, author));
  });
  svr.route("POST", "/v1/scripts/validate", [&bridge](const ServerRequest& req, ServerResponse& res) {
    json b;
    std::string tenant;
    if (!body_object(req, res, &b) || !optional_text(b, "tenant_id", &tenant, res)) return;
    if (!b.contains("version_id") || !b["version_id"].is_number_integer()) {
      return send_error(res, Status::InvalidArgument("'version_id' must be an integer"));
    }
    int meetings = b.contains("meetings") && b["meetings"].is_number_integer() ? b["meetings"].get<int>() : 50;
    // The period (issue 15): "since" / "until" as Unix seconds, meetings created in [since, until).
    int64_t period[2] = {0, 0};
    for (int i = 0; i < 2; ++i) {
      const char* key = i == 0 ? "since" : "until";
      if (!b.contains(key) || b[key].is_null()) continue;
      if (!b[key].is_number_integer()) {
        return send_error(res, Status::InvalidArgument(std::string("'") + key + "' must be Unix seconds"));
      }
      period[i] = b[key].get<int64_t>();
    }
    reply(res, bridge.script_validate(tenant, b["version_id"].get<int64_t>(), meetings, period[0], period[1]));
  });
}

}  // namespace fb::detail
