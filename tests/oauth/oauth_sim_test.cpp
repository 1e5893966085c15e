// Issue 3 against fathom-sim over real loopback HTTP, with real SQLite files: the connect flows,
// state attacks, single-flight refresh, revocation, 401 recovery, no secret at rest or in logs,
// tenant isolation, token health, keep-alive, backoff, cool-down and key rotation.
#define BOOST_TEST_MODULE fb_oauth_sim
#include <boost/test/unit_test.hpp>

#include <barrier>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

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

const Principal kAlice{"acme", "u-alice", "sales"};
const Principal kBob{"acme", "u-bob", "sales"};
const Principal kGlobex{"globex", "u-alice", ""};

// Plays the user at Fathom's consent page and returns the callback's query string.
std::string consent(const SimProcess& sim, const std::string& authorize_url, const std::string& email,
                    const std::string& decision = "approve") {
  std::string location = sim.authorize_as(authorize_url, email, decision);
  BOOST_REQUIRE_MESSAGE(location.rfind(fb::test::kRedirectUri, 0) == 0, "redirected to " + location);
  return query_of(location);
}

// start + consent + complete; returns the integration id.
int64_t connect(OAuthStack& s, const SimProcess& sim, const Principal& p, const std::string& email,
                CallbackMode mode = CallbackMode::kPopup) {
  auto start = s.flow->start(p, mode);
  BOOST_REQUIRE_MESSAGE(start.ok(), start.status().to_string());
  CallbackResult r = s.flow->complete(consent(sim, start->url, email));
  BOOST_REQUIRE_MESSAGE(r.ok, r.error + ": " + r.reason);
  return r.integration_id;
}

int64_t counter(const json& c, const char* group, const char* key) {
  if (!c.contains(group) || !c[group].is_object()) return 0;
  return c[group].value(key, int64_t{0});
}
int64_t refresh_requests(const SimProcess& sim) { return counter(sim.counters(), "token_requests", "refresh_token"); }
int64_t code_requests(const SimProcess& sim) { return counter(sim.counters(), "token_requests", "authorization_code"); }
int64_t invalid_grants(const SimProcess& sim) { return counter(sim.counters(), "token_errors", "invalid_grant"); }

// GET /teams with a credential, as the API client would; returns the HTTP status.
int api_status(const SimProcess& sim, const Credential& c) {
  fb::test::HeaderMap h;
  if (c.kind == Credential::Kind::kApiKey) {
    h.emplace("X-Api-Key", c.value.reveal());
  } else {
    h.emplace("Authorization", "Bearer " + c.value.reveal());
  }
  return fb::test::http_get(sim.api_base() + "/teams", h).status;
}

struct Env {
  Env(std::vector<std::string> sim_args = {}) : sim(std::move(sim_args)) {}
  fb::test::TempDir dir;
  SimProcess sim;
  HttplibTransport transport;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(connect_flow)

BOOST_AUTO_TEST_CASE(popup_flow_connects_and_the_token_works) {
  Env e;
  OAuthStack s(e.dir.store("b.db"), fb::test::oauth_test_config(e.sim.base_url()), e.transport);
  auto start = s.flow->start(kAlice, CallbackMode::kPopup);
  BOOST_REQUIRE(start.ok());
  CallbackResult r = s.flow->complete(consent(e.sim, start->url, "alice@example.com"));
  BOOST_REQUIRE_MESSAGE(r.ok, r.reason);
  BOOST_TEST((r.mode == CallbackMode::kPopup));
  BOOST_TEST(!r.reconnected);
  BOOST_TEST(r.tenant_id == "acme");
  std::string page = s.flow->popup_page_html(r);
  BOOST_TEST(page.find("\"status\":\"connected\"") != std::string::npos);
  BOOST_TEST(page.find("\"https://crm.example.test\"") != std::string::npos);
  BOOST_TEST(code_requests(e.sim) == 1);
  BOOST_TEST(s.count_events("connected") == 1);

  auto rec = s.store->get(kAlice, r.integration_id);
  BOOST_REQUIRE(rec.ok());
  BOOST_TEST(rec->kind == "oauth");
  BOOST_TEST(rec->status == "active");
  BOOST_TEST(rec->team_id == "sales");
  BOOST_TEST(rec->has_refresh_token);
  BOOST_TEST(rec->token_expires_at > s.clock_.now_s() + 86000);
  auto cred = s.tokens->credential(kAlice, r.integration_id);
  BOOST_REQUIRE(cred.ok());
  BOOST_TEST(api_status(e.sim, *cred) == 200);
  BOOST_TEST(refresh_requests(e.sim) == 0);  // a fresh token is used as is
  auto audit = s.store->audit_log(kAlice, r.integration_id);
  BOOST_REQUIRE(audit.ok());
  BOOST_TEST(audit->front().event == "connected");
}

BOOST_AUTO_TEST_CASE(redirect_flow_and_reconnect_keep_the_integration) {
  Env e;
  OAuthStack s(e.dir.store("b.db"), fb::test::oauth_test_config(e.sim.base_url()), e.transport);
  auto start = s.flow->start(kAlice, CallbackMode::kRedirect);
  BOOST_REQUIRE(start.ok());
  CallbackResult r = s.flow->complete(consent(e.sim, start->url, "alice@example.com"));
  BOOST_REQUIRE(r.ok);
  BOOST_TEST((r.mode == CallbackMode::kRedirect));
  BOOST_TEST(*s.flow->redirect_location(r) ==
             "https://crm.example.test/settings/integrations/fathom?fathom=connected");
  BOOST_REQUIRE(s.store->record_sync(r.integration_id, 1'700'000'123).ok());
  auto before = s.store->load(r.integration_id);

  // Reconnect: new tokens on the same row; the sync history stays.
  int64_t again = connect(s, e.sim, kAlice, "alice@example.com", CallbackMode::kRedirect);
  BOOST_TEST(again == r.integration_id);
  auto after = s.store->load(again);
  BOOST_TEST(after->token_version == before->token_version + 1);
  BOOST_TEST(after->last_sync_at == 1'700'000'123);
  BOOST_TEST(after->sealed.access_token != before->sealed.access_token);
  BOOST_TEST(s.count_rows("integrations") == 1);
  auto audit = s.store->audit_log(kAlice, again);
  BOOST_TEST(audit->front().event == "reconnected");
  auto cred = s.tokens->credential(again);
  BOOST_TEST(api_status(e.sim, *cred) == 200);
}

BOOST_AUTO_TEST_CASE(deny_stores_nothing_and_says_so) {
  Env e;
  OAuthStack s(e.dir.store("b.db"), fb::test::oauth_test_config(e.sim.base_url()), e.transport);
  for (CallbackMode mode : {CallbackMode::kPopup, CallbackMode::kRedirect}) {
    auto start = s.flow->start(kAlice, mode);
    BOOST_REQUIRE(start.ok());
    std::string q = consent(e.sim, start->url, "alice@example.com", "deny");
    BOOST_TEST(q.find("error=access_denied") != std::string::npos);
    CallbackResult r = s.flow->complete(q);
    BOOST_TEST(!r.ok);
    BOOST_TEST(r.error == "access_denied");
    BOOST_TEST((r.code == Code::kCancelled));
    BOOST_TEST((r.mode == mode));
    if (mode == CallbackMode::kPopup) {
      std::string page = s.flow->popup_page_html(r);
      BOOST_TEST(page.find("\"error\":\"access_denied\"") != std::string::npos);
      BOOST_TEST(page.find("\"status\":\"error\"") != std::string::npos);
      BOOST_TEST(page.find("Access was denied") != std::string::npos);
    } else {
      BOOST_TEST(*s.flow->redirect_location(r) ==
                 "https://crm.example.test/settings/integrations/fathom?fathom=error&reason=access_denied");
    }
  }
  BOOST_TEST(s.count_rows("integrations") == 0);
  BOOST_TEST(code_requests(e.sim) == 0);
  BOOST_TEST(s.count_events("connected") == 0);
  auto audit = s.store->audit_entries(0);
  BOOST_TEST(audit->front().event == "connect_denied");
}

BOOST_AUTO_TEST_CASE(bad_states_are_refused_and_nothing_is_stored) {
  Env e;
  FakeClock clock(system_clock().now_ms());
  OAuthStack s(e.dir.store("b.db"), fb::test::oauth_test_config(e.sim.base_url()), e.transport, clock);
  auto fresh_query = [&](const Principal& p) {
    auto start = s.flow->start(p, CallbackMode::kPopup);
    BOOST_REQUIRE(start.ok());
    return consent(e.sim, start->url, "alice@example.com");
  };
  auto replace_state = [](std::string q, const std::string& state) {
    auto params = fb::test::parse_query(q);
    for (auto& [k, v] : params) {
      if (k == "state") v = state;
    }
    return fb::test::query_string(params);
  };

  // Forged: a state we never issued.
  CallbackResult forged = s.flow->complete(replace_state(fresh_query(kAlice), "p" + system_random().token(32)));
  BOOST_TEST(forged.error == "state_unknown");
  // Missing.
  BOOST_TEST(s.flow->complete("code=abc").error == "state_missing");
  // An error answer without its state still tells the user what Fathom said.
  CallbackResult denied = s.flow->complete("error=access_denied&error_description=The+user+said+no");
  BOOST_TEST(denied.error == "state_missing");
  BOOST_TEST(denied.reason.rfind("Access was denied at Fathom, and its response has no state", 0) == 0, denied.reason);
  CallbackResult odd = s.flow->complete("error=server_error");
  BOOST_TEST(odd.reason.find("Fathom answered 'server_error'") != std::string::npos, odd.reason);
  // Expired: 10 minutes and a second later.
  std::string late = fresh_query(kAlice);
  clock.advance_ms(601 * 1000);
  CallbackResult expired = s.flow->complete(late);
  BOOST_TEST(expired.error == "state_expired");
  BOOST_TEST((expired.code == Code::kFailedPrecondition));
  // Used by another user (the callback request carries another CRM session): refused and burnt.
  std::string stolen = fresh_query(kAlice);
  CallbackResult foreign = s.flow->complete(stolen, &kGlobex);
  BOOST_TEST(foreign.error == "state_foreign");
  BOOST_TEST((foreign.code == Code::kPermissionDenied));
  BOOST_TEST(s.flow->complete(stolen, &kBob).error == "state_used");
  BOOST_TEST(s.flow->complete(stolen).error == "state_used");
  for (const auto* r : {&forged, &expired, &foreign}) {
    BOOST_TEST(!r->ok);
    BOOST_TEST(!r->reason.empty());
  }
  BOOST_TEST(s.count_rows("integrations") == 0);
  BOOST_TEST(code_requests(e.sim) == 0);  // no code was ever exchanged

  // Replayed: the first use connects, the replay is refused and changes nothing.
  std::string q = fresh_query(kAlice);
  CallbackResult first = s.flow->complete(q, &kAlice);
  BOOST_REQUIRE_MESSAGE(first.ok, first.reason);
  auto row = s.store->load(first.integration_id);
  CallbackResult replay = s.flow->complete(q);
  BOOST_TEST(replay.error == "state_used");
  BOOST_TEST(code_requests(e.sim) == 1);
  BOOST_TEST(s.count_rows("integrations") == 1);
  BOOST_TEST(s.store->load(first.integration_id)->token_version == row->token_version);
  // A forged error page cannot pose as the user's answer either.
  BOOST_TEST(s.flow->complete("error=access_denied&state=pforged").error == "state_unknown");
}

BOOST_AUTO_TEST_CASE(two_callbacks_racing_on_one_state_connect_once) {
  Env e;
  OAuthStack a(e.dir.store("b.db"), fb::test::oauth_test_config(e.sim.base_url()), e.transport);
  OAuthStack b(e.dir.store("b.db"), fb::test::oauth_test_config(e.sim.base_url()), e.transport);
  auto start = a.flow->start(kAlice, CallbackMode::kPopup);
  std::string q = consent(e.sim, start->url, "alice@example.com");
  CallbackResult ra, rb;
  std::barrier go(2);
  std::thread ta([&] { go.arrive_and_wait(); ra = a.flow->complete(q); });
  std::thread tb([&] { go.arrive_and_wait(); rb = b.flow->complete(q); });
  ta.join();
  tb.join();
  BOOST_TEST(ra.ok + rb.ok == 1);
  BOOST_TEST((ra.ok ? rb.error : ra.error) == "state_used");
  BOOST_TEST(code_requests(e.sim) == 1);
}

BOOST_AUTO_TEST_CASE(api_key_connection_is_checked_against_fathom) {
  Env e;
  OAuthStack s(e.dir.store("b.db"), fb::test::oauth_test_config(e.sim.base_url()), e.transport);
  BOOST_TEST(s.flow->connect_api_key(kAlice, SecretString("fk_not_a_real_key")).code() == Code::kUnauthenticated);
  BOOST_TEST(s.count_rows("integrations") == 0);
  auto id = s.flow->connect_api_key(kAlice, SecretString(e.sim.api_key("alice@example.com")));
  BOOST_REQUIRE_MESSAGE(id.ok(), id.status().to_string());
  auto cred = s.tokens->credential(*id);
  BOOST_TEST((cred->kind == Credential::Kind::kApiKey));
  BOOST_TEST(api_status(e.sim, *cred) == 200);
  BOOST_TEST(e.sim.counters().value("token_requests_total", -1) == 0);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(stay_connected)

BOOST_AUTO_TEST_CASE(fifty_concurrent_callers_cause_one_token_request) {
  Env e;
  FakeClock clock(system_clock().now_ms());
  OAuthStack s(e.dir.store("b.db"), fb::test::oauth_test_config(e.sim.base_url()), e.transport, clock);
  int64_t id = connect(s, e.sim, kAlice, "alice@example.com");
  clock.advance_ms(86400 * 1000);  // the stored token has expired
  e.sim.config({{"latency_ms", 100}});  // keep the refresh in flight while the callers pile up
  e.sim.admin("POST", "/_sim/counters/reset");
  constexpr int kCallers = 50;
  std::barrier go(kCallers);
  std::vector<std::string> tokens(kCallers);
  std::vector<int64_t> versions(kCallers);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&, i] {
      go.arrive_and_wait();
      auto c = s.tokens->credential(id);
      tokens[i] = c.ok() ? c->value.reveal() : "error: " + c.status().to_string();
      versions[i] = c.ok() ? c->token_version : -1;
    });
  }
  for (auto& t : threads) t.join();
  e.sim.config({{"latency_ms", 0}});
  BOOST_TEST(refresh_requests(e.sim) == 1);
  BOOST_TEST(invalid_grants(e.sim) == 0);
  for (int i = 0; i < kCallers; ++i) {
    BOOST_TEST(tokens[i] == tokens[0]);
    BOOST_TEST(versions[i] == 2);
  }
  Credential c;
  c.value = SecretString(tokens[0]);
  BOOST_TEST(api_status(e.sim, c) == 200);
  BOOST_TEST(s.tokens->stats().joined_flights > 0);
}

BOOST_AUTO_TEST_CASE(revoked_grant_becomes_reconnect_required_with_one_event) {
  Env e;
  FakeClock clock(system_clock().now_ms());
  Config cfg = fb::test::oauth_test_config(e.sim.base_url());
  OAuthStack s(e.dir.store("b.db"), cfg, e.transport, clock);
  OAuthStack other(e.dir.store("b.db"), cfg, e.transport, clock);  // a second instance on the same file
  int64_t id = connect(s, e.sim, kAlice, "alice@example.com");
  int64_t bob = connect(s, e.sim, kBob, "bob@example.com");
  e.sim.admin("POST", "/_sim/grants/revoke", {{"user", "alice@example.com"}});
  clock.advance_ms(86400 * 1000);
  e.sim.admin("POST", "/_sim/counters/reset");

  std::vector<std::thread> threads;
  std::atomic<int> reconnect{0};
  for (int i = 0; i < 10; ++i) {
    threads.emplace_back([&, i] {
      auto c = (i % 2 ? other : s).tokens->credential(id);
      reconnect += c.code() == Code::kReconnectRequired;
    });
  }
  for (auto& t : threads) t.join();
  BOOST_TEST(reconnect == 10);
  BOOST_TEST(s.count_events("reconnect_required") + other.count_events("reconnect_required") == 1);
  BOOST_TEST(refresh_requests(e.sim) <= 2);  // at most one per instance; the first answer settles it
  const int64_t spent = refresh_requests(e.sim);
  for (int i = 0; i < 5; ++i) BOOST_TEST(s.tokens->credential(id).code() == Code::kReconnectRequired);
  BOOST_TEST(refresh_requests(e.sim) == spent);  // stopped using it
  BOOST_TEST(s.count_events("reconnect_required") + other.count_events("reconnect_required") == 1);

  auto row = s.store->load(id);
  BOOST_TEST(row->status == "reconnect_required");
  BOOST_TEST(row->last_refresh_error.find("invalid_grant") != std::string::npos);
  auto audit = s.store->audit_log(kAlice, id);
  BOOST_TEST(audit->front().event == "reconnect_required");
  BOOST_TEST(audit->front().detail.find("invalid_grant") != std::string::npos);
  auto health = s.health->report_one(kAlice, id);
  BOOST_TEST(health->status == "reconnect_required");
  // Not offered to the sync engine any more; bob is unaffected.
  auto active = s.store->list_active();
  BOOST_TEST(active.size() == 1u);
  BOOST_TEST(active[0].id == bob);
  BOOST_TEST(s.tokens->credential(bob).ok());

  // The bulk command deactivates it and names who to tell.
  auto gone = s.health->deactivate_expired();
  BOOST_REQUIRE(gone.ok());
  BOOST_REQUIRE(gone->size() == 1u);
  BOOST_TEST((*gone)[0].integration_id == id);
  BOOST_TEST((*gone)[0].user_id == "u-alice");
  BOOST_TEST(s.health->deactivate_expired()->empty());

  // Reconnecting recovers the same integration.
  BOOST_TEST(connect(s, e.sim, kAlice, "alice@example.com") == id);
  BOOST_TEST(s.count_events("connection_recovered") == 1);
  BOOST_TEST(s.tokens->credential(id).ok());
}

BOOST_AUTO_TEST_CASE(unauthorized_mid_call_recovers_through_one_refresh) {
  Env e;
  OAuthStack s(e.dir.store("b.db"), fb::test::oauth_test_config(e.sim.base_url()), e.transport);
  int64_t id = connect(s, e.sim, kAlice, "alice@example.com");
  auto c1 = s.tokens->credential(id);
  BOOST_REQUIRE(c1.ok());
  BOOST_TEST(api_status(e.sim, *c1) == 200);
  e.sim.admin("POST", "/_sim/tokens/expire", {{"user", "alice@example.com"}});
  BOOST_TEST(api_status(e.sim, *c1) == 401);
  // Several callers got the same 401: one refresh between them.
  std::vector<std::thread> threads;
  std::vector<int> statuses(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      auto c2 = s.tokens->refresh_after_unauthorized(id, *c1);
      statuses[i] = c2.ok() ? api_status(e.sim, *c2) : -1;
    });
  }
  for (auto& t : threads) t.join();
  for (int st : statuses) BOOST_TEST(st == 200);
  BOOST_TEST(refresh_requests(e.sim) == 1);
  // A late caller with the old rejected token gets the new one without another refresh.
  auto late = s.tokens->refresh_after_unauthorized(id, *c1);
  BOOST_TEST(late->token_version == c1->token_version + 1);
  BOOST_TEST(refresh_requests(e.sim) == 1);
  BOOST_TEST(invalid_grants(e.sim) == 0);
}

BOOST_AUTO_TEST_CASE(keepalive_sweep_refreshes_idle_connections) {
  Env e;
  FakeClock clock(system_clock().now_ms());
  Config cfg = fb::test::oauth_test_config(e.sim.base_url());
  cfg.tokens.keepalive_window_s = 3600;
  OAuthStack s(e.dir.store("b.db"), cfg, e.transport, clock);
  int64_t a = connect(s, e.sim, kAlice, "alice@example.com");
  int64_t b = connect(s, e.sim, kBob, "bob@example.com");
  BOOST_REQUIRE(s.flow->connect_api_key({"acme", "u-carol"}, SecretString(e.sim.api_key("carol@example.com"))).ok());
  BOOST_TEST(s.tokens->sweep_keepalive().due == 0);  // everything is fresh
  clock.advance_ms(1800 * 1000);
  BOOST_REQUIRE(s.tokens->force_refresh(b).ok());  // bob was used recently
  clock.advance_ms(1801 * 1000);                   // alice idle for 3601 s, bob for 1801 s
  KeepaliveReport r = s.tokens->sweep_keepalive();
  BOOST_TEST(r.due == 1);
  BOOST_TEST(r.refreshed == 1);
  BOOST_TEST(r.failed == 0);
  BOOST_TEST(refresh_requests(e.sim) == 2);  // bob's forced one and alice's keep-alive
  BOOST_TEST(s.store->load(a)->last_refresh_at == clock.now_s());
  BOOST_TEST(s.store->load(a)->token_version == 2);
  BOOST_TEST(s.tokens->sweep_keepalive().due == 0);
  auto cred = s.tokens->credential(a);
  BOOST_TEST(api_status(e.sim, *cred) == 200);
}

BOOST_AUTO_TEST_CASE(token_endpoint_503_is_retried_with_bounded_attempts_then_cools_down) {
  Env e;
  FakeClock clock(system_clock().now_ms());
  Config cfg = fb::test::oauth_test_config(e.sim.base_url());
  cfg.tokens.refresh_max_attempts = 3;
  cfg.tokens.failure_cooldown_s = 900;
  OAuthStack s(e.dir.store("b.db"), cfg, e.transport, clock);
  int64_t id = connect(s, e.sim, kAlice, "alice@example.com");
  e.sim.admin("POST", "/_sim/counters/reset");
  e.sim.admin("POST", "/_sim/faults", {{"status", 503}, {"count", 10}, {"path_prefix", "/external/v1/oauth2/token"}});
  auto remaining = [&] {
    json f = e.sim.admin("GET", "/_sim/faults");
    return f.empty() ? 0 : f[0].value("remaining", 0);
  };

  // Within the buffer but not expired: the refresh fails, the current token is still handed out.
  clock.advance_ms((86400 - 100) * 1000);
  auto still = s.tokens->credential(id);
  BOOST_REQUIRE_MESSAGE(still.ok(), still.status().to_string());
  BOOST_TEST(still->token_version == 1);
  BOOST_TEST(remaining() == 7);  // exactly refresh_max_attempts sends
  BOOST_TEST(e.sim.counters().value("faults_injected", 0) == 3);
  auto row = s.store->load(id);
  BOOST_TEST(row->refresh_failures == 1);
  BOOST_TEST(row->cooldown_until == clock.now_s() + 900);
  BOOST_TEST(row->last_refresh_error.find("503") != std::string::npos);
  BOOST_TEST(s.store->audit_log(kAlice, id)->front().event == "refresh_failed");

  // Cool-down: expired now, but no request reaches the token endpoint.
  clock.advance_ms(200 * 1000);
  for (int i = 0; i < 20; ++i) {
    auto c = s.tokens->credential(id);
    BOOST_TEST(c.code() == Code::kUnavailable);
    BOOST_TEST(c.status().message().find("cooling down") != std::string::npos);
  }
  BOOST_TEST(remaining() == 7);
  auto h = s.health->report_one(kAlice, id);
  BOOST_TEST(h->status == "expired");
  BOOST_TEST(h->cooldown_until > 0);

  // After the cool-down, Fathom is healthy again: one refresh, and a recovery event.
  e.sim.admin("DELETE", "/_sim/faults");
  clock.advance_ms(901 * 1000);
  auto back = s.tokens->credential(id);
  BOOST_REQUIRE_MESSAGE(back.ok(), back.status().to_string());
  BOOST_TEST(api_status(e.sim, *back) == 200);
  BOOST_TEST(s.count_events("connection_recovered") == 1);
  BOOST_TEST(s.store->load(id)->refresh_failures == 0);
  BOOST_TEST(s.count_events("reconnect_required") == 0);
}

BOOST_AUTO_TEST_CASE(token_endpoint_429_retry_after_is_honoured) {
  Env e;
  FakeClock clock(system_clock().now_ms());
  Config cfg = fb::test::oauth_test_config(e.sim.base_url());
  cfg.tokens.refresh_max_attempts = 4;
  cfg.tokens.refresh_backoff_base_ms = 1;
  cfg.tokens.refresh_backoff_max_ms = 2;
  OAuthStack s(e.dir.store("b.db"), cfg, e.transport, clock);
  int64_t id = connect(s, e.sim, kAlice, "alice@example.com");
  e.sim.config({{"retry_after", true}});
  e.sim.admin("POST", "/_sim/faults",
              {{"status", 429}, {"count", 2}, {"reset_s", 3}, {"path_prefix", "/external/v1/oauth2/token"}});
  const int64_t t0 = clock.now_ms();
  auto c = s.tokens->force_refresh(id);
  BOOST_REQUIRE_MESSAGE(c.ok(), c.status().to_string());
  BOOST_TEST(clock.now_ms() - t0 >= 6000);  // two waits of Retry-After: 3, not the 2 ms backoff
  BOOST_TEST(refresh_requests(e.sim) == 1);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(isolation_and_health)

BOOST_AUTO_TEST_CASE(cross_tenant_access_is_refused) {
  Env e;
  OAuthStack s(e.dir.store("b.db"), fb::test::oauth_test_config(e.sim.base_url()), e.transport);
  int64_t id = connect(s, e.sim, kAlice, "alice@example.com");
  for (const Principal* p : {&kGlobex, &kBob}) {
    BOOST_TEST(s.store->get(*p, id).code() == Code::kNotFound);
    BOOST_TEST(s.tokens->credential(*p, id).code() == Code::kNotFound);
    BOOST_TEST(s.health->report_one(*p, id).code() == Code::kNotFound);
    BOOST_TEST(s.store->audit_log(*p, id).code() == Code::kNotFound);
    BOOST_TEST(s.store->set_identity(*p, id, {"mallory@evil.test", "M"}).code() == Code::kNotFound);
    BOOST_TEST(s.flow->disconnect(*p, id).code() == Code::kNotFound);
  }
  BOOST_TEST(s.store->find(kGlobex).code() == Code::kNotFound);
  BOOST_TEST(s.health->report("globex", "")->empty());
  auto row = s.store->get(kAlice, id);
  BOOST_TEST(row->status == "active");
  BOOST_TEST(row->fathom_email.empty());
  BOOST_TEST(s.count_events("disconnected") == 0);
  // The owner can.
  BOOST_TEST(s.store->set_identity(kAlice, id, {"alice@example.com", "Alice Anderson"}).ok());
  BOOST_TEST(s.flow->disconnect(kAlice, id).ok());
  BOOST_TEST(s.count_events("disconnected") == 1);
  auto gone = s.store->get(kAlice, id);
  BOOST_TEST(gone->status == "disconnected");
  BOOST_TEST(!gone->active);
  BOOST_TEST(!gone->has_access_token);
  BOOST_TEST(!gone->has_refresh_token);
  BOOST_TEST(s.tokens->credential(id).code() == Code::kFailedPrecondition);
  BOOST_TEST(s.store->audit_log(kAlice, id)->front().event == "disconnected");
}

BOOST_AUTO_TEST_CASE(health_report_statuses_json_and_table) {
  Env e;
  FakeClock clock(system_clock().now_ms());
  e.sim.config({{"token_ttl_s", 3600}});
  OAuthStack s(e.dir.store("b.db"), fb::test::oauth_test_config(e.sim.base_url()), e.transport, clock);
  int64_t a = connect(s, e.sim, kAlice, "alice@example.com");
  int64_t b = connect(s, e.sim, kBob, "bob@example.com");
  auto k = s.flow->connect_api_key({"acme", "u-carol"}, SecretString(e.sim.api_key("carol@example.com")));
  BOOST_REQUIRE(k.ok());
  auto status_of = [&](int64_t id) {
    auto report = s.health->report("acme", "");
    BOOST_REQUIRE(report.ok());
    for (const auto& h : report.value()) {
      if (h.integration_id == id) return h.status;
    }
    return std::string("missing");
  };
  BOOST_TEST(status_of(a) == "valid");
  BOOST_TEST(status_of(*k) == "valid");
  clock.advance_ms((3600 - 200) * 1000);
  BOOST_TEST(status_of(a) == "expiring_soon");
  BOOST_TEST(s.health->report_one(kAlice, a)->expires_in_s.value() == 200);
  clock.advance_ms(300 * 1000);
  BOOST_TEST(status_of(a) == "expired");
  BOOST_TEST(status_of(*k) == "valid");
  BOOST_REQUIRE(s.tokens->credential(b).ok());  // refreshed on use
  BOOST_TEST(status_of(b) == "valid");
  BOOST_REQUIRE(s.flow->disconnect({"acme", "u-carol"}, *k).ok());
  BOOST_TEST(status_of(*k) == "disconnected");

  auto report = *s.health->report("acme", "");
  json j = token_health_to_json(report, HealthView::kFrontend);
  BOOST_TEST(j.size() == 3u);
  for (const auto& item : j) {
    BOOST_TEST(!item.contains("last_error"));
    for (const char* key : {"integration_id", "tenant_id", "user_id", "kind", "status", "expires_in_s",
                            "has_refresh_token", "last_refresh_at", "last_sync_at"}) {
      BOOST_TEST(item.contains(key), key);
    }
  }
  BOOST_TEST(j[0]["status"] == "expired");
  BOOST_TEST(j[0]["has_refresh_token"] == true);
  std::string table = token_health_table(report);
  BOOST_TEST(table.rfind("ID", 0) == 0);
  BOOST_TEST(table.find("expired") != std::string::npos);
  BOOST_TEST(table.find("disconnected") != std::string::npos);
  std::istringstream lines(table);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) ++n;
  BOOST_TEST(n == 4);  // header + 3 rows
  BOOST_TEST(s.health->report("", "")->size() == 3u);
}

BOOST_AUTO_TEST_CASE(key_rotation_old_key_opens_rewrite_uses_new_key) {
  Env e;
  Config old_cfg = fb::test::oauth_test_config(e.sim.base_url());
  old_cfg.tokens.key = "2025:" + fb::test::test_key('a');
  Config new_cfg = old_cfg;
  new_cfg.tokens.key = "2026:" + fb::test::test_key('b');
  new_cfg.tokens.old_keys = {"2025:" + fb::test::test_key('a')};
  int64_t a, k;
  {
    OAuthStack s(e.dir.store("b.db"), old_cfg, e.transport);
    a = connect(s, e.sim, kAlice, "alice@example.com");
    auto key = s.flow->connect_api_key({"acme", "u-carol"}, SecretString(e.sim.api_key("carol@example.com")));
    BOOST_REQUIRE(key.ok());
    k = *key;
  }
  OAuthStack s(e.dir.store("b.db"), new_cfg, e.transport);
  BOOST_TEST(Sealer::key_id_of(s.store->load(a)->sealed.access_token) == "2025");
  auto c = s.tokens->credential(a);  // the old key still opens
  BOOST_REQUIRE_MESSAGE(c.ok(), c.status().to_string());
  BOOST_TEST(api_status(e.sim, *c) == 200);
  BOOST_REQUIRE(s.tokens->force_refresh(a).ok());  // a rewrite seals with the new key
  BOOST_TEST(Sealer::key_id_of(s.store->load(a)->sealed.access_token) == "2026");
  BOOST_TEST(Sealer::key_id_of(s.store->load(a)->sealed.refresh_token) == "2026");
  BOOST_TEST(Sealer::key_id_of(s.store->load(k)->sealed.api_key) == "2025");
  BOOST_TEST(*s.store->reseal_all() == 1);  // the API key row
  BOOST_TEST(Sealer::key_id_of(s.store->load(k)->sealed.api_key) == "2026");
  BOOST_TEST(*s.store->reseal_all() == 0);
  BOOST_TEST(api_status(e.sim, *s.tokens->credential(k)) == 200);
  // Once the old key is retired, nothing depends on it any more.
  Config only_new = new_cfg;
  only_new.tokens.old_keys.clear();
  OAuthStack fresh(e.dir.store("b.db"), only_new, e.transport);
  BOOST_TEST(fresh.tokens->credential(a).ok());
  BOOST_TEST(fresh.tokens->credential(k).ok());
  // A process that only knows the old key cannot open the new blobs, and says which key it lacks.
  OAuthStack stale(e.dir.store("b.db"), old_cfg, e.transport);
  auto refused = stale.tokens->credential(a);
  BOOST_TEST(refused.code() == Code::kNotFound);
  BOOST_TEST(refused.status().message().find("2026") != std::string::npos);
  BOOST_TEST(stale.tokens->force_refresh(a).code() == Code::kNotFound);  // refuses before spending anything
  BOOST_TEST(stale.store->load(a)->refresh_lease_owner.empty());        // and leaves no lease behind
  BOOST_TEST(fresh.tokens->force_refresh(a).ok());
}

BOOST_AUTO_TEST_SUITE_END()

// Issue 10 point 2 (and 3, 12) end to end: fathom-sim's token endpoint does its work and answers
// after the bridge's read timeout (--token-late), with replay detection (--revoke-grant-on-reuse):
// the bridge must end in a live grant or a visible reconnect_required, never a silent dead one,
// and never hand out a stale access token as valid.
BOOST_AUTO_TEST_SUITE(late_answers)

constexpr int kReadTimeoutMs = 1000;  // the bridge's read timeout in these tests
constexpr int kLateMs = 3000;         // the simulator's answers come this late

HttpClientOptions short_read_timeout() {
  HttpClientOptions o;
  o.read_timeout_ms = kReadTimeoutMs;
  return o;
}

BOOST_AUTO_TEST_CASE(late_refresh_answers_with_replay_detection_end_in_visible_reconnect_required) {
  Env e({"--revoke-grant-on-reuse"});
  HttplibTransport transport(short_read_timeout());
  FakeClock clock(system_clock().now_ms());
  OAuthStack s(e.dir.store("b.db"), fb::test::oauth_test_config(e.sim.base_url()), transport, clock);
  int64_t id = connect(s, e.sim, kAlice, "alice@example.com");
  auto before = s.tokens->credential(id);
  BOOST_REQUIRE(before.ok());
  BOOST_TEST(api_status(e.sim, *before) == 200);

  // Every token answer is late now; the access token is inside the refresh buffer.
  e.sim.config({{"token_late_ms", kLateMs}});
  e.sim.admin("POST", "/_sim/counters/reset");
  clock.advance_ms((86400 - 100) * 1000);
  auto during = s.tokens->credential(id);
  BOOST_TEST(!during.ok(), "a token was handed out as valid although the grant may be dead");
  BOOST_TEST(during.code() == Code::kUnavailable);
  BOOST_TEST(refresh_requests(e.sim) == 2);  // the send and one confirming send, no more
  // The confirming send replayed the rotated token: the simulator revoked the whole grant, so the
  // old access token the bridge used to fall back on is dead at Fathom.
  BOOST_TEST(api_status(e.sim, *before) == 401);
  BOOST_TEST(s.health->report_one(kAlice, id)->status == "refresh_in_doubt");
  BOOST_TEST(s.count_events("refresh_outcome_unknown") == 1);
  BOOST_TEST(s.tokens->credential(id).code() == Code::kUnavailable);  // cooling down, still no stale token
  BOOST_TEST(refresh_requests(e.sim) == 2);

  // Fathom answers in time again; after the cool-down one send settles it: the grant is gone.
  e.sim.config({{"token_late_ms", 0}});
  clock.advance_ms(901 * 1000);
  auto settled = s.tokens->credential(id);
  BOOST_TEST(settled.code() == Code::kReconnectRequired);
  BOOST_TEST(refresh_requests(e.sim) == 3);
  BOOST_TEST(s.store->load(id)->status == "reconnect_required");
  BOOST_TEST(s.count_events("reconnect_required") == 1);  // the host hears it
  BOOST_TEST(s.health->report_one(kAlice, id)->status == "reconnect_required");
  BOOST_TEST(s.store->audit_log(kAlice, id)->front().event == "reconnect_required");
  // And the user can connect again.
  int64_t again = connect(s, e.sim, kAlice, "alice@example.com");
  BOOST_TEST(again == id);
  BOOST_TEST(api_status(e.sim, *s.tokens->credential(id)) == 200);
}

BOOST_AUTO_TEST_CASE(one_late_refresh_answer_is_settled_by_the_confirming_send) {
  Env e({"--revoke-grant-on-reuse"});
  HttplibTransport transport(short_read_timeout());
  OAuthStack s(e.dir.store("b.db"), fb::test::oauth_test_config(e.sim.base_url()), transport);
  int64_t id = connect(s, e.sim, kAlice, "alice@example.com");
  e.sim.config({{"token_late_ms", kLateMs}, {"token_late_count", 1}});
  e.sim.admin("POST", "/_sim/counters/reset");
  auto r = s.tokens->force_refresh(id);
  BOOST_TEST(r.code() == Code::kReconnectRequired);
  BOOST_TEST(refresh_requests(e.sim) == 2);
  BOOST_TEST(invalid_grants(e.sim) == 1);
  BOOST_TEST(s.store->load(id)->status == "reconnect_required");
  BOOST_TEST(s.store->load(id)->last_refresh_error.find("got no answer") != std::string::npos);
  BOOST_TEST(s.count_events("reconnect_required") == 1);
}

BOOST_AUTO_TEST_CASE(a_gateway_timeout_before_the_work_ends_in_a_live_grant) {
  // 504: outcome unknown, but the server had not done the work: the confirming send gets a pair.
  Env e({"--revoke-grant-on-reuse"});
  OAuthStack s(e.dir.store("b.db"), fb::test::oauth_test_config(e.sim.base_url()), e.transport);
  int64_t id = connect(s, e.sim, kAlice, "alice@example.com");
  e.sim.admin("POST", "/_sim/faults", {{"status", 504}, {"count", 1}, {"path_prefix", "/external/v1/oauth2/token"}});
  e.sim.admin("POST", "/_sim/counters/reset");
  auto r = s.tokens->force_refresh(id);
  BOOST_REQUIRE_MESSAGE(r.ok(), r.status().to_string());
  BOOST_TEST(api_status(e.sim, *r) == 200);
  BOOST_TEST(refresh_requests(e.sim) == 1);  // the 504 was answered before the handler counted it
  BOOST_TEST(s.store->load(id)->status == "active");
  BOOST_TEST(!s.store->load(id)->refresh_in_doubt);
}

// Point 3: a token endpoint that does not answer: one send of the code, and the user's popup
// gets its answer within fathom.callback_timeout_ms, not after minutes.
BOOST_AUTO_TEST_CASE(an_unanswered_code_exchange_is_not_resent_and_the_callback_is_bounded) {
  Env e;
  HttpClientOptions o;
  o.read_timeout_ms = 2000;
  HttplibTransport transport(o);
  Config cfg = fb::test::oauth_test_config(e.sim.base_url());
  cfg.fathom.callback_timeout_ms = 1000;
  OAuthStack s(e.dir.store("b.db"), cfg, transport);
  e.sim.config({{"token_late_ms", 8000}});
  auto start = s.flow->start(kAlice, CallbackMode::kPopup);
  BOOST_REQUIRE(start.ok());
  std::string query = consent(e.sim, start->url, "alice@example.com");
  const int64_t t0 = system_clock().mono_ms();
  CallbackResult r = s.flow->complete(query);
  const int64_t took = system_clock().mono_ms() - t0;
  BOOST_TEST(!r.ok);
  BOOST_TEST(r.error == "token_exchange_failed");
  BOOST_TEST(code_requests(e.sim) == 1);  // never re-sent
  BOOST_TEST(took < 8000, "the callback waited " << took << " ms");  // it did not wait for the answer
  BOOST_TEST(r.reason.find("start connecting again") != std::string::npos, r.reason);
}

// Point 12: fathom-sim sends iss; a forged one is refused, the real one connects.
BOOST_AUTO_TEST_CASE(iss_from_the_simulator_is_checked) {
  Env e;
  Config cfg = fb::test::oauth_test_config(e.sim.base_url());
  cfg.fathom.issuer = e.sim.base_url();
  cfg.fathom.require_iss = true;
  OAuthStack s(e.dir.store("b.db"), cfg, e.transport);
  e.sim.config({{"issuer", e.sim.base_url()}});
  int64_t id = connect(s, e.sim, kAlice, "alice@example.com");
  BOOST_TEST(id > 0);
  e.sim.config({{"issuer", "https://attacker.example"}});
  auto start = s.flow->start(kBob, CallbackMode::kPopup);
  BOOST_REQUIRE(start.ok());
  std::string query = consent(e.sim, start->url, "bob@example.com");
  BOOST_TEST(fb::test::query_param("?" + query, "iss") == "https://attacker.example");
  CallbackResult r = s.flow->complete(query);
  BOOST_TEST(!r.ok);
  BOOST_TEST(r.error == "iss_mismatch");
  BOOST_TEST(code_requests(e.sim) == 1);  // only alice's code was exchanged
  BOOST_TEST(s.store->find(kBob).code() == Code::kNotFound);
}

BOOST_AUTO_TEST_SUITE_END()
