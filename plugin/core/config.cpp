// Loading and validation of fb::Config (config.h). Unknown keys are errors, so a typo in a
// config file fails at start instead of silently using a default.
#include "fathom_bridge/config.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/secret.h"
#include "core/utf8.h"
#include "crypto/sealer.h"
#include "http/http_client.h"
#include "store/db.h"

namespace fb {
namespace {

using nlohmann::json;

// Reads the keys of one config section into fields, refusing unknown keys and wrong types.
class Section {
 public:
  Section(const json& root, const char* name) : name_(name) {
    if (root.contains(name)) {
      if (!root[name].is_object()) {
        status_ = Status::Config(std::string("setting '") + name + "' must be an object");
      } else {
        obj_ = &root[name];
      }
    }
  }

  template <typename T>
  Section& get(const char* key, T* out) {
    if (!status_.ok() || !obj_ || !obj_->contains(key)) return *this;
    seen_.push_back(key);
    const json& v = (*obj_)[key];
    try {
      if constexpr (std::is_same_v<T, bool>) {
        if (!v.is_boolean()) throw std::runtime_error("must be true or false");
      } else if constexpr (std::is_integral_v<T>) {
        if (!v.is_number_integer()) throw std::runtime_error("must be an integer");
      } else if constexpr (std::is_same_v<T, std::string>) {
        if (!v.is_string()) throw std::runtime_error("must be a string");
      } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
        if (!v.is_array()) throw std::runtime_error("must be an array of strings");
        for (const auto& e : v) {
          if (!e.is_string()) throw std::runtime_error("must be an array of strings");
        }
      }
      *out = v.get<T>();
    } catch (const std::exception& e) {
      status_ = Status::Config("setting '" + name_ + "." + key + "' " + e.what());
    }
    return *this;
  }

  Status finish() {
    if (!status_.ok() || !obj_) return status_;
    for (const auto& [k, _] : obj_->items()) {
      bool known = false;
      for (const auto& s : seen_) known = known || s == k;
      if (!known) return Status::Config("unknown setting '" + name_ + "." + k + "'");
    }
    return status_;
  }

 private:
  std::string name_;
  const json* obj_ = nullptr;
  std::vector<std::string> seen_;
  Status status_;
};

Status from_json(const json& root, Config* c) {
  if (!root.is_object()) return Status::Config("config file must hold a JSON object");
  static const char* kSections[] = {"fathom", "frontend", "tokens", "sync", "webhooks",
                                    "scripts", "store", "server", "log_level", "log", "events",
                                    "user_api"};
  for (const auto& [k, _] : root.items()) {
    bool known = false;
    for (const char* s : kSections) known = known || k == s;
    if (!known) return Status::Config("unknown setting '" + k + "'");
  }
  auto& f = c->fathom;
  FB_TRY(Section(root, "fathom")
             .get("client_id", &f.client_id).get("client_secret", &f.client_secret)
             .get("redirect_uri", &f.redirect_uri).get("authorize_url", &f.authorize_url)
             .get("token_url", &f.token_url).get("api_base", &f.api_base).get("scope", &f.scope)
             .get("use_pkce", &f.use_pkce).get("ca_file", &f.ca_file).get("verify_tls", &f.verify_tls)
             .get("connect_timeout_ms", &f.connect_timeout_ms).get("read_timeout_ms", &f.read_timeout_ms)
             .get("oauth_include_content_on_list", &f.oauth_include_content_on_list)
             .get("issuer", &f.issuer).get("require_iss", &f.require_iss)
             .get("callback_timeout_ms", &f.callback_timeout_ms)
             .get("proxy", &f.proxy).get("no_proxy", &f.no_proxy)
             .finish());
  FB_TRY(Section(root, "frontend").get("url", &c->frontend.url)
             .get("success_path", &c->frontend.success_path).finish());
  auto& t = c->tokens;
  FB_TRY(Section(root, "tokens")
             .get("key", &t.key).get("old_keys", &t.old_keys).get("refresh_buffer_s", &t.refresh_buffer_s)
             .get("state_ttl_s", &t.state_ttl_s).get("refresh_max_attempts", &t.refresh_max_attempts)
             .get("refresh_backoff_base_ms", &t.refresh_backoff_base_ms)
             .get("refresh_backoff_max_ms", &t.refresh_backoff_max_ms)
             .get("failure_cooldown_s", &t.failure_cooldown_s).get("keepalive_window_s", &t.keepalive_window_s)
             .get("refresh_lock_ttl_s", &t.refresh_lock_ttl_s)
             .finish());
  auto& s = c->sync;
  FB_TRY(Section(root, "sync")
             .get("backfill_days", &s.backfill_days).get("interval_s", &s.interval_s)
             .get("overlap_s", &s.overlap_s).get("fetch_transcripts", &s.fetch_transcripts)
             .get("fetch_summaries", &s.fetch_summaries)
             .get("include_action_items", &s.include_action_items).get("include_crm_matches", &s.include_crm_matches).get("rate_limit_per_minute", &s.rate_limit_per_minute)
             .get("max_attempts", &s.max_attempts).get("backoff_base_ms", &s.backoff_base_ms)
             .get("backoff_max_ms", &s.backoff_max_ms).get("scheduler", &s.scheduler)
             .get("scheduler_concurrency", &s.scheduler_concurrency)
             .get("mapping_claim_ttl_s", &s.mapping_claim_ttl_s)
             .get("lease_ttl_s", &s.lease_ttl_s)
             .finish());
  auto& w = c->webhooks;
  FB_TRY(Section(root, "webhooks")
             .get("public_base_url", &w.public_base_url).get("path_prefix", &w.path_prefix)
             .get("triggered_for", &w.triggered_for).get("include_transcript", &w.include_transcript)
             .get("include_summary", &w.include_summary).get("include_action_items", &w.include_action_items)
             .get("include_crm_matches", &w.include_crm_matches).get("tolerance_s", &w.tolerance_s)
             .get("max_body_bytes", &w.max_body_bytes).get("workers", &w.workers)
             .get("max_attempts", &w.max_attempts).get("backoff_base_ms", &w.backoff_base_ms)
             .get("backoff_max_ms", &w.backoff_max_ms).get("secret_grace_s", &w.secret_grace_s)
             .get("retention_days", &w.retention_days).get("commit_timeout_ms", &w.commit_timeout_ms)
             .get("event_deadline_s", &w.event_deadline_s).get("claim_lease_s", &w.claim_lease_s)
             .finish());
  auto& sc = c->scripts;
  FB_TRY(Section(root, "scripts")
             .get("dir", &sc.dir).get("mapping", &sc.mapping).get("reactions", &sc.reactions)
             .get("instruction_limit", &sc.instruction_limit).get("time_limit_ms", &sc.time_limit_ms)
             .get("memory_limit_bytes", &sc.memory_limit_bytes).get("max_call_depth", &sc.max_call_depth)
             .get("max_pattern_subject", &sc.max_pattern_subject).get("hot_reload", &sc.hot_reload)
             .get("pool_size", &sc.pool_size).get("hook_mode", &sc.hook_mode)
             .get("watchdog_ms", &sc.watchdog_ms).get("reload_interval_ms", &sc.reload_interval_ms)
             .get("company_domains", &sc.company_domains)
             .get("fathom_calls_per_event", &sc.fathom_calls_per_event)
             .get("crm_calls_per_event", &sc.crm_calls_per_event)
             .get("crm_max_bytes", &sc.crm_max_bytes)
             .finish());
  FB_TRY(Section(root, "store").get("path", &c->store.path).get("full_sync", &c->store.full_sync)
             .get("busy_timeout_ms", &c->store.busy_timeout_ms).get("url", &c->store.url)
             .get("pool_size", &c->store.pool_size).finish());
  FB_TRY(Section(root, "server").get("host", &c->server.host).get("port", &c->server.port)
             .get("api_token", &c->server.api_token).get("threads", &c->server.threads)
             .get("crm_url", &c->server.crm_url).get("event_buffer", &c->server.event_buffer)
             .get("shutdown_timeout_s", &c->server.shutdown_timeout_s).finish());
  FB_TRY(Section(root, "events").get("retention_s", &c->events.retention_s).get("push_url", &c->events.push_url)
             .get("push_secret", &c->events.push_secret).get("push_max_attempts", &c->events.push_max_attempts)
             .get("push_backoff_ms", &c->events.push_backoff_ms)
             .get("push_backoff_max_ms", &c->events.push_backoff_max_ms).finish());
  if (root.contains("log_level")) {
    if (!root["log_level"].is_string()) return Status::Config("setting 'log_level' must be a string");
    c->log_level = root["log_level"].get<std::string>();
  }
  FB_TRY(Section(root, "log").get("format", &c->log.format).get("level", &c->log_level).finish());
  auto& u = c->user_api;
  FB_TRY(Section(root, "user_api").get("jwt_secret", &u.jwt_secret).get("jwks_file", &u.jwks_file)
             .get("issuer", &u.issuer).get("audience", &u.audience).get("leeway_s", &u.leeway_s)
             .get("tenant_claim", &u.tenant_claim).get("user_claim", &u.user_claim)
             .get("team_claim", &u.team_claim).get("allowed_origins", &u.allowed_origins).finish());
  return Status::Ok();
}

Status apply_env(Config* c) {
  auto env = [](const char* name, std::string* out) {
    if (const char* v = std::getenv(name); v && *v) *out = v;
  };
  env("FATHOM_CLIENT_ID", &c->fathom.client_id);
  env("FATHOM_CLIENT_SECRET", &c->fathom.client_secret);
  env("FATHOM_REDIRECT_URI", &c->fathom.redirect_uri);
  env("FATHOM_AUTHORIZE_URL", &c->fathom.authorize_url);
  env("FATHOM_TOKEN_URL", &c->fathom.token_url);
  env("FATHOM_API_BASE", &c->fathom.api_base);
  env("FATHOM_ISSUER", &c->fathom.issuer);
  env("FRONTEND_URL", &c->frontend.url);
  env("FATHOM_BRIDGE_TOKEN_KEY", &c->tokens.key);
  env("FATHOM_BRIDGE_PUBLIC_URL", &c->webhooks.public_base_url);
  env("FATHOM_BRIDGE_SCRIPTS_DIR", &c->scripts.dir);
  env("FATHOM_BRIDGE_DB", &c->store.path);
  env("FATHOM_BRIDGE_STORE_URL", &c->store.url);
  env("FATHOM_BRIDGE_API_TOKEN", &c->server.api_token);
  env("FATHOM_BRIDGE_CRM_URL", &c->server.crm_url);
  env("FATHOM_BRIDGE_EVENTS_PUSH_URL", &c->events.push_url);
  env("FATHOM_BRIDGE_EVENTS_PUSH_SECRET", &c->events.push_secret);
  env("FATHOM_BRIDGE_LOG_LEVEL", &c->log_level);
  env("FATHOM_BRIDGE_LOG_FORMAT", &c->log.format);
  env("FATHOM_BRIDGE_JWT_SECRET", &c->user_api.jwt_secret);
  env("FATHOM_BRIDGE_JWKS_FILE", &c->user_api.jwks_file);
  std::string old;
  env("FATHOM_BRIDGE_OLD_TOKEN_KEYS", &old);
  if (!old.empty()) {
    c->tokens.old_keys.clear();
    std::stringstream ss(old);
    std::string item;
    while (std::getline(ss, item, ',')) {
      if (!item.empty()) c->tokens.old_keys.push_back(item);
    }
  }
  std::string port;
  env("FATHOM_BRIDGE_PORT", &port);
  if (!port.empty()) {
    char* end = nullptr;
    long p = std::strtol(port.c_str(), &end, 10);
    if (*end != '\0' || p < 0 || p > 65535) return Status::Config("FATHOM_BRIDGE_PORT must be a port number");
    c->server.port = static_cast<int>(p);
  }
  return Status::Ok();
}

Status check_url(const std::string& value, const char* name) {
  auto u = detail::parse_url(value);
  if (!u.ok()) return Status::Config(std::string("setting '") + name + "' is not a valid http(s) URL: " + u.status().message());
  return Status::Ok();
}

Status check_positive(int64_t v, const char* name) {
  if (v <= 0) return Status::Config(std::string("setting '") + name + "' must be greater than 0");
  return Status::Ok();
}

}  // namespace

namespace {

// user_api (the /fathom/* routes): when on, tokens are checked against a fixed issuer and audience,
// and CORS origins are bare origins, compared byte for byte with the browser's Origin header.
Status validate_user_api(const UserApiConfig& u) {
  if (!u.enabled()) {
    if (!u.allowed_origins.empty()) {
      return Status::Config("setting 'user_api.allowed_origins' needs 'user_api.jwt_secret' or 'user_api.jwks_file'");
    }
    return Status::Ok();
  }
  if (!u.jwt_secret.empty() && u.jwt_secret.size() < 32) {
    return Status::Config("setting 'user_api.jwt_secret' (FATHOM_BRIDGE_JWT_SECRET) must be at least 32 bytes");
  }
  if (u.issuer.empty()) return Status::Config("setting 'user_api.issuer' is required with user_api tokens");
  if (u.audience.empty()) return Status::Config("setting 'user_api.audience' is required with user_api tokens");
  if (u.leeway_s < 0 || u.leeway_s > 300) return Status::Config("setting 'user_api.leeway_s' must be 0..300");
  if (u.tenant_claim.empty() || u.user_claim.empty() || u.team_claim.empty()) {
    return Status::Config("settings 'user_api.*_claim' must not be empty");
  }
  for (const auto& o : u.allowed_origins) {
    const bool scheme = o.rfind("https://", 0) == 0 || o.rfind("http://", 0) == 0;
    const size_t host = o.find("://") + 3;
    if (!scheme || o.size() <= host || o.find('/', host) != std::string::npos || o.find_first_of("?# *") != std::string::npos) {
      return Status::Config("setting 'user_api.allowed_origins' has '" + o +
                            "', which is not an origin like https://crm.example.com (scheme, host, optional port)");
    }
  }
  return Status::Ok();
}

}  // namespace

Status validate_config(const Config& c, ConfigRequirements req) {
  // An OAuth app that is configured at all must be configured completely.
  if (req.oauth || !c.fathom.client_id.empty()) {
    if (c.fathom.client_id.empty()) return Status::Config("setting 'fathom.client_id' (FATHOM_CLIENT_ID) is missing");
    if (c.fathom.client_secret.empty()) {
      return Status::Config("setting 'fathom.client_secret' (FATHOM_CLIENT_SECRET) is missing");
    }
    if (c.fathom.redirect_uri.empty()) {
      return Status::Config("setting 'fathom.redirect_uri' (FATHOM_REDIRECT_URI) is missing");
    }
    FB_TRY(check_url(c.fathom.redirect_uri, "fathom.redirect_uri"));
  }
  if (c.fathom.scope != "public_api") {
    return Status::Config("setting 'fathom.scope' must be 'public_api', the only scope Fathom has");
  }
  // These carry the client secret, codes, tokens and API keys: https, or http only on loopback.
  FB_TRY(detail::check_secure_url(c.fathom.authorize_url, "fathom.authorize_url"));
  FB_TRY(detail::check_secure_url(c.fathom.token_url, "fathom.token_url"));
  FB_TRY(detail::check_secure_url(c.fathom.api_base, "fathom.api_base"));
  if (!c.fathom.issuer.empty()) FB_TRY(check_url(c.fathom.issuer, "fathom.issuer"));
  FB_TRY(check_positive(c.fathom.callback_timeout_ms, "fathom.callback_timeout_ms"));
  if (!c.frontend.url.empty()) FB_TRY(check_url(c.frontend.url, "frontend.url"));
  if (!c.webhooks.public_base_url.empty()) FB_TRY(check_url(c.webhooks.public_base_url, "webhooks.public_base_url"));
  {
    // The receiver's route and the URL registered at Fathom are prefix + "/" + token: without a
    // leading '/' that URL was "https://hostwebhooks/...", and an empty prefix took every POST.
    // (Trailing '/'s are dropped, as the registry does.)
    const std::string& p = c.webhooks.path_prefix;
    const std::string_view q = std::string_view(p).substr(0, p.find_last_not_of('/') + 1);
    const bool chars = std::all_of(q.begin(), q.end(), [](unsigned char ch) {
      return std::isalnum(ch) || ch == '/' || ch == '-' || ch == '.' || ch == '_' || ch == '~';
    });
    if (q.size() < 2 || q.front() != '/' || q.find("//") != std::string::npos || !chars) {
      return Status::Config("setting 'webhooks.path_prefix' must be a path like '/webhooks/fathom' (a leading "
                            "'/'; letters, digits, '-', '.', '_', '~'), not '" + detail::utf8_text(p, 100) + "'");
    }
  }
  if (c.tokens.key.empty()) {
    return Status::Config("setting 'tokens.key' (FATHOM_BRIDGE_TOKEN_KEY) is missing: 32 random bytes, base64");
  }
  {
    std::string id;
    detail::SecretString key;
    FB_TRY(detail::parse_key_spec(c.tokens.key, &id, &key).with_context("setting 'tokens.key'"));
    for (const auto& k : c.tokens.old_keys) {
      FB_TRY(detail::parse_key_spec(k, &id, &key).with_context("setting 'tokens.old_keys'"));
    }
  }
  if (c.tokens.refresh_buffer_s < 0) return Status::Config("setting 'tokens.refresh_buffer_s' must be >= 0");
  FB_TRY(check_positive(c.tokens.state_ttl_s, "tokens.state_ttl_s"));
  FB_TRY(check_positive(c.tokens.refresh_max_attempts, "tokens.refresh_max_attempts"));
  if (c.tokens.state_ttl_s > 86400) return Status::Config("setting 'tokens.state_ttl_s' must be at most 86400");
  if (c.tokens.refresh_backoff_base_ms < 0) return Status::Config("setting 'tokens.refresh_backoff_base_ms' must be >= 0");
  if (c.tokens.refresh_backoff_max_ms < c.tokens.refresh_backoff_base_ms) {
    return Status::Config("setting 'tokens.refresh_backoff_max_ms' must be >= tokens.refresh_backoff_base_ms");
  }
  if (c.tokens.failure_cooldown_s < 0) return Status::Config("setting 'tokens.failure_cooldown_s' must be >= 0");
  FB_TRY(check_positive(c.tokens.keepalive_window_s, "tokens.keepalive_window_s"));
  FB_TRY(check_positive(c.tokens.refresh_lock_ttl_s, "tokens.refresh_lock_ttl_s"));
  if (c.frontend.success_path.empty() || c.frontend.success_path.front() != '/') {
    return Status::Config("setting 'frontend.success_path' must start with '/'");
  }
  FB_TRY(check_positive(c.sync.interval_s, "sync.interval_s"));
  FB_TRY(check_positive(c.sync.scheduler_concurrency, "sync.scheduler_concurrency"));
  FB_TRY(check_positive(c.sync.backfill_days, "sync.backfill_days"));
  FB_TRY(check_positive(c.sync.rate_limit_per_minute, "sync.rate_limit_per_minute"));
  FB_TRY(check_positive(c.sync.max_attempts, "sync.max_attempts"));
  FB_TRY(check_positive(c.sync.mapping_claim_ttl_s, "sync.mapping_claim_ttl_s"));
  FB_TRY(check_positive(c.sync.lease_ttl_s, "sync.lease_ttl_s"));
  FB_TRY(check_positive(c.webhooks.max_body_bytes, "webhooks.max_body_bytes"));
  FB_TRY(check_positive(c.webhooks.workers, "webhooks.workers"));
  FB_TRY(check_positive(c.webhooks.max_attempts, "webhooks.max_attempts"));
  FB_TRY(check_positive(c.webhooks.tolerance_s, "webhooks.tolerance_s"));
  FB_TRY(check_positive(c.webhooks.event_deadline_s, "webhooks.event_deadline_s"));
  FB_TRY(check_positive(c.webhooks.commit_timeout_ms, "webhooks.commit_timeout_ms"));
  FB_TRY(check_positive(c.webhooks.claim_lease_s, "webhooks.claim_lease_s"));
  if (c.webhooks.retention_days < 0) return Status::Config("setting 'webhooks.retention_days' must be >= 0");
  static const char* kTriggers[] = {"my_recordings", "shared_external_recordings", "my_shared_with_team_recordings",
                                    "shared_team_recordings"};
  if (c.webhooks.triggered_for.empty()) return Status::Config("setting 'webhooks.triggered_for' must not be empty");
  for (const auto& t : c.webhooks.triggered_for) {
    bool ok = false;
    for (const char* k : kTriggers) ok = ok || t == k;
    if (!ok) return Status::Config("setting 'webhooks.triggered_for' has unknown value '" + t + "'");
  }
  if (!c.webhooks.include_transcript && !c.webhooks.include_summary && !c.webhooks.include_action_items &&
      !c.webhooks.include_crm_matches) {
    return Status::Config("settings 'webhooks.include_*': Fathom requires at least one to be true");
  }
  FB_TRY(check_positive(c.scripts.instruction_limit, "scripts.instruction_limit"));
  FB_TRY(check_positive(c.scripts.time_limit_ms, "scripts.time_limit_ms"));
  FB_TRY(check_positive(c.scripts.memory_limit_bytes, "scripts.memory_limit_bytes"));
  FB_TRY(check_positive(c.scripts.pool_size, "scripts.pool_size"));
  FB_TRY(check_positive(c.scripts.max_call_depth, "scripts.max_call_depth"));
  FB_TRY(check_positive(c.scripts.max_pattern_subject, "scripts.max_pattern_subject"));
  FB_TRY(check_positive(c.scripts.watchdog_ms, "scripts.watchdog_ms"));
  FB_TRY(check_positive(c.scripts.crm_max_bytes, "scripts.crm_max_bytes"));
  FB_TRY(check_positive(c.scripts.crm_calls_per_event, "scripts.crm_calls_per_event"));
  if (c.scripts.hook_mode != "watchdog" && c.scripts.hook_mode != "always")
    return Status::Config("setting 'scripts.hook_mode' must be \"watchdog\" or \"always\"");
  if (c.scripts.reload_interval_ms < 0) return Status::Config("setting 'scripts.reload_interval_ms' must be >= 0");
  if (c.scripts.fathom_calls_per_event < 0)
    return Status::Config("setting 'scripts.fathom_calls_per_event' must be >= 0");
  if (c.store.path.empty()) return Status::Config("setting 'store.path' (FATHOM_BRIDGE_DB) is empty");
  if (!c.store.url.empty() && !detail::Db::is_postgres_url(c.store.url)) {
    return Status::Config("setting 'store.url' (FATHOM_BRIDGE_STORE_URL) must be a postgresql:// URL");
  }
  if (c.store.pool_size < 1 || c.store.pool_size > 1000) return Status::Config("setting 'store.pool_size' must be 1..1000");
  if (c.server.port < 0 || c.server.port > 65535) return Status::Config("setting 'server.port' is out of range");
  FB_TRY(check_positive(c.server.threads, "server.threads"));
  FB_TRY(check_positive(c.events.retention_s, "events.retention_s"));
  FB_TRY(check_positive(c.events.push_max_attempts, "events.push_max_attempts"));
  FB_TRY(check_positive(c.events.push_backoff_ms, "events.push_backoff_ms"));
  FB_TRY(check_positive(c.events.push_backoff_max_ms, "events.push_backoff_max_ms"));
  if (!c.events.push_url.empty()) FB_TRY(check_url(c.events.push_url, "events.push_url"));
  if (!c.events.push_url.empty() && c.events.push_secret.empty()) {
    return Status::Config("setting 'events.push_secret' is required with 'events.push_url'");
  }
  if (!c.server.crm_url.empty()) FB_TRY(check_url(c.server.crm_url, "server.crm_url"));
  static const char* kLevels[] = {"debug", "info", "warn", "error", "off"};
  bool level_ok = false;
  for (const char* l : kLevels) level_ok = level_ok || c.log_level == l;
  if (!level_ok) return Status::Config("setting 'log_level' must be debug, info, warn, error or off");
  if (c.log.format != "text" && c.log.format != "json") {
    return Status::Config("setting 'log.format' (FATHOM_BRIDGE_LOG_FORMAT) must be \"text\" or \"json\"");
  }
  if (c.server.shutdown_timeout_s < 0) return Status::Config("setting 'server.shutdown_timeout_s' must be >= 0");
  if (!c.fathom.proxy.empty()) FB_TRY(check_url(c.fathom.proxy, "fathom.proxy"));
  FB_TRY(validate_user_api(c.user_api));
  return Status::Ok();
}

Result<Config> parse_config(const std::string& json_text, bool use_env, ConfigRequirements req) {
  Config c;
  if (!json_text.empty()) {
    json root = json::parse(json_text, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
    if (root.is_discarded()) return Status::Config("config is not valid JSON");
    FB_TRY(from_json(root, &c));
  }
  if (use_env) FB_TRY(apply_env(&c));
  FB_TRY(validate_config(c, req));
  return c;
}

Result<Config> load_config(const std::string& path, ConfigRequirements req) {
  std::string text;
  if (!path.empty()) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::Config("cannot read config file '" + path + "'");
    std::ostringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  auto r = parse_config(text, true, req);
  if (!r.ok()) return r.status().with_context(path.empty() ? "config" : "config file '" + path + "'");
  return r;
}

}  // namespace fb
