#include "webhooks/registry.h"

#include <mutex>
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "webhooks/registry_api.h"

namespace fb::detail {

namespace {

std::string secret_aad(std::string_view token) { return "webhooks/" + std::string(token) + "/secret"; }
std::string prev_secret_aad(std::string_view token) { return "webhooks/" + std::string(token) + "/prev_secret"; }

constexpr const char* kRegColumns =
    "id, integration_id, fathom_webhook_id, path_token, destination_url, triggered_for, include_transcript,"
    " include_summary, include_action_items, include_crm_matches, source, created_at, prev_secret_expires_at";

Registration read_registration(const Stmt& q) {
  Registration r;
  r.id = q.int64(0);
  r.integration_id = q.int64(1);
  r.fathom_webhook_id = q.text(2);
  r.path_token = q.text(3);
  r.destination_url = q.text(4);
  auto tf = nlohmann::json::parse(q.text(5), nullptr, false);
  if (tf.is_array()) {
    for (const auto& t : tf) {
      if (t.is_string()) r.flags.triggered_for.push_back(t.get<std::string>());
    }
  }
  r.flags.include_transcript = q.int64(6) != 0;
  r.flags.include_summary = q.int64(7) != 0;
  r.flags.include_action_items = q.int64(8) != 0;
  r.flags.include_crm_matches = q.int64(9) != 0;
  r.source = q.text(10);
  r.created_at_s = q.int64(11);
  r.prev_secret_expires_at_s = q.opt_int64(12).value_or(0);
  return r;
}

WebhookFlags flags_from(const WebhookConfig& c) {
  return {c.triggered_for, c.include_transcript, c.include_summary, c.include_action_items, c.include_crm_matches};
}

}  // namespace

size_t Endpoint::keys(int64_t now_s, const SigningKey* out[2]) const {
  size_t n = 0;
  out[n++] = &current;
  if (previous && now_s < previous_expires_at_s) out[n++] = &*previous;
  return n;
}

bool valid_path_token(std::string_view t) {
  if (t.size() < 16 || t.size() > 128) return false;
  for (char c : t) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

Registry::Registry(Db& db, const Sealer& sealer, Clock& clock, Random& random, WebhookConfig config,
                   FathomClient* client, RegistryOptions options)
    : db_(db), sealer_(sealer), clock_(clock), random_(random), config_(std::move(config)), client_(client),
      options_(options) {
  while (!config_.path_prefix.empty() && config_.path_prefix.back() == '/') config_.path_prefix.pop_back();
}

Registry::~Registry() = default;

std::string Registry::new_token() { return random_.token(32); }  // 256 bits

std::string Registry::path_for(std::string_view token) const { return config_.path_prefix + "/" + std::string(token); }

std::string Registry::url_for(std::string_view token) const {
  if (config_.public_base_url.empty()) return {};
  std::string base = config_.public_base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base + path_for(token);
}

Result<Registration> Registry::insert(int64_t integration_id, const std::string& token, const std::string& url,
                                      std::string_view fathom_id, const SecretString& secret,
                                      const WebhookFlags& flags, const char* source) {
  FB_ASSIGN(std::string sealed, sealer_.seal(secret, secret_aad(token)));
  int64_t now = clock_.now_s();
  nlohmann::json tf = flags.triggered_for;
  int64_t id = 0;
  Status s = db_.transaction([&]() -> Status {
    Stmt& q = db_.prepare(
        "INSERT INTO webhook_registrations(integration_id, fathom_webhook_id, path_token, destination_url,"
        " secret_sealed, triggered_for, include_transcript, include_summary, include_action_items,"
        " include_crm_matches, source, created_at, updated_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)");
    q.bind(1, integration_id);
    if (fathom_id.empty()) q.bind(2, nullptr);
    else q.bind(2, fathom_id);
    q.bind(3, token).bind(4, url).bind_blob(5, sealed).bind(6, tf.dump());
    q.bind(7, flags.include_transcript ? 1 : 0).bind(8, flags.include_summary ? 1 : 0);
    q.bind(9, flags.include_action_items ? 1 : 0).bind(10, flags.include_crm_matches ? 1 : 0);
    q.bind(11, source).bind(12, now).bind(13, now);
    FB_TRY(q.run());
    id = db_.last_insert_rowid();
    return Status::Ok();
  });
  if (!s.ok()) return s.with_context("storing webhook registration");
  Registration r;
  r.id = id;
  r.integration_id = integration_id;
  r.fathom_webhook_id = std::string(fathom_id);
  r.path_token = token;
  r.destination_url = url;
  r.flags = flags;
  r.source = source;
  r.created_at_s = now;
  FB_LOG(kInfo, "webhooks") << "registered " << source << " webhook " << id << " for integration " << integration_id;
  return r;
}

Result<Registration> Registry::add_manual(int64_t integration_id, const SecretString& secret,
                                          std::string_view fathom_webhook_id) {
  if (integration_id <= 0) return Status::InvalidArgument("integration id must be positive");
  FB_TRY(SigningKey::from_secret(secret).status());  // refuse a secret that could never verify
  std::string token = new_token();
  WebhookFlags flags;  // chosen in Fathom's settings, unknown here
  return insert(integration_id, token, url_for(token), fathom_webhook_id, secret, flags, "manual");
}

Result<Registration> Registry::register_for(int64_t integration_id) {
  if (integration_id <= 0) return Status::InvalidArgument("integration id must be positive");
  if (config_.public_base_url.empty()) {
    return Status::FailedPrecondition(
        "webhooks.public_base_url (FATHOM_BRIDGE_PUBLIC_URL) is not set: Fathom has no URL to deliver to");
  }
  if (!client_) return Status::FailedPrecondition("webhook registry has no Fathom client");
  std::string token = new_token();
  std::string url = url_for(token);
  WebhookFlags flags = flags_from(config_);
  FB_ASSIGN(CreatedWebhook created, create_fathom_webhook(*client_, integration_id, url, flags));
  if (!SigningKey::from_secret(created.secret).ok()) {
    (void)delete_fathom_webhook(*client_, integration_id, created.id);
    return Status::Malformed("Fathom returned a webhook secret that is not whsec_ + base64");
  }
  auto r = insert(integration_id, token, url, created.id, created.secret, flags, "api");
  if (!r.ok()) {
    Status d = delete_fathom_webhook(*client_, integration_id, created.id);
    if (!d.ok()) {
      FB_LOG(kWarn, "webhooks") << "could not delete Fathom webhook " << created.id << " after a local failure: "
                                << d.message();
    }
  }
  return r;
}

Status Registry::set_secret(int64_t registration_id, const SecretString& secret) {
  FB_TRY(SigningKey::from_secret(secret).status());
  std::string token;
  Status s = db_.transaction([&]() -> Status {
    Stmt& q = db_.prepare("SELECT path_token, secret_sealed FROM webhook_registrations WHERE id=?");
    q.bind(1, registration_id);
    FB_ASSIGN(bool found, q.step());
    if (!found) {
      q.reset();
      return Status::NotFound("no webhook registration " + std::to_string(registration_id));
    }
    token = q.text(0);
    std::string old_sealed = q.blob(1);
    q.reset();
    FB_ASSIGN(SecretString old_secret, sealer_.open(old_sealed, secret_aad(token)));
    FB_ASSIGN(std::string prev, sealer_.seal(old_secret, prev_secret_aad(token)));
    FB_ASSIGN(std::string cur, sealer_.seal(secret, secret_aad(token)));
    int64_t now = clock_.now_s();
    Stmt& u = db_.prepare(
        "UPDATE webhook_registrations SET secret_sealed=?, prev_secret_sealed=?, prev_secret_expires_at=?,"
        " updated_at=? WHERE id=?");
    u.bind_blob(1, cur).bind_blob(2, prev).bind(3, now + config_.secret_grace_s).bind(4, now);
    return u.bind(5, registration_id).run();
  });
  FB_TRY(s);
  invalidate(token);
  FB_LOG(kInfo, "webhooks") << "rotated the secret of webhook registration " << registration_id
                            << "; the previous one is accepted for " << config_.secret_grace_s << " s";
  return Status::Ok();
}

Status Registry::remove(int64_t registration_id) {
  std::string token;
  Status s = db_.transaction([&]() -> Status {
    Stmt& q = db_.prepare("SELECT path_token FROM webhook_registrations WHERE id=?");
    q.bind(1, registration_id);
    FB_ASSIGN(bool found, q.step());
    if (found) token = q.text(0);
    q.reset();
    if (!found) return Status::NotFound("no webhook registration " + std::to_string(registration_id));
    return db_.prepare("DELETE FROM webhook_registrations WHERE id=?").bind(1, registration_id).run();
  });
  FB_TRY(s);
  invalidate(token);
  return Status::Ok();
}

Status Registry::unregister_one(const Registration& r) {
  if (!r.fathom_webhook_id.empty() && client_) {
    Status d = delete_fathom_webhook(*client_, r.integration_id, r.fathom_webhook_id);
    if (!d.ok() && !d.is(Code::kNotFound)) {
      FB_LOG(kWarn, "webhooks") << "could not delete Fathom webhook " << r.fathom_webhook_id << " of integration "
                                << r.integration_id << " (removed locally anyway): " << d.message();
    }
  }
  return remove(r.id);
}

Status Registry::unregister(int64_t registration_id) {
  FB_ASSIGN(Registration r, get(registration_id));
  return unregister_one(r);
}

Result<Registration> Registry::get(int64_t registration_id) {
  std::optional<Registration> out;
  Status s = db_.with([&]() -> Status {
    Stmt& q = db_.prepare(std::string("SELECT ") + kRegColumns + " FROM webhook_registrations WHERE id=?");
    q.bind(1, registration_id);
    return each_row(q, [&](const Stmt& row) { out = read_registration(row); });
  });
  if (!s.ok()) return s;
  if (!out) return Status::NotFound("no webhook registration " + std::to_string(registration_id));
  return std::move(*out);
}

Status Registry::unregister_all(int64_t integration_id) {
  FB_ASSIGN(std::vector<Registration> regs, list(integration_id));
  for (const Registration& r : regs) {
    Status s = unregister_one(r);
    if (!s.ok() && !s.is(Code::kNotFound)) return s;
  }
  if (!regs.empty()) {
    FB_LOG(kInfo, "webhooks") << "unregistered " << regs.size() << " webhook(s) of integration " << integration_id;
  }
  return Status::Ok();
}

Result<std::vector<Registration>> Registry::list(int64_t integration_id) {
  std::vector<Registration> out;
  Status s = db_.with([&]() -> Status {
    Stmt& q = db_.prepare(std::string("SELECT ") + kRegColumns +
                          " FROM webhook_registrations WHERE (?1=0 OR integration_id=?1) ORDER BY id");
    q.bind(1, integration_id);
    return each_row(q, [&](const Stmt& row) { out.push_back(read_registration(row)); });
  });
  if (!s.ok()) return s;
  return out;
}

Result<std::shared_ptr<const Endpoint>> Registry::load(std::string_view token) {
  std::string cur_sealed, prev_sealed;
  int64_t reg_id = 0, integration_id = 0, prev_expires = 0;
  bool found = false;
  Status s = db_.with([&]() -> Status {
    Stmt& q = db_.prepare(
        "SELECT id, integration_id, secret_sealed, prev_secret_sealed, prev_secret_expires_at"
        " FROM webhook_registrations WHERE path_token=?");
    q.bind(1, token);
    FB_ASSIGN(found, q.step());
    if (found) {
      reg_id = q.int64(0);
      integration_id = q.int64(1);
      cur_sealed = q.blob(2);
      prev_sealed = q.blob(3);
      prev_expires = q.opt_int64(4).value_or(0);
    }
    q.reset();
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (!found) return std::shared_ptr<const Endpoint>();
  FB_ASSIGN(SecretString cur, sealer_.open(cur_sealed, secret_aad(token)));
  FB_ASSIGN(SigningKey cur_key, SigningKey::from_secret(cur));
  auto ep = std::make_shared<Endpoint>(Endpoint{reg_id, integration_id, std::move(cur_key), std::nullopt, 0,
                                                clock_.mono_ms()});
  if (!prev_sealed.empty() && prev_expires > clock_.now_s()) {
    FB_ASSIGN(SecretString prev, sealer_.open(prev_sealed, prev_secret_aad(token)));
    FB_ASSIGN(SigningKey prev_key, SigningKey::from_secret(prev));
    ep->previous = std::move(prev_key);
    ep->previous_expires_at_s = prev_expires;
  }
  return std::shared_ptr<const Endpoint>(std::move(ep));
}

Result<std::shared_ptr<const Endpoint>> Registry::lookup(std::string_view token) {
  if (!valid_path_token(token)) return std::shared_ptr<const Endpoint>();
  {
    std::shared_lock lk(mu_);
    auto it = cache_.find(token);
    if (it != cache_.end() && clock_.mono_ms() - it->second->loaded_at_ms < options_.cache_ttl_ms) return it->second;
  }
  auto loaded = load(token);
  if (!loaded.ok()) {
    // Every delivery fails the same way while the store is down: each still gets its 503, the log
    // gets the first failure and then one line a minute (and at once when the reason changes).
    if (int64_t left_out = 0; load_failures_.admit(clock_.mono_ms(), &left_out, loaded.status().message())) {
      FB_LOG(kError, "webhooks") << "cannot load a webhook registration: " << loaded.status().to_string()
                                 << LogThrottle::left_out_note(left_out);
    }
    return loaded.status();
  }
  if (int64_t failed = load_failures_.end_run()) {
    FB_LOG(kInfo, "webhooks") << "webhook registrations can be read again after " << failed << " failed lookups";
  }
  std::unique_lock lk(mu_);
  if (*loaded) {
    cache_[std::string(token)] = *loaded;
  } else {
    cache_.erase(std::string(token));
  }
  return *loaded;
}

void Registry::invalidate(std::string_view token) {
  std::unique_lock lk(mu_);
  if (token.empty()) {
    cache_.clear();
  } else if (auto it = cache_.find(token); it != cache_.end()) {
    cache_.erase(it);
  }
}

}  // namespace fb::detail
