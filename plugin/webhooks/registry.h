// registry.h: webhook registrations: which receiving path belongs to which integration, and the
// signing secrets that path accepts.
//
// Every registration has its own unguessable path token (32 random bytes, base64url), so a delivery
// is matched to its integration and its secret by the URL it was sent to:
//   {webhooks.public_base_url}{webhooks.path_prefix}/{token}
// Secrets are sealed with the Sealer (AAD bound to the token), never stored or logged in
// plaintext. During a rotation the previous secret stays valid until its expiry
// (webhooks.secret_grace_s).
//
// register_for() creates the webhook at Fathom (POST /webhooks with the configured triggered_for
// and include_* flags) and stores it; unregister_all() deletes an integration's webhooks at Fathom
// (best effort) and locally. add_manual() records a webhook made in Fathom's settings, whose secret
// the user copied.
//
// lookup() is on the hot path: it serves decoded, ready-to-use keys from an in-memory cache that
// every change made through this Registry invalidates; entries are re-read from the database after
// cache_ttl_ms so that changes made by another process are seen too.
//
// Threading: thread-safe. Db, Sealer, Clock, Random and FathomClient must outlive the Registry.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/log.h"
#include "core/random.h"
#include "core/secret.h"
#include "crypto/sealer.h"
#include "fathom_bridge/config.h"
#include "fathom_bridge/status.h"
#include "store/db.h"
#include "webhooks/verifier.h"

namespace fb::detail {

class FathomClient;

struct WebhookFlags {
  std::vector<std::string> triggered_for;
  bool include_transcript = false;
  bool include_summary = false;
  bool include_action_items = false;
  bool include_crm_matches = false;
};

struct Registration {
  int64_t id = 0;
  int64_t integration_id = 0;
  std::string fathom_webhook_id;  // "" for a manual registration
  std::string path_token;
  std::string destination_url;
  WebhookFlags flags;
  std::string source;  // "api" or "manual"
  int64_t created_at_s = 0;
  int64_t prev_secret_expires_at_s = 0;  // 0 when there is no previous secret
};

// What the receiver needs for one path: an immutable snapshot, safe to use after the registry
// changed (the change applies to later lookups).
struct Endpoint {
  int64_t registration_id = 0;
  int64_t integration_id = 0;
  SigningKey current;
  std::optional<SigningKey> previous;
  int64_t previous_expires_at_s = 0;
  int64_t loaded_at_ms = 0;

  // The keys to try at now_s: current, then previous while it is within its grace period.
  size_t keys(int64_t now_s, const SigningKey* out[2]) const;
};

struct RegistryOptions {
  int64_t cache_ttl_ms = 60'000;
};

class Registry {
 public:
  // client may be null: then register_for() fails with kFailedPrecondition and unregister_all()
  // only removes local rows. REQUIRES: migrate_webhooks(db) was applied.
  Registry(Db& db, const Sealer& sealer, Clock& clock, Random& random, WebhookConfig config,
           FathomClient* client = nullptr, RegistryOptions options = {});
  ~Registry();

  // Creates the Fathom webhook for the integration (destination = public_base_url + path_prefix +
  // "/" + a new token) and stores it. kFailedPrecondition when webhooks.public_base_url is not set;
  // Fathom's errors (kUnauthenticated, kRateLimited, ...) are passed through. If storing fails after
  // Fathom created the webhook, it is deleted again (best effort).
  Result<Registration> register_for(int64_t integration_id);
  // Records a webhook created in Fathom's settings. destination_url is informational ("" = built
  // from the configuration when public_base_url is set).
  Result<Registration> add_manual(int64_t integration_id, const SecretString& secret,
                                  std::string_view fathom_webhook_id = {});
  // Rotation: secret becomes current, the old current stays accepted for webhooks.secret_grace_s.
  // kInvalidArgument for a malformed secret, kNotFound for an unknown registration.
  Status set_secret(int64_t registration_id, const SecretString& secret);
  // Deletes every webhook of the integration at Fathom (best effort: failures are logged and the
  // local rows are removed anyway, so deliveries to them are refused from now on).
  Status unregister_all(int64_t integration_id);
  // Removes one registration locally (no API call).
  Status remove(int64_t registration_id);
  // Removes one registration: deletes its webhook at Fathom first when it was made through the API
  // (best effort, as unregister_all), then the local row. kNotFound for an unknown id.
  Status unregister(int64_t registration_id);
  // One registration (never its secrets). kNotFound for an unknown id.
  Result<Registration> get(int64_t registration_id);
  // Registrations of one integration (0: all), oldest first. Never includes secrets.
  Result<std::vector<Registration>> list(int64_t integration_id = 0);

  // The endpoint for a path token, or null when no registration has it. Hot path. Fails (and the
  // receiver answers 503, so the sender retries) when the database cannot be read or a stored
  // secret does not open with the configured sealing keys.
  Result<std::shared_ptr<const Endpoint>> lookup(std::string_view path_token);
  // Drops cached endpoints (all when token is empty), e.g. after another process changed them.
  void invalidate(std::string_view path_token = {});

  // "{path_prefix}/{token}" and the full URL Fathom posts to ("" without public_base_url).
  std::string path_for(std::string_view token) const;
  std::string url_for(std::string_view token) const;
  const WebhookConfig& config() const { return config_; }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  Result<std::shared_ptr<const Endpoint>> load(std::string_view token);
  Result<Registration> insert(int64_t integration_id, const std::string& token, const std::string& url,
                              std::string_view fathom_id, const SecretString& secret, const WebhookFlags& flags,
                              const char* source);
  std::string new_token();
  Status unregister_one(const Registration& r);

  Db& db_;
  const Sealer& sealer_;
  Clock& clock_;
  Random& random_;
  WebhookConfig config_;
  FathomClient* client_;
  RegistryOptions options_;

  LogThrottle load_failures_{60'000};  // lookups that could not read the store

  std::shared_mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<const Endpoint>, Hash, std::equal_to<>> cache_;  // guarded by mu_
};

// Is this a plausible path token (base64url, 16..128 characters)? Cheap guard before a lookup.
bool valid_path_token(std::string_view token);

}  // namespace fb::detail
