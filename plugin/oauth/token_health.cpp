#include "oauth/token_health.h"

#include <cstdio>

#include "core/log.h"

namespace fb::detail {
namespace {

nlohmann::json iso_or_null(int64_t t) { return t > 0 ? nlohmann::json(format_iso8601(t)) : nlohmann::json(nullptr); }

// Left-aligned in a column of width w; longer text is cut and marked with '~'.
std::string cell(const std::string& text, size_t w) {
  if (text.size() > w) return text.substr(0, w - 1) + "~";
  return text + std::string(w - text.size(), ' ');
}

std::string short_time(int64_t t) {
  if (t <= 0) return "never";
  std::string iso = format_iso8601(t);  // 2025-03-01T17:01:30Z -> 2025-03-01 17:01:30
  if (iso.size() == 20) iso = iso.substr(0, 10) + " " + iso.substr(11, 8);
  return iso;
}

}  // namespace

TokenHealthReporter::TokenHealthReporter(IntegrationStore& store, Clock& clock, int refresh_buffer_s)
    : store_(store), clock_(clock), refresh_buffer_s_(refresh_buffer_s) {}

TokenHealth TokenHealthReporter::health_of(const IntegrationRecord& r) const {
  const int64_t now = clock_.now_s();
  TokenHealth h;
  h.integration_id = r.id;
  h.tenant_id = r.tenant_id;
  h.user_id = r.user_id;
  h.team_id = r.team_id;
  h.kind = r.kind;
  h.active = r.active;
  h.has_refresh_token = r.has_refresh_token;
  h.token_expires_at = r.token_expires_at;
  h.last_refresh_at = r.last_refresh_at;
  h.last_sync_at = r.last_sync_at;
  h.refresh_failures = r.refresh_failures;
  h.cooldown_until = r.cooldown_until > now ? r.cooldown_until : 0;
  h.last_error = r.last_refresh_error;
  h.fathom_email = r.fathom_email;
  if (r.kind == "oauth" && r.has_access_token && r.token_expires_at > 0) h.expires_in_s = r.token_expires_at - now;
  if (r.status == "disconnected") {
    h.status = "disconnected";
    h.expires_in_s.reset();
  } else if (r.status == "reconnect_required") {
    h.status = "reconnect_required";
  } else if (r.kind == "api_key") {
    h.status = "valid";
  } else if (r.refresh_in_doubt) {
    h.status = "refresh_in_doubt";
  } else if (!h.expires_in_s || *h.expires_in_s <= 0) {
    h.status = "expired";
  } else if (*h.expires_in_s <= refresh_buffer_for(r, refresh_buffer_s_)) {
    h.status = "expiring_soon";
  } else {
    h.status = "valid";
  }
  return h;
}

Result<std::vector<TokenHealth>> TokenHealthReporter::report(const std::string& tenant_id, const std::string& user_id) {
  FB_ASSIGN(auto rows, store_.list(tenant_id, user_id));
  std::vector<TokenHealth> out;
  out.reserve(rows.size());
  for (const auto& r : rows) out.push_back(health_of(r));
  return out;
}

Result<TokenHealth> TokenHealthReporter::report_one(const Principal& principal, int64_t integration_id) {
  FB_ASSIGN(IntegrationRecord r, store_.get(principal, integration_id));
  return health_of(r);
}

Result<std::vector<DeactivatedIntegration>> TokenHealthReporter::deactivate_expired() {
  FB_ASSIGN(auto rows, store_.list("", ""));
  const int64_t now = clock_.now_s();
  std::vector<int64_t> reconnect, expired;
  for (const auto& r : rows) {
    if (!r.active || r.kind != "oauth" || r.status == "disconnected") continue;
    if (r.status == "reconnect_required") {
      reconnect.push_back(r.id);
    } else if (!r.has_refresh_token && r.token_expires_at <= now) {
      expired.push_back(r.id);
    }
  }
  std::vector<DeactivatedIntegration> out;
  auto run = [&](const std::vector<int64_t>& ids, const std::string& reason) -> Status {
    if (ids.empty()) return Status::Ok();
    FB_ASSIGN(auto changed, store_.deactivate(ids, reason));
    for (const auto& r : changed) out.push_back({r.id, r.tenant_id, r.user_id, reason});
    return Status::Ok();
  };
  FB_TRY(run(reconnect, "the Fathom grant is no longer valid (reconnect required)"));
  FB_TRY(run(expired, "the access token expired and there is no refresh token"));
  FB_LOG(kInfo, "oauth") << "deactivated " << out.size() << " integration(s) that cannot be refreshed";
  return out;
}

nlohmann::json token_health_to_json(const TokenHealth& h, HealthView view) {
  nlohmann::json j = {{"integration_id", h.integration_id},
                      {"tenant_id", h.tenant_id},
                      {"user_id", h.user_id},
                      {"team_id", h.team_id},
                      {"kind", h.kind},
                      {"status", h.status},
                      {"active", h.active},
                      {"expires_in_s", h.expires_in_s ? nlohmann::json(*h.expires_in_s) : nlohmann::json(nullptr)},
                      {"expires_at", iso_or_null(h.expires_in_s ? h.token_expires_at : 0)},
                      {"has_refresh_token", h.has_refresh_token},
                      {"last_refresh_at", iso_or_null(h.last_refresh_at)},
                      {"last_sync_at", iso_or_null(h.last_sync_at)},
                      {"fathom_email", h.fathom_email.empty() ? nlohmann::json(nullptr) : nlohmann::json(h.fathom_email)}};
  if (view == HealthView::kOperator) {
    j["refresh_failures"] = h.refresh_failures;
    j["cooldown_until"] = iso_or_null(h.cooldown_until);
    j["last_error"] = h.last_error.empty() ? nlohmann::json(nullptr) : nlohmann::json(h.last_error);
  }
  return j;
}

nlohmann::json token_health_to_json(const std::vector<TokenHealth>& report, HealthView view) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& h : report) out.push_back(token_health_to_json(h, view));
  return out;
}

nlohmann::json deactivated_to_json(const std::vector<DeactivatedIntegration>& list) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& d : list) {
    out.push_back({{"integration_id", d.integration_id}, {"tenant_id", d.tenant_id}, {"user_id", d.user_id},
                   {"reason", d.reason}});
  }
  return out;
}

std::string format_duration_s(std::optional<int64_t> seconds) {
  if (!seconds) return "-";
  int64_t s = *seconds;
  std::string sign = s < 0 ? "-" : "";
  if (s < 0) s = -s;
  char buf[48];
  if (s >= 86400) {
    std::snprintf(buf, sizeof buf, "%s%lldd%02lldh", sign.c_str(), static_cast<long long>(s / 86400),
                  static_cast<long long>(s % 86400 / 3600));
  } else if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%s%lldh%02lldm", sign.c_str(), static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  } else if (s >= 60) {
    std::snprintf(buf, sizeof buf, "%s%lldm%02llds", sign.c_str(), static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%s%llds", sign.c_str(), static_cast<long long>(s));
  }
  return buf;
}

std::string token_health_table(const std::vector<TokenHealth>& report) {
  struct Col {
    const char* name;
    size_t width;
  };
  static const Col kCols[] = {{"ID", 6},      {"TENANT", 14},    {"USER", 14},         {"KIND", 7},
                              {"STATUS", 18}, {"EXPIRES IN", 10}, {"REFRESH", 7},       {"LAST REFRESH", 19},
                              {"LAST SYNC", 19}, {"ACTIVE", 6}};
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string l;
    for (size_t i = 0; i < cells.size(); ++i) l += cell(cells[i], kCols[i].width) + (i + 1 < cells.size() ? "  " : "");
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  std::vector<std::string> header;
  for (const auto& c : kCols) header.emplace_back(c.name);
  line(header);
  for (const auto& h : report) {
    line({std::to_string(h.integration_id), h.tenant_id, h.user_id, h.kind, h.status, format_duration_s(h.expires_in_s),
          h.has_refresh_token ? "yes" : "no", short_time(h.last_refresh_at), short_time(h.last_sync_at),
          h.active ? "yes" : "no"});
  }
  if (report.empty()) out += "(no integrations)\n";
  return out;
}

}  // namespace fb::detail
