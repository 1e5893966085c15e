// token_health.h: the token health report (per integration) and the bulk deactivation of
// integrations that can no longer be refreshed.
//
// Status of an integration:
//   disconnected        the user disconnected; no credentials are stored
//   reconnect_required  the grant is dead (invalid_grant); only the user can fix it
//   refresh_in_doubt    a refresh got no answer, so the server may have rotated the refresh token;
//                       no token is handed out until the next attempt (after the cool-down) settles
//                       it: success, or reconnect_required when Fathom refuses the token
//   expired             the access token's expiry has passed (a refresh will run on next use,
//                       unless there is no refresh token)
//   expiring_soon       expires within the refresh buffer: tokens.refresh_buffer_s, at most half
//                       the token's lifetime (refreshed on next use)
//   valid               otherwise; API-key integrations are always valid while connected
// The report never carries a token, key or other secret; the kFrontend view also leaves out
// operator details (the last refresh error and cool-down).
//
// Threading: thread-safe (reads and writes go through the IntegrationStore).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/principal.h"
#include "oauth/integration_store.h"

namespace fb::detail {

struct TokenHealth {
  int64_t integration_id = 0;
  std::string tenant_id;
  std::string user_id;
  std::string team_id;
  std::string kind;    // "oauth" or "api_key"
  std::string status;  // valid | expiring_soon | expired | refresh_in_doubt | reconnect_required | disconnected
  bool active = false;
  std::optional<int64_t> expires_in_s;  // negative once expired; none for API keys / no token
  int64_t token_expires_at = 0;         // Unix seconds, 0 = none
  bool has_refresh_token = false;
  int64_t last_refresh_at = 0;          // 0 = never
  int64_t last_sync_at = 0;             // 0 = never
  int64_t refresh_failures = 0;
  int64_t cooldown_until = 0;
  std::string last_error;               // last refresh error ("" when the last refresh worked)
  std::string fathom_email;             // "" when unknown
};

enum class HealthView { kOperator, kFrontend };

struct DeactivatedIntegration {
  int64_t integration_id = 0;
  std::string tenant_id;
  std::string user_id;
  std::string reason;
};

class TokenHealthReporter {
 public:
  // store and clock must outlive the reporter.
  TokenHealthReporter(IntegrationStore& store, Clock& clock, int refresh_buffer_s);

  // Integrations of a tenant ("" = all tenants: operators only) and user ("" = all users of the
  // tenant), ordered by id.
  Result<std::vector<TokenHealth>> report(const std::string& tenant_id, const std::string& user_id);
  // One integration of the principal; kNotFound when it is not theirs.
  Result<TokenHealth> report_one(const Principal& principal, int64_t integration_id);
  // The health of one stored record at the reporter's current time.
  TokenHealth health_of(const IntegrationRecord& record) const;

  // Deactivates (is_active 0, audited "deactivated") every active OAuth integration that cannot
  // get a working token without the user: status reconnect_required, or an expired access token
  // and no refresh token. Returns who to notify.
  Result<std::vector<DeactivatedIntegration>> deactivate_expired();

 private:
  IntegrationStore& store_;
  Clock& clock_;
  int refresh_buffer_s_;
};

// {"integration_id", "tenant_id", "user_id", "team_id", "kind", "status", "active", "expires_in_s",
//  "expires_at", "has_refresh_token", "last_refresh_at", "last_sync_at", "fathom_email",
//  and for operators "refresh_failures", "cooldown_until", "last_error"}; times ISO 8601 or null.
nlohmann::json token_health_to_json(const TokenHealth& health, HealthView view = HealthView::kOperator);
nlohmann::json token_health_to_json(const std::vector<TokenHealth>& report, HealthView view = HealthView::kOperator);
// [{"integration_id", "tenant_id", "user_id", "reason"}]
nlohmann::json deactivated_to_json(const std::vector<DeactivatedIntegration>& list);
// A fixed-width text table with a header line, one line per integration (for the CLI).
std::string token_health_table(const std::vector<TokenHealth>& report);
// "2h05m", "45s", "-3m10s", "-" (none).
std::string format_duration_s(std::optional<int64_t> seconds);

}  // namespace fb::detail
