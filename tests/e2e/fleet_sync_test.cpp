// Sync across a fleet of bridges (issue 12): three fb::Bridge hosts with their sidecars on one store
// (a PostgreSQL database in fb_e2e_test_postgresql, one SQLite file otherwise) and one fathom-sim.
// The scheduler of every host runs; the integration is synced once per due time in the fleet. A
// sync asked on one host while another host runs it is answered 409 "already running", or with
// that sync's job when it ends if the caller asked to wait.
// A system check of the wiring: the race it guards against (two hosts both deciding a due time
// before either stamps it) is rare with real clocks, so the deterministic regression test is
// tests/sync/sync_fleet_test.cpp, which holds one host between its decision and its sync.
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "e2e/host_fixture.h"

using nlohmann::json;
using namespace fb::test;

BOOST_AUTO_TEST_SUITE(fleet_sync)

BOOST_AUTO_TEST_CASE(three_bridges_sync_a_due_integration_once_per_due_time_and_one_at_a_time) {
  SimProcess sim({"--meetings", "8", "--seed", "9"});
  TempDir shared;
  const std::string store = shared.store("fleet.db");
  std::vector<std::unique_ptr<Host>> hosts;
  for (int i = 0; i < 3; ++i) {
    hosts.push_back(std::make_unique<Host>(
        sim, json{{"store", store_settings(store)}, {"sync", {{"scheduler", true}, {"interval_s", 2}}}}));
  }
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t id = hosts[0]->connect("acme", "u1", "alice@example.com");
  std::this_thread::sleep_for(std::chrono::seconds(7));
  auto scheduled = [&] {
    int n = 0;
    for (const json& j : json::parse(hosts[1]->bridge->sync_jobs_json(id, "", 100).value())) {
      BOOST_TEST(j["status"] != "failed", j.dump());
      n += j["trigger"] == "scheduler";
    }
    return n;
  };
  const int runs = scheduled();
  const double window_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  BOOST_TEST_MESSAGE(runs << " scheduled syncs in " << window_s << " s with sync.interval_s 2 on three hosts");
  // Due times are at least 2 whole seconds apart: at most one per 2 s of the window, plus the edges.
  BOOST_TEST(runs >= 2);
  BOOST_TEST(runs <= static_cast<int>(window_s / 2) + 2);

  // A slow backfill started on host 1; host 2 is asked for the same integration meanwhile.
  hosts.clear();  // the schedulers stop: only the requests below run
  hosts.push_back(std::make_unique<Host>(sim, json{{"store", store_settings(store)}}));
  hosts.push_back(std::make_unique<Host>(sim, json{{"store", store_settings(store)}}));
  // Host 1's sync must still be running at both requests below: 4 s of page latency leaves room
  // for a host slowed by a loaded machine.
  sim.config({{"latency_ms", 4000}});
  HttpReply started = hosts[0]->post("/v1/sync", {{"tenant_id", "acme"}, {"user_id", "u1"}, {"integration_id", id},
                                                  {"mode", "backfill"}, {"async", true}});
  BOOST_REQUIRE_MESSAGE(started.status == 202, started.body);
  HttpReply refused = hosts[1]->post("/v1/sync", {{"tenant_id", "acme"}, {"user_id", "u1"}, {"integration_id", id}});
  BOOST_TEST(refused.status == 409, refused.body);
  BOOST_TEST(refused.body.find("a sync of integration " + std::to_string(id) + " is already running") !=
                 std::string::npos,
             refused.body);
  const int64_t job = started.json()["id"];
  // Asked to wait, host 2 answers when host 1's sync ends, with that job (the widget's Sync now).
  HttpReply waited = http_request({"POST", hosts[1]->origin + "/v1/sync", hosts[1]->auth(),
                                   json{{"tenant_id", "acme"}, {"user_id", "u1"}, {"integration_id", id},
                                        {"wait_if_running", true}}.dump(),
                                   "application/json", 60});
  BOOST_REQUIRE_MESSAGE(waited.status == 200, waited.status << " " << waited.body);
  BOOST_TEST(waited.json()["id"] == job, waited.body);
  BOOST_TEST(waited.json()["status"] == "succeeded", waited.body);
  BOOST_TEST(eventually([&] {
    HttpReply j = hosts[1]->post("/v1/sync/job", {{"tenant_id", "acme"}, {"user_id", "u1"}, {"job_id", job}});
    return j.status == 200 && j.json()["status"] == "succeeded";
  }, 60000));
  sim.config({{"latency_ms", 0}});
  HttpReply after = hosts[1]->post("/v1/sync", {{"tenant_id", "acme"}, {"user_id", "u1"}, {"integration_id", id}});
  BOOST_TEST(after.status == 200, after.body);
}

BOOST_AUTO_TEST_SUITE_END()
