// `fathom-bridge store copy` (issue 12): a single-host installation, populated through the bridge
// against fathom-sim (an OAuth and an API-key connection, a sync, a webhook, a script version),
// moved into the run's throwaway PostgreSQL by the CLI, then used from a bridge on the PostgreSQL
// URL. PostgreSQL only (fb_store_copy_test_postgresql).
#define BOOST_TEST_MODULE fb_store_copy
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "e2e/host_fixture.h"
#include "store/db.h"
#include "support/wait.h"

using nlohmann::json;
using namespace fb::test;

namespace {

CommandResult run_cli(const std::string& args) {
  CommandResult r = run_command(std::string(FB_BINARY_DIR) + "/plugin/cli/fathom-bridge " + args + " 2>&1");
  BOOST_REQUIRE(r.ran);
  return r;
}

int64_t scalar(fb::detail::Db& db, const std::string& sql) {
  int64_t v = -1;
  fb::Status s = db.with([&]() -> fb::Status {
    auto q = db.prepare_uncached(sql);
    if (!q.ok()) return q.status();
    auto row = q->step();
    if (!row.ok()) return row.status();
    if (*row) v = q->int64(0);
    return fb::Status::Ok();
  });
  BOOST_REQUIRE_MESSAGE(s.ok(), sql << ": " << s.to_string());
  return v;
}

int64_t token_requests(const SimProcess& sim) { return sim.counters()["token_requests_total"].get<int64_t>(); }

}  // namespace

BOOST_AUTO_TEST_SUITE(store_copy)

BOOST_AUTO_TEST_CASE(a_single_host_installation_moves_to_postgresql_and_keeps_working) {
  BOOST_REQUIRE_MESSAGE(store_engine_is_postgres(), "run as fb_store_copy_test_postgresql (ctest), it needs the server");
  SimProcess sim({"--meetings", "8", "--seed", "9"});
  TempDir dir;
  const std::string sqlite = dir.file("single.db");
  const std::string pg = dir.store("fleet");
  const fb::Caller alice{"acme", "u1", ""}, bob{"acme", "u2", ""};
  int64_t alice_id = 0, bob_id = 0;
  std::string bob_token, hook_path, hook_secret, delivered_id;
  json jobs_before, versions_before;
  int meetings_before = 0;
  {
    // The sim's registered redirect URI: the test plays the browser and hands the query over itself.
    Host single(sim, {{"store", {{"path", sqlite}}}, {"fathom", {{"redirect_uri", "http://127.0.0.1:8787/oauth/callback"}}}});
    alice_id = single.connect("acme", "u1", "alice@example.com");  // API key: registers its webhook
    auto start = single.bridge->connect_start(bob, fb::ReturnMode::kRedirect);
    BOOST_REQUIRE(start.ok());
    std::string location = sim.authorize_as(start->authorize_url, "bob@example.com", "approve");
    auto cb = single.bridge->connect_callback(location.substr(location.find('?') + 1));
    BOOST_REQUIRE_MESSAGE(cb.ok, cb.error + " " + cb.reason);
    bob_id = cb.integration_id;
    bob_token = single.bridge->access_token(bob, bob_id).value();

    auto synced = single.bridge->sync(alice, alice_id, {});
    BOOST_REQUIRE_MESSAGE(synced.ok(), synced.status().to_string());
    BOOST_REQUIRE(json::parse(*synced)["status"] == "succeeded");

    // Fathom delivers a completed meeting to alice's webhook (the body goes to the body log).
    json added = sim.admin("POST", "/_sim/meetings", {{"count", 1}, {"recorded_by", "alice@example.com"}});
    json sent = sim.admin("POST", "/_sim/meetings/" + std::to_string(added["recording_ids"][0].get<int64_t>()) + "/complete");
    for (const json& d : sent["deliveries"]) {
      if (d["url"].get<std::string>().rfind(single.origin, 0) == 0) delivered_id = d["message_id"];
    }
    BOOST_REQUIRE(!delivered_id.empty());
    BOOST_REQUIRE(eventually([&] {
      return json::parse(single.bridge->webhook_events_json("done", alice_id, 10).value()).size() == 1u;
    }));
    for (const json& w : sim.admin("GET", "/_sim/webhooks")) {
      if (w["owner"] == "alice@example.com") {
        hook_secret = w["secret"];
        hook_path = w["url"].get<std::string>().substr(single.origin.size());
      }
    }
    BOOST_REQUIRE(!hook_secret.empty());

    auto uploaded = single.bridge->script_upload(
        "acme", json{{"mapping.lua", "function on_meeting(m, ctx) end\n"}}.dump(), "ops@acme", "quiet mapping");
    BOOST_REQUIRE_MESSAGE(uploaded.ok(), uploaded.status().to_string());
    jobs_before = json::parse(single.bridge->sync_jobs_json(0, "", 50).value());
    versions_before = json::parse(single.bridge->script_versions_json("acme", 10).value());
    auto listed = fb::detail::Db::open(sqlite).value();
    meetings_before = static_cast<int>(scalar(*listed, "SELECT COUNT(*) FROM sync_meetings"));
    BOOST_REQUIRE_GT(meetings_before, 1);
    // The body is in the body log, not in the row: the copy has to move it.
    BOOST_REQUIRE_EQUAL(scalar(*listed, "SELECT COUNT(*) FROM webhook_inbox WHERE body_segment IS NOT NULL"), 1);
    // A title with a NUL, as versions before the meeting store's U+FFFD stored it on SQLite.
    BOOST_REQUIRE(listed->with([&] {
      return listed->exec("UPDATE sync_meetings SET title='Nul' || char(0) || 'inside' WHERE recording_id="
                          "(SELECT MIN(recording_id) FROM sync_meetings)");
    }).ok());
  }  // the single host stops

  CommandResult copied = run_cli("store copy --from " + sqlite + " --to '" + pg + "'");
  BOOST_TEST_MESSAGE(copied.output);
  BOOST_REQUIRE_EQUAL(copied.exit_code, 0);
  CommandResult again = run_cli("store copy --json --from " + sqlite + " --to '" + pg + "'");
  BOOST_TEST_INFO(again.output);
  BOOST_TEST(again.exit_code == 1);
  BOOST_TEST(again.output.find("is not empty") != std::string::npos);
  BOOST_TEST(again.output.find("copy into a new, empty database") != std::string::npos);

  // Every table's rows, counted the same on both sides.
  auto from = fb::detail::Db::open(sqlite).value();
  auto to = fb::detail::Db::open(pg).value();
  for (const char* t : {"integrations", "oauth_states", "audit_log", "sync_meetings", "sync_state", "sync_jobs",
                        "webhook_registrations", "webhook_inbox", "events", "script_versions", "script_activations"}) {
    const int64_t n = scalar(*from, std::string("SELECT COUNT(*) FROM ") + t);
    BOOST_TEST_INFO(t);
    BOOST_TEST(scalar(*to, std::string("SELECT COUNT(*) FROM ") + t) == n);
    BOOST_TEST(copied.output.find(std::string(t) + " ") != std::string::npos);
  }
  BOOST_TEST(scalar(*to, "SELECT COUNT(*) FROM integrations") == 2);
  BOOST_TEST(scalar(*to, "SELECT COUNT(*) FROM webhook_inbox WHERE body_segment IS NULL AND LENGTH(body) > 0") == 1);
  BOOST_TEST(copied.output.find("1 webhook bodies moved") != std::string::npos);
  BOOST_TEST(copied.output.find("1 text value(s) held a NUL") != std::string::npos);
  BOOST_TEST(scalar(*to, "SELECT COUNT(*) FROM sync_meetings WHERE title='Nul\xEF\xBF\xBDinside'") == 1);

  // A bridge on the PostgreSQL URL carries on where the single host stopped.
  const int64_t tokens_before = token_requests(sim);
  Host fleet(sim, {{"store", {{"url", pg}}}});
  auto token = fleet.bridge->access_token(bob, bob_id);
  BOOST_REQUIRE_MESSAGE(token.ok(), token.status().to_string());  // unsealed with the same key
  BOOST_TEST(*token == bob_token);
  BOOST_TEST(token_requests(sim) == tokens_before);  // no refresh, no reconnect
  BOOST_TEST(json::parse(fleet.bridge->sync_jobs_json(0, "", 50).value()) == jobs_before);
  BOOST_TEST(json::parse(fleet.bridge->script_versions_json("acme", 10).value()) == versions_before);
  // New rows get ids after the copied ones (the sequences were advanced).
  auto next = fleet.bridge->sync(bob, bob_id, {});
  BOOST_REQUIRE_MESSAGE(next.ok(), next.status().to_string());
  BOOST_TEST(json::parse(*next)["id"].get<int64_t>() == jobs_before[0]["id"].get<int64_t>() + 1);
  BOOST_TEST(json::parse(*next)["status"] == "succeeded");
  BOOST_TEST(scalar(*to, "SELECT COUNT(*) FROM sync_meetings WHERE integration_id=" + std::to_string(alice_id)) ==
             meetings_before);
  // The webhook route still accepts Fathom's deliveries; the one already received is a duplicate.
  BOOST_TEST(post_signed(fleet, hook_path, hook_secret, delivered_id, 1) == 200);
  BOOST_TEST(post_signed(fleet, hook_path, hook_secret, "msg_after_the_move", 424242) == 200);
  BOOST_TEST(eventually([&] {
    return json::parse(fleet.bridge->webhook_events_json("", alice_id, 10).value()).size() == 2u;
  }));
  BOOST_TEST(scalar(*to, "SELECT COUNT(*) FROM webhook_inbox WHERE webhook_id='" + delivered_id + "'") == 1);
  // The moved body is read back from its row.
  json events = json::parse(fleet.bridge->webhook_events_json("done", alice_id, 10).value());
  BOOST_TEST(events.size() >= 1u);
}

BOOST_AUTO_TEST_CASE(wrong_stores_are_refused_by_name) {
  TempDir dir;
  CommandResult missing = run_cli("store copy --from " + dir.file("nope.db") + " --to postgresql:///x");
  BOOST_TEST(missing.exit_code == 1);
  BOOST_TEST(missing.output.find("no SQLite store at " + dir.file("nope.db")) != std::string::npos);
  CommandResult to_file = run_cli("store copy --from " + dir.file("nope.db") + " --to " + dir.file("other.db"));
  BOOST_TEST(to_file.exit_code == 1);
  BOOST_TEST(to_file.output.find("--to must be a postgresql:// URL") != std::string::npos);
  // A mistyped scheme is named in the refusal without the URL's password.
  CommandResult typo = run_cli("store copy --from " + dir.file("nope.db") + " --to postgresq://fb:s3cret@db.internal/fb");
  BOOST_TEST(typo.exit_code == 1);
  BOOST_TEST(typo.output.find("postgresq://fb:***@db.internal/fb") != std::string::npos, typo.output);
  BOOST_TEST(typo.output.find("s3cret") == std::string::npos);
  CommandResult usage = run_cli("store copy --from " + dir.file("nope.db"));
  BOOST_TEST(usage.exit_code == 2);
}

BOOST_AUTO_TEST_SUITE_END()
