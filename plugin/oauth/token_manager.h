// token_manager.h: valid credentials for every integration, with refreshes that never race.
//
// credential(id) returns the stored access token while it is valid for more than the refresh
// buffer (tokens.refresh_buffer_s, capped at half the token's lifetime: refresh_buffer_for), and
// refreshes it first otherwise. Refreshing is single-flight at two
// levels:
//   - in this process, concurrent callers for one integration wait for the one refresh in flight
//     and all get its result;
//   - across processes sharing the database file, a refresh lease (refresh_lease_owner/_until on
//     the row, taken under BEGIN IMMEDIATE) lets one refresher spend the rotating refresh token;
//     the others poll the row until token_version moves and use the new token. The new pair is
//     stored by compare-and-swap on token_version, and committed before anyone gets it, so a crash
//     after the exchange can at worst lose a pair, never leave two owners of one refresh token.
// Failures:
//   - network errors, 429 and 5xx: retried by the TokenEndpoint (backoff with full jitter,
//     Retry-After honoured, tokens.refresh_max_attempts sends); when all fail, the integration
//     enters a cool-down of tokens.failure_cooldown_s (doubling with each consecutive failure,
//     up to 4x) during which no refresh is attempted, the
//     failure is counted and audited, and callers get the old access token while it has not
//     expired (else kUnavailable). The next success clears it and emits "connection_recovered".
//   - no answer (the refresh was sent and its outcome is unknown: the server may have rotated the
//     token): the TokenEndpoint sends it once more to find out, and no more. If that send is not
//     answered either, the integration is "in doubt" (refresh_in_doubt, health status
//     refresh_in_doubt, audit and event "refresh_outcome_unknown"): the current access token is
//     not handed out (a server that saw the token twice may have revoked it), callers get
//     kUnavailable, and the token is sent again only after the cool-down. That send settles it:
//     success, or invalid_grant, which is treated as what it is after a lost answer: the grant
//     is gone (reconnect_required below, with the reason saying so).
//   - invalid_grant: the row is re-read first; if token_version moved, another refresher won and
//     its token is used. Otherwise the integration becomes reconnect_required (compare-and-swap,
//     so exactly one "reconnect_required" event is emitted across all processes), the reason is
//     recorded in audit_log and last_refresh_error, and every later call fails with
//     kReconnectRequired without touching the network.
// API-key integrations are returned as Credential::Kind::kApiKey and never refreshed.
//
// Codes returned: kNotFound (no such integration, or not the principal's), kFailedPrecondition
// (disconnected or deactivated), kReconnectRequired, kUnavailable / kRateLimited / kTimeout
// (refresh failed or cooling down, and the old token has expired), kUnauthenticated (the app's
// client credentials were refused, or an API key was rejected), kInternal / kRejected (a sealed
// token could not be opened: wrong or missing key).
//
// Threading: thread-safe; one TokenManager per process (or several, each with its own owner id,
// behaving like separate processes). Network calls happen outside every lock.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/event_bus.h"
#include "core/principal.h"
#include "core/random.h"
#include "fathom/credential_source.h"
#include "fathom_bridge/config.h"
#include "oauth/integration_store.h"
#include "oauth/token_endpoint.h"

namespace fb::detail {

struct TokenManagerOptions {
  int refresh_buffer_s = 300;         // tokens.refresh_buffer_s
  int failure_cooldown_s = 900;       // tokens.failure_cooldown_s
  int keepalive_window_s = 6 * 3600;  // tokens.keepalive_window_s
  int lease_ttl_s = 60;               // tokens.refresh_lock_ttl_s
  int lease_poll_ms = 50;             // how often a waiting process re-reads the row
  static TokenManagerOptions from_config(const Config& config);
};

struct KeepaliveReport {
  int due = 0;        // integrations whose tokens were older than the window
  int refreshed = 0;  // refreshed by this sweep (or found freshly refreshed by another process)
  int failed = 0;
  std::vector<std::pair<int64_t, Status>> failures;  // integration id, why
};

struct TokenManagerStats {
  int64_t refreshes = 0;          // successful refreshes committed by this manager
  int64_t refresh_failures = 0;   // refreshes that ended in failure (transient or invalid_grant)
  int64_t lease_waits = 0;        // times this manager waited on another process's lease
  int64_t joined_flights = 0;     // callers that waited on an in-process refresh
};

class TokenManager final : public CredentialSource {
 public:
  // References must outlive the manager; events may be null.
  TokenManager(IntegrationStore& store, TokenEndpoint& endpoint, EventBus* events, TokenManagerOptions options,
               Clock& clock = system_clock(), Random& random = system_random());

  // CredentialSource: a credential valid beyond the refresh buffer (see the file comment).
  // Unscoped: for internal callers that got the id from the directory.
  Result<Credential> credential(int64_t integration_id) override;
  // The same after checking that the integration is the principal's (kNotFound otherwise).
  Result<Credential> credential(const Principal& principal, int64_t integration_id);
  // After Fathom answered 401 to `rejected`: when the stored token already changed, returns the
  // new one; else forces one refresh (single-flight, like credential()). For an API key:
  // kUnauthenticated (there is nothing to refresh).
  Result<Credential> refresh_after_unauthorized(int64_t integration_id, const Credential& rejected) override;
  // Refreshes now even if the token is fresh (operators, tests). Same single-flight rules.
  Result<Credential> force_refresh(int64_t integration_id);

  // Refreshes every active OAuth integration whose tokens were obtained more than
  // tokens.keepalive_window_s ago and that is not cooling down, so no connection lapses from
  // inactivity. Integrations are handled one after another.
  KeepaliveReport sweep_keepalive();

  // This manager's lease owner id ("<pid>-<random>").
  const std::string& owner_id() const { return owner_; }
  TokenManagerStats stats() const;

 private:
  struct Flight {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;                          // guarded by mu
    std::optional<Result<Credential>> result;   // guarded by mu
  };

  Result<Credential> single_flight(int64_t id, int64_t seen_version, bool force);
  Result<Credential> refresh_shared(int64_t id, int64_t seen_version, bool force);
  Result<Credential> credential_of(const IntegrationRecord& row) const;
  Result<Credential> fallback(const IntegrationRecord& row, Status failure, bool force) const;
  Status usable(const IntegrationRecord& row) const;
  Status emit(const std::string& type, const IntegrationRecord& row, const std::string& detail) const;
  // Marks the row reconnect_required (unless its token version moved on) and stores the
  // reconnect_required event in the same transaction; whether it marked it.
  Result<bool> mark_reconnect_required(const IntegrationRecord& row, const std::string& reason);

  IntegrationStore& store_;
  TokenEndpoint& endpoint_;
  EventBus* events_;
  const TokenManagerOptions options_;
  Clock& clock_;
  std::string owner_;

  std::mutex mu_;
  std::map<int64_t, std::shared_ptr<Flight>> flights_;  // guarded by mu_

  std::atomic<int64_t> refreshes_{0};
  std::atomic<int64_t> refresh_failures_{0};
  std::atomic<int64_t> lease_waits_{0};
  std::atomic<int64_t> joined_flights_{0};
};

}  // namespace fb::detail
