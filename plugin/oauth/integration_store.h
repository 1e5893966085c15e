// integration_store.h: the repository of Fathom connections (table `integrations`, schema.h).
//
// Scoping: every method that takes a Principal acts only on the integration that belongs to that
// (tenant, user). Another tenant's or user's integration answers exactly like a missing one
// (kNotFound, "integration N not found"), so ids cannot be probed. The unscoped methods (by id
// alone) are for trusted internal callers (token manager, sync engine, scheduler, operators' CLI)
// and must never be reached with an id taken from an end user without a scoped check first.
//
// Secrets: access token, refresh token and API key are stored only as Sealer blobs (AES-256-GCM).
// The associated data binds each blob to its row, owner, field and token_version
// (see sealing_aad), so a blob copied to another row, field or version does not open. Every write
// seals with a fresh nonce under the Sealer's active key, so rewriting a token after a key
// rotation moves it to the new key; reseal_all() moves everything at once.
//
// Threading: thread-safe. All SQL goes through the Db's own lock; methods never call out over
// the network while holding it. Several IntegrationStores (in several processes) may share one
// database file.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/integration_directory.h"
#include "core/log.h"
#include "core/principal.h"
#include "core/secret.h"
#include "crypto/sealer.h"
#include "fathom_bridge/config.h"
#include "fathom_bridge/status.h"
#include "store/db.h"

namespace fb::detail {

// One integration row without its secrets. Times are Unix seconds; 0 means never / unknown.
struct IntegrationRecord {
  int64_t id = 0;
  std::string tenant_id;
  std::string user_id;
  std::string team_id;
  std::string kind;          // "oauth" or "api_key"
  std::string fathom_email;  // "" when not known
  std::string fathom_name;
  std::string status;        // "active", "reconnect_required" or "disconnected"
  bool active = false;       // is_active
  bool has_access_token = false;
  bool has_refresh_token = false;
  bool has_api_key = false;
  int64_t token_version = 0;     // bumped on every credential rewrite (refresh, reconnect)
  int64_t token_expires_at = 0;  // access-token expiry; 0 for API keys
  int64_t last_refresh_at = 0;   // when the current tokens were obtained (connect or refresh)
  std::string last_refresh_error;  // why the last refresh failed ("" after a success)
  int64_t refresh_failures = 0;    // consecutive failed refreshes
  int64_t cooldown_until = 0;      // no refresh attempt before this
  // A refresh was sent and never answered, so the server may have rotated the refresh token: the
  // current access token is not handed out until a later send settles it (success clears this,
  // invalid_grant makes the integration reconnect_required).
  bool refresh_in_doubt = false;
  std::string refresh_lease_owner;  // holder of the cross-process refresh lease ("" = none)
  int64_t refresh_lease_until_ms = 0;
  int64_t last_sync_at = 0;
  int64_t connected_at = 0;
  int64_t created_at = 0;
  int64_t updated_at = 0;
  // The sealed blobs as stored (ciphertext; "" when absent), read in the same statement as the
  // fields above so open_secrets() matches token_version. Never shown to anyone.
  struct Sealed {
    std::string access_token;
    std::string refresh_token;
    std::string api_key;
  } sealed;
};

// Opened secrets of one integration; empty when absent.
struct IntegrationSecrets {
  SecretString access_token;
  SecretString refresh_token;
  SecretString api_key;
};

// A token pair from the token endpoint.
struct TokenGrant {
  SecretString access_token;
  SecretString refresh_token;  // may be empty when Fathom sent none
  int64_t expires_at = 0;      // Unix seconds
  std::string token_type;      // as answered ("" when absent); see is_bearer_token_type
  // A 2xx answer whose access token cannot be used (TokenEndpoint::refresh only; exchange_code
  // fails instead): why, else "". refresh_token is what the answer carried, if anything.
  std::string unusable;
  // With `unusable`: the answer could not be read at all, so whether the server rotated the
  // refresh token is unknown (the refresh is in doubt, as after a lost answer).
  bool rotation_unknown = false;
};

struct FathomIdentity {
  std::string email;
  std::string name;
};

// What save_oauth / save_api_key did.
struct ConnectOutcome {
  int64_t integration_id = 0;
  bool created = false;            // a new row (else: a reconnect of the existing row)
  std::string previous_status;     // "" when created
  int64_t previous_failures = 0;   // refresh_failures before the reconnect
};

struct AuditEntry {
  int64_t id = 0;
  int64_t integration_id = 0;  // 0 when not about a stored integration (e.g. a denied connect)
  std::string tenant_id;
  std::string user_id;
  std::string event;   // connected, reconnected, connect_denied, connect_failed, refresh_failed,
                       // refresh_outcome_unknown,
                       // reconnect_required, connection_recovered, disconnected, deactivated,
                       // identity_updated
  std::string detail;  // human-readable; never a secret
  int64_t at = 0;
};

// Associated data of a sealed field: binds the blob to row id, owner, field name and version.
// Tenant and user ids cannot contain control characters (validate_principal), so the NUL
// separators make the encoding unambiguous.
std::string sealing_aad(int64_t integration_id, const std::string& tenant_id, const std::string& user_id,
                        std::string_view field, int64_t token_version);

// How long before expiry a token is refreshed: tokens.refresh_buffer_s, capped at half the
// lifetime of the token (from when it was obtained to its expiry), as mature clients do, so a
// token that lives less than the buffer is not refreshed on every use. 0 for API keys.
int64_t refresh_buffer_for(const IntegrationRecord& row, int64_t buffer_s);

// A Sealer with tokens.key active and every tokens.old_keys entry accepted for opening.
// kConfig names the setting that is wrong (the key bytes are never echoed).
Result<std::unique_ptr<Sealer>> make_sealer(const TokenConfig& config, Random& random = system_random());

class IntegrationStore final : public IntegrationDirectory {
 public:
  // db, sealer and clock must outlive the store. Call migrate() once before use.
  IntegrationStore(Db& db, const Sealer& sealer, Clock& clock = system_clock());

  // Applies the oauth schema migrations (schema.h).
  Status migrate();

  // ---- scoped (end-user facing) ----
  // kNotFound when id is not the principal's; kInvalidArgument for a malformed principal.
  Result<IntegrationRecord> get(const Principal& principal, int64_t integration_id);
  // The principal's integration (there is at most one per tenant and user); kNotFound when none.
  Result<IntegrationRecord> find(const Principal& principal);
  // Stores a token pair for the principal: creates the row, or on reconnect replaces the
  // credentials of the existing row (same id, so its sync history stays), status back to active,
  // failures and cool-down cleared, token_version bumped. Audits "connected" or "reconnected".
  Result<ConnectOutcome> save_oauth(const Principal& principal, const TokenGrant& grant);
  // Same for a per-user API key (kind api_key; no refresh token, no expiry).
  Result<ConnectOutcome> save_api_key(const Principal& principal, const SecretString& api_key);
  // Records who the Fathom account is, once learned (e.g. from recorded_by). kNotFound as get().
  Status set_identity(const Principal& principal, int64_t integration_id, const FathomIdentity& identity);
  // Deletes the sealed credentials, sets status disconnected and is_active 0, audits it.
  // kNotFound as get(); disconnecting twice is ok. Returns the record as it was before.
  Result<IntegrationRecord> disconnect(const Principal& principal, int64_t integration_id);
  // Audit entries of the principal's integration, newest first (limit <= 0: 100).
  Result<std::vector<AuditEntry>> audit_log(const Principal& principal, int64_t integration_id, int limit = 100);

  // ---- unscoped (trusted internal callers and operators) ----
  Result<IntegrationRecord> load(int64_t integration_id);
  // Rows of a tenant ("" = every tenant) and user ("" = every user), ordered by id.
  Result<std::vector<IntegrationRecord>> list(const std::string& tenant_id, const std::string& user_id);
  // Opens the sealed fields of a record read from this store. kNotFound when a blob's key id is
  // not configured, kRejected when a blob does not authenticate (wrong key, moved or tampered).
  Result<IntegrationSecrets> open_secrets(const IntegrationRecord& record) const;
  // Re-seals every credential not sealed with the active key (after a key rotation). Returns how
  // many rows were rewritten. Each row is rewritten in its own transaction under a version check.
  Result<int> reseal_all();
  // Appends an audit entry (integration_id 0 allowed).
  Status append_audit(int64_t integration_id, const std::string& tenant_id, const std::string& user_id,
                      const std::string& event, const std::string& detail);
  // Audit entries for operators: one integration (0 = all), newest first.
  Result<std::vector<AuditEntry>> audit_entries(int64_t integration_id, int limit = 100);

  // ---- refresh bookkeeping (TokenManager). Each is one atomic statement unless noted. ----
  // Runs fn inside BEGIN IMMEDIATE ... COMMIT (the database write lock, across processes).
  Status transaction(const std::function<Status()>& fn);
  // Sets the refresh lease. REQUIRES: inside transaction() after load() showed it free or expired.
  Status take_lease(int64_t integration_id, const std::string& owner, int64_t until_ms);
  // Extends the lease when `owner` still holds it; false when it was lost. With a deadline, waiting
  // for the store ends there (kUnavailable), so a renewal never holds up its holder for long.
  Result<bool> renew_lease(int64_t integration_id, const std::string& owner, int64_t until_ms,
                           std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);
  // Clears the lease when `owner` holds it.
  Status release_lease(int64_t integration_id, const std::string& owner);
  // Compare-and-swap: stores the new pair and bumps token_version to expected_version + 1 only
  // when the row is still at expected_version and active; clears failures, cool-down and the
  // lease. false when another writer got there first (nothing changed).
  Result<bool> commit_refresh(const IntegrationRecord& seen, const TokenGrant& grant);
  // Compare-and-swap on token_version and status 'active': marks reconnect_required and audits
  // it. false when the row moved on (another refresher won, or it is already marked).
  Result<bool> mark_reconnect_required(int64_t integration_id, int64_t expected_version, const std::string& reason);
  // Counts a failed refresh, stores why, sets the cool-down, releases owner's lease, audits
  // ("refresh_failed", or "refresh_outcome_unknown" with in_doubt, which also sets refresh_in_doubt).
  Status record_refresh_failure(int64_t integration_id, const std::string& owner, const std::string& error,
                                int64_t cooldown_until, bool in_doubt = false);
  // Sets is_active 0 on the listed rows that are still active and audits "deactivated".
  // Returns the rows actually changed.
  Result<std::vector<IntegrationRecord>> deactivate(const std::vector<int64_t>& ids, const std::string& reason);

  // ---- IntegrationDirectory ----
  // Integrations with status 'active' and is_active 1, ordered by id.
  std::vector<IntegrationInfo> list_active() override;
  Result<IntegrationInfo> get(int64_t integration_id) override;
  Status record_sync(int64_t integration_id, int64_t at_s) override;

  Clock& clock() { return clock_; }
  const Sealer& sealer() const { return sealer_; }
  // The database, for the other oauth tables (oauth_states).
  Db& db() { return db_; }

 private:
  Result<IntegrationRecord> load_where(const std::string& where, const std::function<void(Stmt&)>& bind);
  Result<std::string> seal(const IntegrationRecord& row, std::string_view field, int64_t version,
                           const SecretString& value) const;
  Result<ConnectOutcome> save(const Principal& principal, const std::string& kind, const TokenGrant* grant,
                              const SecretString* api_key);
  Status audit_locked(int64_t integration_id, const std::string& tenant_id, const std::string& user_id,
                      const std::string& event, const std::string& detail);

  Db& db_;
  const Sealer& sealer_;
  Clock& clock_;
  // list_active() failures: the scheduler lists every second, so a store outage would otherwise
  // write an ERROR line a second.
  LogThrottle list_failures_{60'000};
};

}  // namespace fb::detail
