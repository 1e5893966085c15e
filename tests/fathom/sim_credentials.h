// sim_credentials.h: small CredentialSource implementations for tests against fathom-sim.
//
//   ApiKeyCredentials   the sim users' API keys per integration id (X-Api-Key), with a switch to
//                       answer kReconnectRequired and a replacement handed out after a 401.
//   SimOAuthCredentials a real OAuth connection to the sim: authorize (approve), code exchange,
//                       and a real refresh_token grant (with rotation) after a 401.
// Header-only; used by tests/fathom, tests/sync and bench/sync.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

#include "fathom/credential_source.h"
#include "support/http.h"
#include "support/sim_process.h"

namespace fb::test {

class ApiKeyCredentials : public detail::CredentialSource {
 public:
  void set(int64_t integration_id, const std::string& api_key) {
    std::lock_guard lock(mu_);
    keys_[integration_id] = api_key;
  }
  // After a 401, hand out this key instead (simulates a rotated key).
  void set_replacement(int64_t integration_id, const std::string& api_key) {
    std::lock_guard lock(mu_);
    replacement_[integration_id] = api_key;
  }
  void set_reconnect_required(int64_t integration_id, bool on) {
    std::lock_guard lock(mu_);
    reconnect_[integration_id] = on;
  }

  Result<detail::Credential> credential(int64_t id) override {
    std::lock_guard lock(mu_);
    if (reconnect_[id]) return Status::ReconnectRequired("integration " + std::to_string(id) + " must reconnect");
    auto it = keys_.find(id);
    if (it == keys_.end()) return Status::NotFound("no key for integration " + std::to_string(id));
    return detail::Credential{detail::Credential::Kind::kApiKey, detail::SecretString(it->second), version_[id]};
  }
  Result<detail::Credential> refresh_after_unauthorized(int64_t id, const detail::Credential&) override {
    ++refreshes;
    {
      std::lock_guard lock(mu_);
      auto r = replacement_.find(id);
      if (r != replacement_.end()) {
        keys_[id] = r->second;
        replacement_.erase(r);
        ++version_[id];
      }
    }
    return credential(id);
  }
  std::atomic<int> refreshes{0};

 private:
  std::mutex mu_;
  std::map<int64_t, std::string> keys_, replacement_;
  std::map<int64_t, bool> reconnect_;
  std::map<int64_t, int64_t> version_;
};

// One user's OAuth grant at the sim. Thread-safe.
class SimOAuthCredentials : public detail::CredentialSource {
 public:
  static constexpr const char* kRedirect = "http://127.0.0.1:8787/oauth/callback";

  SimOAuthCredentials(const SimProcess& sim, const std::string& user) : sim_(sim) {
    HttpReply page = http_post_form(sim.authorize_url(), {{"client_id", "sim-client"},
                                                          {"redirect_uri", kRedirect},
                                                          {"response_type", "code"},
                                                          {"scope", "public_api"},
                                                          {"state", "test-state"},
                                                          {"user", user},
                                                          {"decision", "approve"}});
    std::string code = query_param(page.header("Location"), "code");
    if (page.status != 302 || code.empty()) {
      throw std::runtime_error("sim authorize failed: " + std::to_string(page.status) + " " + page.body);
    }
    token_request({{"grant_type", "authorization_code"},
                   {"code", code},
                   {"client_id", "sim-client"},
                   {"client_secret", "sim-secret"},
                   {"redirect_uri", kRedirect}});
  }

  Result<detail::Credential> credential(int64_t) override {
    std::lock_guard lock(mu_);
    return detail::Credential{detail::Credential::Kind::kBearer, detail::SecretString(access_), version_};
  }
  Result<detail::Credential> refresh_after_unauthorized(int64_t id, const detail::Credential& rejected) override {
    {
      std::lock_guard lock(mu_);
      if (rejected.token_version == version_) {
        try {
          token_request_locked({{"grant_type", "refresh_token"},
                                {"refresh_token", refresh_},
                                {"client_id", "sim-client"},
                                {"client_secret", "sim-secret"}});
        } catch (const std::exception& e) {
          return Status::ReconnectRequired(e.what());
        }
        ++refreshes;
      }
    }
    return credential(id);
  }
  std::atomic<int> refreshes{0};

 private:
  void token_request(const std::vector<std::pair<std::string, std::string>>& form) {
    std::lock_guard lock(mu_);
    token_request_locked(form);
  }
  void token_request_locked(const std::vector<std::pair<std::string, std::string>>& form) {
    HttpReply r = http_post_form(sim_.token_url(), form);
    if (r.status != 200) throw std::runtime_error("sim token endpoint: " + std::to_string(r.status) + " " + r.body);
    auto j = r.json();
    access_ = j.at("access_token").get<std::string>();
    refresh_ = j.at("refresh_token").get<std::string>();
    ++version_;
  }

  const SimProcess& sim_;
  std::mutex mu_;
  std::string access_, refresh_;
  int64_t version_ = 0;
};

}  // namespace fb::test
