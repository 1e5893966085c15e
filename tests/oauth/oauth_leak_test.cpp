// After a full scenario with debug logging, neither the SQLite files (read raw: main file, -wal
// and -shm) nor the log lines nor any returned message contain a token, code, state, PKCE
// verifier, API key or the client secret. The secret values are taken from the wire: a tap on the
// transport records what fathom-sim issued and what was sent to it.
#include <boost/test/unit_test.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "core/log.h"
#include "oauth_fixture.h"
#include "support/http.h"
#include "support/sim_process.h"
#include "support/temp_dir.h"

using namespace fb;
using namespace fb::detail;
using fb::test::OAuthStack;
using fb::test::query_of;
using fb::test::SimProcess;
using nlohmann::json;

namespace {

// Passes everything to a real HttplibTransport and remembers every secret that crosses it.
class TapTransport final : public HttpTransport {
 public:
  Result<HttpResponse> send(const HttpRequest& req) override {
    if (req.url.find("/oauth2/token") != std::string::npos) {
      if (auto fields = form_decode(req.body)) {
        for (const auto& [k, v] : *fields) {
          if (k == "code" || k == "refresh_token" || k == "code_verifier" || k == "client_secret") add(v);
        }
      }
    }
    for (const auto& [k, v] : req.headers) {
      if (k == "X-Api-Key") add(v);
    }
    auto r = inner_.send(req);
    if (r.ok() && req.url.find("/oauth2/token") != std::string::npos) {
      json j = json::parse(r->body, nullptr, false);
      for (const char* k : {"access_token", "refresh_token"}) {
        if (j.is_object() && j.contains(k) && j[k].is_string()) add(j[k].get<std::string>());
      }
    }
    return r;
  }
  void add(const std::string& v) {
    std::lock_guard lock(mu_);
    if (!v.empty()) secrets_.insert(v);
  }
  std::set<std::string> secrets() {
    std::lock_guard lock(mu_);
    return secrets_;
  }

 private:
  HttplibTransport inner_;
  std::mutex mu_;
  std::set<std::string> secrets_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct LogCapture {
  LogCapture() {
    set_log_level(LogLevel::kDebug);
    set_log_sink([this](LogLevel level, std::string_view component, std::string_view message) {
      std::lock_guard lock(mu);
      lines.push_back(std::string(log_level_name(level)) + " " + std::string(component) + ": " + std::string(message));
    });
  }
  ~LogCapture() {
    set_log_sink({});
    set_log_level(LogLevel::kInfo);
  }
  std::mutex mu;
  std::vector<std::string> lines;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(no_secret_at_rest_or_in_logs)

BOOST_AUTO_TEST_CASE(full_scenario_leaves_no_plaintext_secret) {
  const std::string client_secret = "cs-" + system_random().token(24);
  fb::test::TempDir dir;
  SimProcess sim({"--client-secret", client_secret});
  TapTransport tap;
  tap.add(client_secret);
  LogCapture logs;
  std::vector<std::string> messages;  // every message a caller got back
  std::set<std::string> states;

  Config cfg = fb::test::oauth_test_config(sim.base_url(), client_secret);
  cfg.fathom.use_pkce = true;
  const std::string db_path = dir.file("leak.db");
  auto s = std::make_unique<OAuthStack>(db_path, cfg, tap);
  auto begin = [&](const Principal& p, CallbackMode mode) {
    auto start = s->flow->start(p, mode);
    BOOST_REQUIRE(start.ok());
    states.insert(fb::test::query_param(start->url, "state"));
    return start->url;
  };
  auto finish = [&](const std::string& query) {
    for (const auto& [k, v] : fb::test::parse_query(query)) {
      if (k == "code") tap.add(v);
    }
    CallbackResult r = s->flow->complete(query);
    messages.push_back(r.reason);
    messages.push_back(s->flow->popup_page_html(r));
    if (auto loc = s->flow->redirect_location(r); loc.ok()) messages.push_back(*loc);
    return r;
  };
  const Principal alice{"acme", "u-alice"}, bob{"acme", "u-bob"}, carol{"acme", "u-carol"};

  // Connect: popup, redirect, a denial, a replay, a code Fathom refuses, an API key.
  std::string q_alice = query_of(sim.authorize_as(begin(alice, CallbackMode::kPopup), "alice@example.com"));
  CallbackResult ra = finish(q_alice);
  BOOST_REQUIRE(ra.ok);
  BOOST_TEST(finish(q_alice).error == "state_used");
  CallbackResult rb = finish(query_of(sim.authorize_as(begin(bob, CallbackMode::kRedirect), "bob@example.com")));
  BOOST_REQUIRE(rb.ok);
  BOOST_TEST(finish(query_of(sim.authorize_as(begin(carol, CallbackMode::kPopup), "carol@example.com", "deny"))).error ==
             "access_denied");
  std::string bad_code = "fa_code_" + system_random().token(16);
  tap.add(bad_code);
  std::string fresh_state = fb::test::query_param(begin({"acme", "u-erin"}, CallbackMode::kPopup), "state");
  CallbackResult refused = finish("code=" + bad_code + "&state=" + fb::test::url_encode(fresh_state));
  BOOST_TEST(refused.error == "invalid_grant");
  std::string forged_state = "p" + system_random().token(32);
  states.insert(forged_state);
  BOOST_TEST(finish("code=fa_code_" + system_random().token(16) + "&state=" + forged_state).error == "state_unknown");
  auto key = s->flow->connect_api_key(carol, SecretString(sim.api_key("carol@example.com")));
  BOOST_REQUIRE(key.ok());
  tap.add(sim.api_key("carol@example.com"));
  auto wrong_key = s->flow->connect_api_key({"acme", "u-dave"}, SecretString("fk_wrong_" + system_random().token(12)));
  messages.push_back(wrong_key.status().message());

  // Stay connected: refreshes, a 401 recovery, transient failures, a revoked grant.
  for (int i = 0; i < 3; ++i) BOOST_REQUIRE(s->tokens->force_refresh(ra.integration_id).ok());
  auto c = s->tokens->credential(rb.integration_id);
  sim.admin("POST", "/_sim/tokens/expire", {{"user", "bob@example.com"}});
  BOOST_REQUIRE(s->tokens->refresh_after_unauthorized(rb.integration_id, *c).ok());
  sim.admin("POST", "/_sim/faults", {{"status", 503}, {"count", 3}, {"path_prefix", "/external/v1/oauth2/token"}});
  auto failed = s->tokens->force_refresh(ra.integration_id);
  BOOST_TEST(!failed.ok());
  messages.push_back(failed.status().message());
  sim.admin("POST", "/_sim/grants/revoke", {{"user", "bob@example.com"}});
  auto dead = s->tokens->force_refresh(rb.integration_id);
  BOOST_TEST(dead.code() == Code::kReconnectRequired);
  messages.push_back(dead.status().message());
  BOOST_REQUIRE(s->store->reseal_all().ok());
  auto health = s->health->report("", "");
  messages.push_back(token_health_to_json(*health).dump());
  messages.push_back(token_health_table(*health));
  auto audit = s->store->audit_entries(0, 1000);
  BOOST_REQUIRE(audit.ok());
  for (const auto& a : audit.value()) messages.push_back(a.detail);

  // The database holds sealed credentials for alice (oauth) and carol (API key).
  BOOST_TEST(s->count_rows("integrations") == 3);
  BOOST_TEST(s->store->load(ra.integration_id)->has_refresh_token);

  auto secrets = tap.secrets();
  for (const auto& st : states) secrets.insert(st);
  BOOST_TEST_MESSAGE("checking " << secrets.size() << " secret values");
  BOOST_TEST(secrets.size() >= 20u);  // tokens of 6 grants/refreshes, codes, verifiers, states, keys

  auto scan = [&](const std::string& where, const std::string& bytes) {
    for (const auto& secret : secrets) {
      BOOST_TEST(bytes.find(secret) == std::string::npos, where << " contains a secret of " << secret.size() << " bytes");
    }
  };
  // Raw files while the connection is open (the WAL holds the recent pages)...
  for (const char* suffix : {"", "-wal", "-shm"}) {
    if (std::filesystem::exists(db_path + suffix)) scan(db_path + suffix, read_file(db_path + suffix));
  }
  BOOST_TEST(std::filesystem::file_size(db_path + "-wal") > 0u);
  // ...and after closing (checkpointed into the main file).
  s.reset();
  scan(db_path, read_file(db_path));
  std::vector<std::string> lines;
  {
    std::lock_guard lock(logs.mu);
    lines = logs.lines;
  }
  int debug_oauth = 0;
  const char* print = std::getenv("FB_PRINT_LOGS");  // to read what the scenario logged
  for (const auto& l : lines) {
    if (print && *print == '1') std::fprintf(stderr, "%s\n", l.c_str());
    scan("log line", l);
    debug_oauth += l.rfind("DEBUG oauth:", 0) == 0;
  }
  BOOST_TEST(debug_oauth >= 10);  // the scenario was logged at debug level
  for (const auto& m : messages) scan("message", m);
}

BOOST_AUTO_TEST_SUITE_END()
