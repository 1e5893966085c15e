// The fleet test of issue 12: three `fathom-bridge serve` processes (three app servers of a CRM
// behind a load balancer) on ONE PostgreSQL database, against fathom-sim with rotating single-use
// refresh tokens (a spent refresh token used again revokes the whole grant).
//   (1) connect starts on host 1, the OAuth callback arrives at host 2, host 3 hands out the token;
//   (2) 50 concurrent token requests spread over the three hosts, with an expired access token:
//       exactly one refresh at the simulator, no invalid_grant, every caller gets the new token;
//   (3) 1,000 signed deliveries spread round-robin over the three hosts, 10 % sent again to another
//       host: 1,000 inbox events, every meeting mapped exactly once (IdempotentCrm counts the
//       activities per idempotency key);
//   (4) the same with one host SIGKILLed in the middle: the others take over its claimed events
//       after their lease (webhooks.claim_lease_s); nothing lost, nothing mapped twice;
//   (5) the same with PostgreSQL stopped for 10 s in the middle (a server of this test's own):
//       503 while it is down, every meeting mapped once after it returns, the hosts reconnect.
// Registered only as fb_fleet_test_postgresql (a fleet needs the shared store).
#define BOOST_TEST_MODULE fb_fleet

#include <algorithm>
#include <atomic>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "crypto/encoding.h"
#include "support/http.h"
#include "support/idempotent_crm.h"
#include "support/pg_server.h"
#include "support/serve_process.h"
#include "support/sim_process.h"
#include "support/temp_dir.h"
#include "support/wait.h"
#include "webhooks/verifier.h"

using nlohmann::json;
using namespace fb::test;

namespace {

const std::string kToken = "fleet-token";

// One app server: `fathom-bridge serve` with its stderr in a file, SIGKILLed at the end (or by kill()).
class Host {
 public:
  Host(const std::string& config, const std::string& log, int port)
      : proc_(std::make_unique<ServeProcess>(config, log)), log_(log),
        base_("http://127.0.0.1:" + std::to_string(port)) {}
  void kill() { proc_.reset(); }
  const std::string& base() const { return base_; }
  std::string log() const { return read_file(log_); }

 private:
  std::unique_ptr<ServeProcess> proc_;
  std::string log_, base_;
};

std::vector<std::string> with_redirect(std::vector<std::string> args, const std::string& callback) {
  args.push_back("--redirect-uri");
  args.push_back(callback);
  return args;
}

// fathom-sim and three hosts sharing the store `url`; every host's redirect URI is host 2's
// callback (the load balancer sent the browser there).
// `extra` is merged into every host's configuration; `store_url` "" is this test's database on the
// suites' server.
struct Fleet {
  explicit Fleet(std::vector<std::string> sim_args, const json& extra = json::object(), std::string store_url = "")
      : ports{free_port(), free_port(), free_port()},
        callback("http://127.0.0.1:" + std::to_string(ports[1]) + "/oauth/callback"),
        sim(with_redirect(std::move(sim_args), callback)) {
    const std::string url = store_url.empty() ? dir.store("fleet.db") : store_url;
    for (int i = 0; i < 3; ++i) {
      const std::string config = dir.file("host" + std::to_string(i + 1) + ".json");
      json c = {{"fathom", sim.fathom_settings(callback)},
                {"frontend", {{"url", "http://127.0.0.1:" + std::to_string(ports[0])}}},
                {"tokens", {{"key", fb::detail::base64_encode(std::string(32, 'f'))}}},
                {"store", {{"url", url}, {"pool_size", 4}}},
                {"scripts", {{"dir", std::string(FB_SOURCE_DIR) + "/scripts"}}},
                {"sync", {{"scheduler", false}}},
                {"server", {{"port", ports[i]}, {"api_token", kToken}, {"threads", 24}}}};
      c.merge_patch(extra);
      std::ofstream(config) << c.dump();
      hosts.push_back(std::make_unique<Host>(config, dir.file("host" + std::to_string(i + 1) + ".log"), ports[i]));
    }
    for (auto& h : hosts) {
      BOOST_REQUIRE_MESSAGE(eventually([&] { return http_get(h->base() + "/healthz").status == 200; }), h->log());
    }
  }
  HeaderMap auth() const { return {{"Authorization", "Bearer " + kToken}}; }

  std::vector<int> ports;
  std::string callback;
  SimProcess sim;
  TempDir dir;
  std::vector<std::unique_ptr<Host>> hosts;
};

int64_t counter(const json& c, const char* group, const char* key) {
  return c.contains(group) && c[group].contains(key) ? c[group][key].get<int64_t>() : 0;
}

// Connects acme/u1 through the redirect flow: started on host 1, the callback on host 2. Returns
// the integration id as host 3 reports it.
int64_t connect_across_hosts(Fleet& f) {
  HttpReply started = http_post_json(f.hosts[0]->base() + "/v1/connect/start",
                                     {{"tenant_id", "acme"}, {"user_id", "u1"}, {"mode", "redirect"}}, f.auth());
  BOOST_REQUIRE_MESSAGE(started.status == 200, started.body);
  const std::string location = f.sim.authorize_as(started.json()["authorize_url"], "alice@example.com");
  BOOST_REQUIRE_MESSAGE(location.rfind(f.hosts[1]->base() + "/oauth/callback?", 0) == 0, location);
  HttpReply callback = http_get(location);  // host 2 never saw this state: it is in the shared store
  BOOST_REQUIRE_MESSAGE(callback.status == 302, callback.status << " " << callback.body << "\n" << f.hosts[1]->log());
  auto back = callback.headers.find("Location");
  BOOST_REQUIRE(back != callback.headers.end());
  BOOST_TEST(back->second.find("error") == std::string::npos, back->second);
  HttpReply health = http_get(f.hosts[2]->base() + "/v1/token-health?tenant_id=acme&user_id=u1", f.auth());
  BOOST_REQUIRE_MESSAGE(health.status == 200, health.body);
  json list = health.json();
  if (list.is_object() && list.contains("integrations")) list = list["integrations"];
  BOOST_REQUIRE_MESSAGE(list.is_array() && list.size() == 1, health.body);
  return list[0]["integration_id"].get<int64_t>();
}

HttpReply access_token(Fleet& f, int host, int64_t id) {
  return http_post_json(f.hosts[host]->base() + "/v1/access-token",
                        {{"tenant_id", "acme"}, {"user_id", "u1"}, {"integration_id", id}}, f.auth());
}

// ---- parts (3)-(5): Fathom's webhook deliveries over the fleet ----

using SteadyClock = std::chrono::steady_clock;
const char* kWebhookSecret = "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY";
constexpr int kMeetings = 1000;

// One answer a host gave a delivery attempt, for part (5)'s "503 while it is down".
struct Attempt {
  SteadyClock::time_point start, end;
  int status;
};

// The fleet with a CRM, one connected integration (acme/u1, alice's API key) and a webhook route
// with a secret of ours, and kMeetings meetings at fathom-sim whose webhook payloads we send.
struct WebhookFleet {
  explicit WebhookFleet(const json& extra, const std::string& store_url = "") {
    json cfg = {{"server", {{"crm_url", crm.url()}}},
                {"webhooks", {{"workers", 2}, {"backoff_base_ms", 200}, {"backoff_max_ms", 1000}, {"max_attempts", 20}}}};
    cfg.merge_patch(extra);
    fleet = std::make_unique<Fleet>(std::vector<std::string>{}, cfg, store_url);
    Fleet& f = *fleet;
    HttpReply connected = http_post_json(f.hosts[0]->base() + "/v1/connect/api-key",
                                         {{"tenant_id", "acme"}, {"user_id", "u1"},
                                          {"api_key", f.sim.api_key("alice@example.com")}}, f.auth());
    BOOST_REQUIRE_MESSAGE(connected.status == 200, connected.body);
    integration = connected.json()["integration_id"];
    HttpReply route = http_post_json(f.hosts[1]->base() + "/v1/webhooks/routes",
                                     {{"tenant_id", "acme"}, {"user_id", "u1"}, {"integration_id", integration},
                                      {"secret", kWebhookSecret}}, f.auth());
    BOOST_REQUIRE_MESSAGE(route.status == 200, route.body);
    path = route.json()["path"];
    json made = f.sim.admin("POST", "/_sim/meetings", {{"count", kMeetings}, {"recorded_by", "alice@example.com"}});
    BOOST_REQUIRE_MESSAGE(made["recording_ids"].size() == static_cast<size_t>(kMeetings), made.dump());
    for (const auto& id : made["recording_ids"]) {
      recordings.push_back(id.get<int64_t>());
      bodies.push_back(f.sim.admin("GET", "/_sim/meetings/" + std::to_string(recordings.back())).dump());
    }
    // The default mapping logs an activity for a meeting with an external invitee only.
    const json listed = f.sim.admin("GET", "/_sim/meetings?visible_to=alice@example.com");
    for (const auto& m : listed["items"]) {
      const int64_t rec = m["recording_id"];
      const bool ours = std::find(recordings.begin(), recordings.end(), rec) != recordings.end();  // not the seeded ones
      if (ours && m["calendar_invitees_domains_type"] == "one_or_more_external") expected.insert(rec);
    }
    BOOST_REQUIRE(!expected.empty());
  }

  // Sends every meeting's delivery once, round-robin over the hosts, and every tenth a second time
  // to the next host, from 12 threads, as Fathom does: an attempt answered otherwise than 2xx is
  // retried on the next host (the load balancer's pick) after 100 ms, until it is accepted.
  void deliver_all() {
    std::vector<std::pair<int, int>> jobs;  // (meeting, first host)
    for (int i = 0; i < kMeetings; ++i) {
      jobs.push_back({i, i % 3});
      if (i % 10 == 0) jobs.push_back({i, (i + 1) % 3});
    }
    auto key = fb::detail::SigningKey::from_secret(fb::detail::SecretString(kWebhookSecret));
    BOOST_REQUIRE(key.ok());
    std::atomic<size_t> next{0};
    std::vector<std::thread> senders;
    for (int t = 0; t < 12; ++t) {
      senders.emplace_back([&] {
        for (size_t j = next++; j < jobs.size(); j = next++) {
          const auto [i, first] = jobs[j];
          const std::string id = "msg_fleet_" + std::to_string(i);
          const auto deadline = SteadyClock::now() + std::chrono::seconds(120);
          for (int host = first; SteadyClock::now() < deadline; host = (host + 1) % 3) {
            const std::string ts = std::to_string(std::time(nullptr));
            HttpCall call{"POST", fleet->hosts[host]->base() + path, {}, bodies[i], "application/json"};
            call.headers = {{"webhook-id", id}, {"webhook-timestamp", ts},
                            {"webhook-signature", key->sign(id, ts, bodies[i])}};
            call.timeout_s = 20;
            const auto start = SteadyClock::now();
            const int status = http_request(call).status;
            {
              std::lock_guard lk(mu);
              attempts.push_back({start, SteadyClock::now(), status});
            }
            if (status / 100 == 2) {
              ++accepted;
              break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
          }
        }
      });
    }
    for (auto& t : senders) t.join();
  }

  // Waits until every event is done (or dead); returns the inbox events as a live host lists them.
  json settled(int host) {
    json events;
    const auto deadline = SteadyClock::now() + std::chrono::seconds(150);
    while (SteadyClock::now() < deadline) {
      HttpReply r = http_get(fleet->hosts[host]->base() + "/v1/webhooks/events?limit=100000", fleet->auth());
      if (r.status == 200) {
        events = r.json();
        size_t open = 0;
        for (const auto& e : events) open += e["status"] == "pending" || e["status"] == "processing";
        if (open == 0 && events.size() >= static_cast<size_t>(kMeetings)) return events;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return events;
  }

  // The counts every part asserts: one inbox event per webhook-id, all done, every expected
  // meeting's activity logged exactly once, no other. Returns a line for the log.
  std::string check_mapped_once(const json& events) {
    std::map<std::string, int> by_status;
    std::set<std::string> ids;
    for (const auto& e : events) {
      ++by_status[e["status"].get<std::string>()];
      ids.insert(e["webhook_id"].get<std::string>());
    }
    BOOST_TEST(events.size() == static_cast<size_t>(kMeetings));  // the 10 % sent twice are duplicates
    BOOST_TEST(ids.size() == static_cast<size_t>(kMeetings));
    BOOST_TEST(by_status["done"] == kMeetings);
    BOOST_TEST(by_status["dead"] == 0);
    auto activities = crm.activities();
    int once = 0, twice = 0, missing = 0, unexpected = 0;
    for (int64_t rec : recordings) {
      auto it = activities.find({integration, rec});
      const int n = it == activities.end() ? 0 : it->second;
      if (expected.count(rec)) {
        once += n == 1;
        twice += n > 1;
        missing += n == 0;
      } else {
        unexpected += n;
      }
    }
    BOOST_TEST(once == static_cast<int>(expected.size()));
    BOOST_TEST(twice == 0);
    BOOST_TEST(missing == 0);
    BOOST_TEST(unexpected == 0);
    std::ostringstream line;
    line << "meetings " << kMeetings << ", deliveries accepted " << accepted.load() << ", attempts "
         << attempts.size() << ", inbox events " << events.size() << " (done " << by_status["done"] << ", dead "
         << by_status["dead"] << "), meetings to map " << expected.size() << ", mapped once " << once
         << ", twice " << twice << ", missing " << missing << ", CRM calls " << crm.calls()
         << " (repeated keys absorbed " << crm.replays() << ")";
    return line.str();
  }

  IdempotentCrm crm;
  std::unique_ptr<Fleet> fleet;
  int64_t integration = 0;
  std::string path;
  std::vector<int64_t> recordings;
  std::vector<std::string> bodies;
  std::set<int64_t> expected;
  std::atomic<int> accepted{0};
  std::mutex mu;
  std::vector<Attempt> attempts;  // guarded by mu
};

}  // namespace

BOOST_AUTO_TEST_SUITE(fleet)

BOOST_AUTO_TEST_CASE(connect_starts_on_host_1_and_the_callback_arrives_at_host_2) {
  BOOST_REQUIRE(store_engine_is_postgres());
  Fleet f({"--revoke-grant-on-reuse"});
  const int64_t id = connect_across_hosts(f);
  // Every host hands out the same token from the shared store.
  std::set<std::string> tokens;
  for (int h = 0; h < 3; ++h) {
    HttpReply t = access_token(f, h, id);
    BOOST_REQUIRE_MESSAGE(t.status == 200, "host " << h + 1 << ": " << t.body);
    tokens.insert(t.json()["access_token"].get<std::string>());
  }
  BOOST_TEST(tokens.size() == 1u);
  json c = f.sim.counters();
  BOOST_TEST(counter(c, "token_requests", "authorization_code") == 1);
  BOOST_TEST(counter(c, "token_requests", "refresh_token") == 0);
}

BOOST_AUTO_TEST_CASE(fifty_concurrent_token_requests_over_three_hosts_refresh_once) {
  BOOST_REQUIRE(store_engine_is_postgres());
  // Access tokens live 2 s: connected, then expired before the callers come.
  Fleet f({"--revoke-grant-on-reuse", "--token-ttl", "2"});
  const int64_t id = connect_across_hosts(f);
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));
  f.sim.config({{"token_ttl_s", 86400}});  // the refreshed token lives long: one refresh is enough

  constexpr int kCallers = 50;
  std::vector<HttpReply> replies(kCallers);
  std::atomic<bool> go{false};
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&, i] {
      while (!go) std::this_thread::yield();
      replies[i] = access_token(f, i % 3, id);
    });
  }
  go = true;
  for (auto& t : callers) t.join();

  std::set<std::string> tokens;
  int ok = 0;
  for (const HttpReply& r : replies) {
    if (r.status == 200) {
      ++ok;
      tokens.insert(r.json()["access_token"].get<std::string>());
    } else {
      BOOST_TEST_MESSAGE("caller failed: " << r.status << " " << r.body);
    }
  }
  json c = f.sim.counters();
  BOOST_TEST(ok == kCallers);
  BOOST_TEST(counter(c, "token_requests", "refresh_token") == 1);  // exactly one refresh in the fleet
  BOOST_TEST(counter(c, "token_errors", "invalid_grant") == 0);
  BOOST_TEST(tokens.size() == 1u);  // everyone got the refreshed token
  // And the grant is alive: the next request on any host still works without another refresh.
  HttpReply again = access_token(f, 2, id);
  BOOST_TEST(again.status == 200, again.body);
  BOOST_TEST(counter(f.sim.counters(), "token_requests", "refresh_token") == 1);
}

BOOST_AUTO_TEST_CASE(a_thousand_deliveries_round_robin_with_ten_percent_twice_are_mapped_once) {
  BOOST_REQUIRE(store_engine_is_postgres());
  WebhookFleet w(json::object());
  w.deliver_all();
  BOOST_TEST(w.accepted == kMeetings + kMeetings / 10);
  const std::string line = w.check_mapped_once(w.settled(0));
  BOOST_TEST_MESSAGE("fleet (3): " << line);
}

BOOST_AUTO_TEST_CASE(a_host_killed_mid_way_leaves_its_claimed_events_to_the_others_after_the_lease) {
  BOOST_REQUIRE(store_engine_is_postgres());
  // A 3 s lease (the default is 60 s), and a CRM taking 5 ms per call so that the killed host is
  // surely holding claimed events when it dies.
  WebhookFleet w(json{{"webhooks", {{"claim_lease_s", 3}}}});
  w.crm.set_delay_ms(5);
  std::thread killer([&] {
    while (w.accepted < 400) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    w.fleet->hosts[2]->kill();
  });
  w.deliver_all();
  killer.join();
  const json events = w.settled(0);
  const std::string line = w.check_mapped_once(events);
  // Events taken over after the lease were claimed twice (nothing else failed in this run).
  int taken_over = 0;
  for (const auto& e : events) taken_over += e["attempts"].get<int>() >= 2;
  BOOST_TEST(taken_over > 0);
  const std::string logs = w.fleet->hosts[0]->log() + w.fleet->hosts[1]->log();
  BOOST_TEST(logs.find("whose claim lease ran out") != std::string::npos);
  BOOST_TEST_MESSAGE("fleet (4): host 3 killed after 400 accepted deliveries, events taken over after the lease "
                     << taken_over << "; " << line);
}

BOOST_AUTO_TEST_CASE(postgresql_stopped_for_ten_seconds_answers_503_then_maps_every_meeting_once) {
  BOOST_REQUIRE(store_engine_is_postgres());
  PrivatePostgres pg;  // stopping the suites' shared server would break the tests running beside
  WebhookFleet w(json{{"webhooks", {{"claim_lease_s", 5}}}}, pg.url());
  SteadyClock::time_point down, up;
  std::thread stopper([&] {
    while (w.accepted < 300) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    pg.halt();
    down = SteadyClock::now();
    std::this_thread::sleep_for(std::chrono::seconds(10));
    up = SteadyClock::now();
    pg.resume();
  });
  w.deliver_all();
  stopper.join();
  int during = 0, unavailable = 0, accepted_while_down = 0;
  for (const Attempt& a : w.attempts) {
    if (a.start < down || a.end > up) continue;  // wholly inside the outage
    ++during;
    unavailable += a.status == 503;
    accepted_while_down += a.status / 100 == 2;
  }
  BOOST_TEST(during > 0);
  BOOST_TEST(unavailable == during);  // every answer while it was down: 503, so Fathom retries
  BOOST_TEST(accepted_while_down == 0);
  const std::string line = w.check_mapped_once(w.settled(1));
  BOOST_TEST_MESSAGE("fleet (5): PostgreSQL down 10 s after 300 accepted deliveries, attempts answered while down "
                     << during << " (503: " << unavailable << "); " << line);
}

BOOST_AUTO_TEST_SUITE_END()
