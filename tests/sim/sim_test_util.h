// sim_test_util.h: small helpers shared by the fathom-sim test files.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/http.h"
#include "support/sim_process.h"

namespace fb::simtest {

using fb::test::HeaderMap;
using fb::test::HttpReply;
using fb::test::SimProcess;
using Fields = std::vector<std::pair<std::string, std::string>>;

inline const std::string kRedirect = "http://127.0.0.1:8787/oauth/callback";

inline HeaderMap key_auth(const SimProcess& sim, const std::string& email) {
  return {{"X-Api-Key", sim.api_key(email)}};
}
inline HeaderMap bearer(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }

// Polls pred every 20 ms until it holds or timeout_s passes; returns its last value.
inline bool wait_until(const std::function<bool()>& pred, double timeout_s = 10) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (true) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// The authorize URL a client would open.
inline std::string authorize_request(const SimProcess& sim, const Fields& extra = {}, const std::string& state = "st-1") {
  Fields f = {{"client_id", "sim-client"}, {"redirect_uri", kRedirect}, {"response_type", "code"},
              {"scope", "public_api"},     {"state", state}};
  f.insert(f.end(), extra.begin(), extra.end());
  return sim.authorize_url() + "?" + fb::test::query_string(f);
}

// Approves as `user` and returns the code from the redirect.
inline std::string get_code(const SimProcess& sim, const std::string& user = "alice@example.com", const Fields& extra = {}) {
  std::string loc = sim.authorize_as(authorize_request(sim, extra), user);
  return fb::test::query_param(loc, "code");
}

inline HttpReply token_call(const SimProcess& sim, Fields f) {
  return fb::test::http_post_form(sim.token_url(), f);
}

inline HttpReply exchange_code(const SimProcess& sim, const std::string& code, const Fields& extra = {}) {
  Fields f = {{"grant_type", "authorization_code"}, {"code", code}, {"client_id", "sim-client"},
              {"client_secret", "sim-secret"}, {"redirect_uri", kRedirect}};
  f.insert(f.end(), extra.begin(), extra.end());
  return token_call(sim, f);
}

inline HttpReply refresh(const SimProcess& sim, const std::string& refresh_token) {
  return token_call(sim, {{"grant_type", "refresh_token"}, {"refresh_token", refresh_token}, {"client_id", "sim-client"},
                          {"client_secret", "sim-secret"}});
}

// Full login: code + exchange; returns the token response JSON.
inline nlohmann::json login(const SimProcess& sim, const std::string& user = "alice@example.com") {
  HttpReply r = exchange_code(sim, get_code(sim, user));
  if (r.status != 200) throw std::runtime_error("login failed: " + r.body);
  return r.json();
}

inline HttpReply api_get(const SimProcess& sim, const std::string& path_and_query, const HeaderMap& auth) {
  return fb::test::http_get(sim.api_base() + path_and_query, auth);
}

}  // namespace fb::simtest
