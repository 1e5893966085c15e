// sim_server.h: fathom-sim, an in-memory Fathom (fathom-api.md sections 1-7) on loopback HTTP.
//
// One Simulator owns an httplib::Server (32 worker threads), all state behind one mutex, and a
// Sender pool for outbound deliveries. Routes:
//   /external/v1/oauth2/authorize  GET (HTML page) and POST (decision -> 302)
//   /external/v1/oauth2/token      POST, form-urlencoded only
//   /external/v1/meetings, /recordings/{id}/transcript|summary, /teams, /team_members,
//   /webhooks (POST), /webhooks/{id} (DELETE)
//   /_sim/...                      admin routes for tests and the demo (see tests/sim/README.md)
//
// Thread safety: bind(), run() and stop() are for the owning thread (stop() may be called from
// any thread); handlers run concurrently on the server's pool and serialise on mu_.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/sim_data.h"
#include "sim/sim_knobs.h"
#include "sim/sim_rate_limiter.h"
#include "sim/sim_sender.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace fb::sim {

struct SimOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  uint64_t seed = 42;
  int64_t meetings = 25;
  int64_t anchor = 0;  // created_at of the newest generated meeting; 0 = start time - 1 h
  std::string client_id = "sim-client";
  std::string client_secret = "sim-secret";
  std::vector<std::string> redirect_uris;  // empty = {"http://127.0.0.1:8787/oauth/callback"}
  bool quiet = false;
  size_t sender_threads = 4;
  Knobs knobs;
};

class Simulator {
 public:
  explicit Simulator(SimOptions opts);
  ~Simulator();
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  // Binds opts.host:opts.port (0 = any free port). Returns the port, or -1.
  int bind();
  // Serves until stop(). Blocks.
  void run();
  void stop();

 private:
  // --- shared types ---
  struct Key {
    int64_t created_at;
    int64_t id;
  };
  struct NewestFirst {
    bool operator()(const Key& a, const Key& b) const {
      return a.created_at != b.created_at ? a.created_at > b.created_at : a.id > b.id;
    }
  };
  struct Caller {
    std::string email;
    std::string team;
    bool oauth = false;
  };
  struct AuthCode {
    std::string user, client_id, redirect_uri, challenge, challenge_method;
    int64_t expires_ms = 0;
    bool used = false;
    int64_t grant_id = 0;  // set once exchanged
  };
  struct Grant {
    std::string user, client_id;
    bool revoked = false;
  };
  struct AccessToken {
    int64_t grant_id = 0;
    int64_t expires_ms = 0;
    bool revoked = false;
  };
  struct RefreshToken {
    int64_t grant_id = 0;
    bool used = false;
  };
  struct Webhook {
    std::string id, owner, url, secret;
    int64_t created_at = 0;
    Includes inc;
    std::vector<std::string> triggered_for;
  };
  struct Fault {
    int status = 500;
    int64_t remaining = 1;
    std::string path_prefix;
    int64_t reset_s = 1;
  };
  using Params = std::multimap<std::string, std::string>;

  // --- setup (sim_server.cpp) ---
  void install_routes();
  void install_admin_routes();
  void install_oauth_routes();   // sim_oauth.cpp
  void install_api_routes();     // sim_api.cpp

  // --- helpers (sim_server.cpp) ---
  static int64_t now_ms();
  static int64_t mono_ms();
  void send_json(httplib::Response& res, int status, const nlohmann::json& body) const;
  void send_ojson(httplib::Response& res, int status, const ojson& body) const;
  // API error in the configured error_body shape. REQUIRES: mu_ held (reads knobs_).
  void send_api_error(httplib::Response& res, int status, const std::string& code, const std::string& message) const;
  void set_rate_headers(httplib::Response& res, const RateDecision& d, bool limited) const;
  // Latency, faults; returns false when the request was answered with an injected fault.
  bool pre_request(const httplib::Request& req, httplib::Response& res);
  const User* find_user(const std::string& email) const;
  const Meeting* find_meeting(int64_t id) const;
  void insert_meeting(Meeting m);
  bool visible(const Meeting& m, const Caller& c) const;
  nlohmann::json counters_json() const;
  void reset_counters();
  void record_delivery(const nlohmann::json& attempt);
  std::string new_token(const char* prefix);

  // --- OAuth (sim_oauth.cpp) ---
  void handle_authorize(const httplib::Request& req, httplib::Response& res, bool post);
  void handle_token(const httplib::Request& req, httplib::Response& res);
  void token_error(httplib::Response& res, int status, const std::string& error, const std::string& description);
  nlohmann::json issue_tokens(int64_t grant_id);
  void revoke_grant(int64_t grant_id);

  // --- REST (sim_api.cpp) ---
  using ApiHandler = void (Simulator::*)(const httplib::Request&, httplib::Response&, const Caller&);
  void api_route(const char* method, const std::string& pattern, const std::string& name, ApiHandler h);
  std::optional<Caller> authenticate(const httplib::Request& req, std::string* why);
  void list_meetings(const httplib::Request& req, httplib::Response& res, const Caller& c);
  void get_transcript(const httplib::Request& req, httplib::Response& res, const Caller& c);
  void get_summary(const httplib::Request& req, httplib::Response& res, const Caller& c);
  void recording_content(const httplib::Request& req, httplib::Response& res, const Caller& c, bool transcript);
  void list_teams(const httplib::Request& req, httplib::Response& res, const Caller& c);
  void list_team_members(const httplib::Request& req, httplib::Response& res, const Caller& c);
  void create_webhook(const httplib::Request& req, httplib::Response& res, const Caller& c);
  void delete_webhook(const httplib::Request& req, httplib::Response& res, const Caller& c);
  // Webhooks that fire for meeting m, and the delivery of each (REQUIRES: mu_ held).
  std::vector<Delivery> deliveries_for(const Meeting& m);

  SimOptions opts_;
  std::unique_ptr<httplib::Server> svr_;
  std::unique_ptr<Sender> sender_;

  mutable std::mutex mu_;
  Knobs knobs_;
  Generator gen_;
  std::mt19937_64 fault_rng_;
  std::vector<User> users_;
  std::map<Key, Meeting, NewestFirst> meetings_;
  std::unordered_map<int64_t, Key> by_id_;
  int64_t last_id_ = 0;
  std::map<std::string, AuthCode> codes_;
  std::map<int64_t, Grant> grants_;
  int64_t next_grant_id_ = 1;
  std::map<std::string, AccessToken> access_tokens_;
  std::map<std::string, RefreshToken> refresh_tokens_;
  std::map<std::string, Webhook> webhooks_;
  std::vector<Fault> faults_;
  RateLimiter api_limiter_, token_limiter_;

  // Counters (GET /_sim/counters).
  std::map<std::string, int64_t> token_requests_, token_errors_, api_calls_, api_statuses_, authorize_;
  int64_t api_calls_total_ = 0, rate_limited_ = 0, token_rate_limited_ = 0, faults_injected_ = 0;
  // API requests inside their latency delay now, and the most at once since the last reset: shows
  // whether a client's calls (of different accounts) overlap.
  int64_t api_in_latency_ = 0, api_concurrent_max_ = 0;
  int64_t webhook_refused_ = 0;
  int64_t token_late_answers_ = 0;  // token answers held back by token_late_ms
  std::vector<nlohmann::json> webhook_deliveries_, callback_deliveries_;
};

}  // namespace fb::sim
