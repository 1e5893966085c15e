// The host-facing surfaces as a host uses them, over real parts: fb::Bridge (C++), the sidecar's
// routes over HTTP, fathom-sim on loopback, a real SQLite file and the default scripts.
// Issue 10 points 7 (webhook routes), 9 (identifiers) and 17 (tenant scoping).
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <condition_variable>
#include <ctime>
#include <fstream>
#include <sstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "crypto/encoding.h"
#include "fathom_bridge/bridge.h"
#include "server/sidecar.h"
#include "e2e/host_fixture.h"
#include "support/http.h"
#include "support/sim_process.h"
#include "support/temp_dir.h"
#include "support/wait.h"
#include "webhooks/verifier.h"

using nlohmann::json;
using namespace fb::test;

BOOST_AUTO_TEST_SUITE(host)

// Point 9: a tenant id that is not UTF-8 is refused by every entry point, naming the field, and
// the all-tenant reports keep working.
BOOST_AUTO_TEST_CASE(identifiers_that_are_not_utf8_are_refused_and_reports_keep_working) {
  Host h;
  auto bad = h.bridge->connect_api_key({"\xff" "acme", "u1", ""}, h.sim.api_key("alice@example.com"));
  BOOST_TEST(bad.code() == fb::Code::kInvalidArgument);
  BOOST_TEST(bad.status().message() == "tenant_id is not valid UTF-8 (byte 0)");
  BOOST_TEST(h.bridge->connect_start({"acme", "u1\x7f", ""}, fb::ReturnMode::kPopup).code() ==
             fb::Code::kInvalidArgument);
  BOOST_TEST(h.bridge->token_health_json("\xff", "").code() == fb::Code::kInvalidArgument);
  h.connect("acme", "u1", "alice@example.com");
  auto all = h.bridge->token_health_json("", "");
  BOOST_REQUIRE_MESSAGE(all.ok(), all.status().to_string());
  BOOST_TEST(json::parse(*all).size() == 1u);

  HttpReply report = h.get("/v1/token-health");
  BOOST_TEST(report.status == 200);
  HttpReply bad_filter = h.get("/v1/token-health?tenant_id=%FF");
  BOOST_TEST(bad_filter.status == 400);
  BOOST_TEST(bad_filter.body.find("tenant_id is not valid UTF-8") != std::string::npos);
  HttpReply bad_sync = h.get("/v1/sync/jobs?tenant_id=%C0%AF");
  BOOST_TEST(bad_sync.status == 400);
  // JSON cannot carry invalid UTF-8, but it can carry a control character.
  HttpReply ctl = h.post("/v1/connect/api-key", {{"tenant_id", "ac\nme"}, {"user_id", "u2"}, {"api_key", "k"}});
  BOOST_TEST(ctl.status == 400);
  BOOST_TEST(ctl.body.find("tenant_id contains a control character") != std::string::npos);
}

// A sign-in link forwarded to another person: they approve at Fathom, and the callback arrives in
// their browser, where another CRM user is signed in. A host that serves the callback inside its
// own session passes that user (Bridge::connect_callback with signed_in, fb_connect_callback_as,
// POST /v1/connect/callback), and the state of someone else is refused and burnt: the forwarded
// link cannot connect the recipient's Fathom account to the sender's CRM user. Found by a strict
// peer: without the signed-in user, any browser completed any user's flow.
BOOST_AUTO_TEST_CASE(a_callback_brought_by_another_signed_in_user_is_refused) {
  // The sim's registered redirect URI: the test plays the browser and hands the query over itself.
  Host h(json{{"fathom", {{"redirect_uri", "http://127.0.0.1:8787/oauth/callback"}}}});
  const fb::Caller sender{"acme", "u-sender", ""}, recipient{"acme", "u-recipient", ""};
  auto query_for = [&](const fb::Caller& who) {
    auto start = h.bridge->connect_start(who, fb::ReturnMode::kRedirect);
    BOOST_REQUIRE_MESSAGE(start.ok(), start.status().to_string());
    std::string location = h.sim.authorize_as(start->authorize_url, "alice@example.com", "approve");
    return location.substr(location.find('?') + 1);
  };
  auto integrations = [&] { return json::parse(h.bridge->token_health_json("acme", "").value()).size(); };

  // C++: the sender's state in the recipient's session.
  const std::string forwarded = query_for(sender);
  fb::CallbackOutcome refused = h.bridge->connect_callback(forwarded, recipient);
  BOOST_TEST(!refused.ok);
  BOOST_TEST(refused.error == "state_foreign");
  BOOST_TEST((refused.code == fb::Code::kPermissionDenied));
  BOOST_TEST(refused.location.find("fathom=error") != std::string::npos, refused.location);
  BOOST_TEST(integrations() == 0u);
  // Burnt: the sender cannot use it afterwards either (nor can a caller that names nobody).
  BOOST_TEST(h.bridge->connect_callback(forwarded, sender).error == "state_used");
  BOOST_TEST(h.bridge->connect_callback(forwarded).error == "state_used");
  BOOST_TEST(integrations() == 0u);
  // The user's own flow in the user's own session connects.
  fb::CallbackOutcome own = h.bridge->connect_callback(query_for(recipient), recipient);
  BOOST_TEST(own.ok, own.error << " " << own.reason);
  BOOST_TEST(integrations() == 1u);

  // The sidecar, for a CRM that forwards its callback request with the signed-in user.
  HttpReply foreign = h.post("/v1/connect/callback", {{"tenant_id", "acme"}, {"user_id", "u-recipient"},
                                                     {"query", query_for(sender)}});
  BOOST_TEST(foreign.status == 200);
  BOOST_TEST(foreign.json()["ok"] == false);
  BOOST_TEST(foreign.json()["error"] == "state_foreign");
  HttpReply mine = h.post("/v1/connect/callback", {{"tenant_id", "acme"}, {"user_id", "u-sender"},
                                                  {"query", query_for(sender)}});
  BOOST_TEST(mine.json()["ok"] == true, mine.body);
  BOOST_TEST(!mine.json()["location"].get<std::string>().empty());
  BOOST_TEST(integrations() == 2u);
  BOOST_TEST(h.post("/v1/connect/callback", {{"tenant_id", "acme"}, {"user_id", "u-sender"}}).status == 400);
  BOOST_TEST(http_post_json(h.origin + "/v1/connect/callback",
                            {{"tenant_id", "acme"}, {"user_id", "u-sender"}, {"query", "code=x&state=y"}})
                 .status == 401);
}

// Point 17: the sidecar's API token is operator-wide (documented); sync/jobs and webhooks/events
// list every tenant without tenant_id and only that tenant's rows with it.
BOOST_AUTO_TEST_CASE(sync_jobs_and_webhook_events_are_scoped_by_tenant_id) {
  Host h;
  const int64_t acme = h.connect("acme", "u1", "alice@example.com");
  const int64_t globex = h.connect("globex", "u9", "carol@example.com");
  for (auto [tenant, user, id] : {std::tuple{"acme", "u1", acme}, std::tuple{"globex", "u9", globex}}) {
    HttpReply job = h.post("/v1/sync", {{"tenant_id", tenant}, {"user_id", user}, {"integration_id", id}});
    BOOST_REQUIRE_MESSAGE(job.status == 200, job.body);
  }
  json every = h.get("/v1/sync/jobs").json();
  BOOST_TEST(every.size() == 2u);
  json mine = h.get("/v1/sync/jobs?tenant_id=acme").json();
  BOOST_REQUIRE_EQUAL(mine.size(), 1u);
  BOOST_TEST(mine[0]["tenant_id"] == "acme");
  BOOST_TEST(h.get("/v1/sync/jobs?tenant_id=nobody").json().size() == 0u);
  // An integration of another tenant is not listed under this one.
  BOOST_TEST(h.get("/v1/sync/jobs?tenant_id=acme&integration_id=" + std::to_string(globex)).json().size() == 0u);

  // Webhook deliveries for both tenants (their API-key connections registered at Fathom).
  for (const char* who : {"alice@example.com", "carol@example.com"}) {
    json added = h.sim.admin("POST", "/_sim/meetings", {{"count", 1}, {"recorded_by", who}, {"complete", true}});
    BOOST_REQUIRE(added["recording_ids"].size() == 1u);
  }
  BOOST_REQUIRE(eventually([&] { return h.get("/v1/webhooks/events").json().size() == 2u; }));
  json events = h.get("/v1/webhooks/events?tenant_id=globex").json();
  BOOST_REQUIRE_EQUAL(events.size(), 1u);
  BOOST_TEST(events[0]["integration_id"] == globex);
  BOOST_TEST(h.get("/v1/webhooks/events?tenant_id=nobody").json().size() == 0u);
  auto cpp = h.bridge->webhook_events_json("", 0, 10, "acme");
  BOOST_REQUIRE(cpp.ok());
  BOOST_REQUIRE_EQUAL(json::parse(*cpp).size(), 1u);
  BOOST_TEST(json::parse(*cpp)[0]["integration_id"] == acme);
}

// A meeting a sync mapped before Fathom had written its summary (the summary endpoint answered
// 404, as for a meeting still being processed) gets it when Fathom's webhook brings the meeting
// with its summary: that copy carries strictly more than the stored one, so it is the meeting's
// next version and is mapped again, and the CRM's activity has the summary. A later delivery of
// the same copy maps nothing.
BOOST_AUTO_TEST_CASE(a_summary_that_comes_by_webhook_after_a_sync_mapped_the_meeting_reaches_the_crm) {
  Host h;
  std::vector<json> activities;
  BOOST_REQUIRE(h.bridge->register_crm_operation("log_activity", [&](const fb::CrmCall& c) -> fb::Result<std::string> {
    std::lock_guard lock(h.mu);
    activities.push_back(json::parse(c.args_json));
    return std::string(R"({"id":"act"})");
  }).ok());
  int64_t rec = 0;
  auto logged = [&] {  // the activities logged for rec
    std::lock_guard lock(h.mu);
    std::vector<json> out;
    for (const json& a : activities) {
      if (a.value("recording_id", int64_t{0}) == rec) out.push_back(a);
    }
    return out;
  };
  const int64_t id = h.connect("acme", "u1", "alice@example.com");
  // A meeting with an external invitee (the default mapping skips internal-only ones), not
  // completed yet: no webhook so far.
  json added = h.sim.admin("POST", "/_sim/meetings", {{"count", 6}, {"recorded_by", "alice@example.com"}});
  json full;
  for (const json& r : added["recording_ids"]) {
    full = h.sim.admin("GET", "/_sim/meetings/" + std::to_string(r.get<int64_t>()));
    if (full["calendar_invitees_domains_type"] == "one_or_more_external") {
      rec = r.get<int64_t>();
      break;
    }
  }
  BOOST_REQUIRE_MESSAGE(rec != 0, "the simulator made no meeting with an external invitee");
  const std::string summary = full["default_summary"]["markdown_formatted"].get<std::string>();
  BOOST_REQUIRE(!summary.empty());

  const std::string summary_path = "/external/v1/recordings/" + std::to_string(rec) + "/summary";
  h.sim.admin("POST", "/_sim/faults", {{"status", 404}, {"count", 5}, {"path_prefix", summary_path}});
  fb::SyncRequest backfill;
  backfill.mode = "backfill";
  auto job = h.bridge->sync({"acme", "u1", ""}, id, backfill);
  BOOST_REQUIRE_MESSAGE(job.ok(), job.status().to_string());
  BOOST_REQUIRE_MESSAGE(json::parse(*job)["status"] == "succeeded", *job);
  BOOST_REQUIRE_EQUAL(logged().size(), 1u);
  BOOST_TEST(logged()[0].value("summary", json()).is_null());  // Fathom had none to give
  BOOST_TEST(h.sim.counters()["api_statuses"].value("404", 0) >= 1);
  h.sim.admin("DELETE", "/_sim/faults");

  // Fathom finishes the meeting and delivers it with its summary.
  h.sim.admin("POST", "/_sim/meetings/" + std::to_string(rec) + "/complete");
  BOOST_REQUIRE(eventually([&] { return logged().size() == 2u; }));
  BOOST_TEST(logged()[1]["recording_id"] == rec);
  BOOST_TEST(logged()[1]["summary"] == summary);

  // The same copy again (a second completion: a new delivery) is not a new version.
  h.sim.admin("POST", "/_sim/meetings/" + std::to_string(rec) + "/complete");
  BOOST_REQUIRE(eventually([&] { return h.get("/v1/webhooks/events?status=done").json().size() == 2u; }));
  BOOST_TEST(logged().size() == 2u);
}

// Point 7: an API-key connection registers its webhook through Fathom's API like an OAuth one
// when a public URL is configured, and Fathom's deliveries for it are received and mapped.
BOOST_AUTO_TEST_CASE(api_key_connections_register_their_webhook_through_the_api) {
  Host h;
  const int64_t id = h.connect("acme", "u1", "alice@example.com");
  json hooks = h.sim.admin("GET", "/_sim/webhooks");
  BOOST_REQUIRE_EQUAL(hooks.size(), 1u);
  BOOST_TEST(hooks[0]["owner"] == "alice@example.com");
  auto routes = h.bridge->webhook_routes({"acme", "u1", ""}, 0);
  BOOST_REQUIRE(routes.ok());
  BOOST_REQUIRE_EQUAL(routes->size(), 1u);
  BOOST_TEST((*routes)[0].source == "api");
  BOOST_TEST((*routes)[0].integration_id == id);
  BOOST_TEST((*routes)[0].url == hooks[0]["url"].get<std::string>());
  BOOST_TEST((*routes)[0].fathom_webhook_id == hooks[0]["id"].get<std::string>());
  // A second connect of the same user keeps the one webhook.
  h.connect("acme", "u1", "alice@example.com");
  BOOST_TEST(h.sim.admin("GET", "/_sim/webhooks").size() == 1u);

  h.sim.admin("POST", "/_sim/meetings", {{"count", 1}, {"recorded_by", "alice@example.com"}, {"complete", true}});
  BOOST_TEST(eventually([&] { return h.get("/v1/webhooks/events?status=done").json().size() == 1u; }));

  // Removing the route deletes the webhook at Fathom too.
  BOOST_REQUIRE(h.bridge->remove_webhook_route({"acme", "u1", ""}, (*routes)[0].id).ok());
  BOOST_TEST(h.sim.admin("GET", "/_sim/webhooks").size() == 0u);
  // ... and it can be registered again by hand through the API.
  auto again = h.bridge->register_webhook_route({"acme", "u1", ""}, id);
  BOOST_REQUIRE_MESSAGE(again.ok(), again.status().to_string());
  BOOST_TEST(again->source == "api");
  BOOST_TEST(h.sim.admin("GET", "/_sim/webhooks").size() == 1u);
}

// Point 7, over the sidecar's HTTP routes: a webhook made by hand in Fathom's settings. The route
// comes first (Fathom asks for the URL), then the secret Fathom shows; Fathom's deliveries land.
// Rotation keeps the previous secret for the grace period; removal refuses later deliveries.
// Secrets are never in an answer, and sealed in the database.
BOOST_AUTO_TEST_CASE(a_hand_made_webhook_secret_and_its_rotation_over_the_sidecar) {
  Host h(json{{"webhooks", {{"public_base_url", nullptr}}}});  // no API registration on connect
  const int64_t id = h.connect("globex", "u9", "carol@example.com");
  BOOST_TEST(h.sim.admin("GET", "/_sim/webhooks").size() == 0u);

  HttpReply bad = h.post("/v1/webhooks/routes",
                         {{"tenant_id", "globex"}, {"user_id", "u9"}, {"integration_id", id}, {"secret", "whsec_??nope??"}});
  BOOST_TEST(bad.status == 400);
  BOOST_TEST(bad.body.find("??nope??") == std::string::npos);
  HttpReply foreign = h.post("/v1/webhooks/routes", {{"tenant_id", "acme"}, {"user_id", "u9"}, {"integration_id", id}});
  BOOST_TEST(foreign.status == 404);

  HttpReply added = h.post("/v1/webhooks/routes", {{"tenant_id", "globex"}, {"user_id", "u9"}, {"integration_id", id}});
  BOOST_REQUIRE_MESSAGE(added.status == 200, added.body);
  json route = added.json();
  BOOST_TEST(route["source"] == "manual");
  const std::string path = route["path"];
  const int64_t route_id = route["id"];
  BOOST_TEST(path.rfind("/webhooks/fathom/", 0) == 0);

  // The user makes the webhook in Fathom's settings with that URL; Fathom shows the secret.
  json made = h.sim.admin("POST", "/_sim/webhooks", {{"owner", "carol@example.com"}, {"destination_url", h.origin + path}});
  const std::string first = made["secret"];
  BOOST_TEST(post_signed(h, path, first, "msg_before_secret", 1) == 401);  // no secret set yet
  HttpReply set = h.post("/v1/webhooks/routes/rotate",
                         {{"tenant_id", "globex"}, {"user_id", "u9"}, {"route_id", route_id}, {"secret", first}});
  BOOST_REQUIRE_MESSAGE(set.status == 200, set.body);
  BOOST_TEST(set.body.find(first) == std::string::npos);

  // Fathom's own delivery, signed with the hand-made secret.
  h.sim.admin("POST", "/_sim/meetings", {{"count", 1}, {"recorded_by", "carol@example.com"}, {"complete", true}});
  BOOST_REQUIRE(eventually([&] { return h.get("/v1/webhooks/events?tenant_id=globex").json().size() == 1u; }));

  // The user regenerates the secret in Fathom and gives us the new one.
  const std::string second = h.sim.admin("POST", "/_sim/webhooks/" + made["id"].get<std::string>() + "/rotate")["secret"];
  HttpReply rotated = h.post("/v1/webhooks/routes/rotate",
                             {{"tenant_id", "globex"}, {"user_id", "u9"}, {"route_id", route_id}, {"secret", second}});
  BOOST_REQUIRE_MESSAGE(rotated.status == 200, rotated.body);
  const int64_t grace_end = rotated.json()["previous_secret_expires_at"];
  BOOST_TEST(grace_end > std::time(nullptr) + 23 * 3600);  // webhooks.secret_grace_s: 24 h by default
  // A delivery Fathom signed before the change (a retry) still lands, as do new ones.
  BOOST_TEST(post_signed(h, path, first, "msg_signed_before_rotation", 777001) == 200);
  h.sim.admin("POST", "/_sim/meetings", {{"count", 1}, {"recorded_by", "carol@example.com"}, {"complete", true}});
  BOOST_TEST(eventually([&] { return h.get("/v1/webhooks/events?tenant_id=globex").json().size() == 3u; }));
  BOOST_TEST(post_signed(h, path, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_wrong", 777002) == 401);

  HttpReply listed = h.get("/v1/webhooks/routes?tenant_id=globex&user_id=u9");
  BOOST_REQUIRE_EQUAL(listed.json().size(), 1u);
  BOOST_TEST(listed.body.find("whsec_") == std::string::npos);
  BOOST_TEST(h.get("/v1/webhooks/routes?tenant_id=acme&user_id=u9").json().size() == 0u);

  HttpReply removed = h.post("/v1/webhooks/routes/remove", {{"tenant_id", "globex"}, {"user_id", "u9"}, {"route_id", route_id}});
  BOOST_TEST(removed.status == 200);
  BOOST_TEST(post_signed(h, path, second, "msg_after_removal", 777003) == 404);

  std::string files = stored_bytes(h.dir.store("host.db"));
  BOOST_TEST(files.find("globex") != std::string::npos);  // the scan did read the rows
  BOOST_TEST(files.find(first) == std::string::npos);
  BOOST_TEST(files.find(second) == std::string::npos);
}

// Point 7: the previous secret is accepted only for webhooks.secret_grace_s.
BOOST_AUTO_TEST_CASE(the_previous_secret_is_refused_once_the_grace_period_is_over) {
  Host h(json{{"webhooks", {{"public_base_url", nullptr}, {"secret_grace_s", 0}}}});
  const int64_t id = h.connect("acme", "u1", "alice@example.com");
  const fb::Caller me{"acme", "u1", ""};
  auto route = h.bridge->add_webhook_route(me, id, "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY");
  BOOST_REQUIRE_MESSAGE(route.ok(), route.status().to_string());
  BOOST_TEST(post_signed(h, route->path, "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY", "msg_1", 1) == 200);
  auto rotated = h.bridge->rotate_webhook_secret(me, route->id, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  BOOST_REQUIRE(rotated.ok());
  BOOST_TEST(post_signed(h, route->path, "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY", "msg_2", 2) == 401);
  BOOST_TEST(post_signed(h, route->path, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_3", 3) == 200);
  BOOST_TEST(h.bridge->rotate_webhook_secret({"globex", "u1", ""}, route->id, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                 .code() == fb::Code::kNotFound);
  BOOST_TEST(h.bridge->rotate_webhook_secret(me, route->id, "").code() == fb::Code::kInvalidArgument);
}

// Issue 14 "The CLI and long work", in the sidecar: a sync started with "async" answers 202 at
// once, is watched through /v1/sync/job (progress, API budget), cancelled at a page boundary
// through /v1/sync/cancel, and the next start resumes its checkpoint; the host hears
// sync_cancelled, then sync_completed. A second start while one runs is a conflict; another user
// sees no such job.
BOOST_AUTO_TEST_CASE(an_async_sync_is_watched_and_cancelled_through_the_sidecar) {
  Host h(json::object(), {"--meetings", "30", "--seed", "4", "--page-size", "1", "--latency", "100"});
  std::mutex mu;
  std::vector<std::string> types;
  h.bridge->set_event_sink([&](const fb::Event& e) {
    std::lock_guard lock(mu);
    types.push_back(e.type);
  });
  const int64_t id = h.connect("acme", "u1", "alice@example.com");
  const json me = {{"tenant_id", "acme"}, {"user_id", "u1"}};
  json start = me;
  start["integration_id"] = id;
  start["mode"] = "backfill";
  start["async"] = true;
  HttpReply started = h.post("/v1/sync", start);
  BOOST_REQUIRE_MESSAGE(started.status == 202, started.body);
  json job = started.json();
  BOOST_TEST(job["status"] == "running");
  BOOST_TEST(job["progress"]["rate_limit"]["limit"] == 60);
  const int64_t job_id = job["id"];
  HttpReply twice = h.post("/v1/sync", start);
  BOOST_TEST(twice.status == 409);
  BOOST_TEST(twice.body.find("already running") != std::string::npos);

  json ask = me;
  ask["job_id"] = job_id;
  BOOST_REQUIRE(eventually([&] { return h.post("/v1/sync/job", ask).json()["progress"]["pages"].get<int64_t>() >= 3; }));
  json other = {{"tenant_id", "acme"}, {"user_id", "u2"}, {"job_id", job_id}};
  BOOST_TEST(h.post("/v1/sync/job", other).status == 404);
  BOOST_TEST(h.post("/v1/sync/cancel", other).status == 404);
  HttpReply cancel = h.post("/v1/sync/cancel", ask);
  BOOST_REQUIRE_MESSAGE(cancel.status == 202, cancel.body);
  BOOST_REQUIRE(eventually([&] { return h.post("/v1/sync/job", ask).json()["status"] == "cancelled"; }));
  json cancelled = h.post("/v1/sync/job", ask).json();
  BOOST_TEST(cancelled["progress"]["cancel_requested"] == true);
  BOOST_TEST(cancelled["pages"].get<int64_t>() < 30);
  HttpReply late = h.post("/v1/sync/cancel", ask);
  BOOST_TEST(late.status == 409);
  BOOST_TEST(late.body.find("not running") != std::string::npos);

  HttpReply again = h.post("/v1/sync", start);
  BOOST_REQUIRE_MESSAGE(again.status == 202, again.body);
  json resumed_ask = me;
  resumed_ask["job_id"] = again.json()["id"];
  BOOST_REQUIRE(eventually([&] { return h.post("/v1/sync/job", resumed_ask).json()["status"] != "running"; }, 60000));
  json resumed = h.post("/v1/sync/job", resumed_ask).json();
  BOOST_TEST(resumed["status"] == "succeeded");
  BOOST_TEST(resumed["resumed_job_id"] == job_id);
  BOOST_TEST(resumed["progress"]["covered"] == 1.0);
  BOOST_TEST(eventually([&] {
    std::lock_guard lock(mu);
    return std::count(types.begin(), types.end(), "sync_completed") == 1;
  }));
  std::lock_guard lock(mu);
  BOOST_TEST(std::count(types.begin(), types.end(), "sync_cancelled") == 1);
  BOOST_TEST(std::count(types.begin(), types.end(), "sync_failed") == 0);
}

// Point 1, end to end: a tenant's CRM operation that never returns (until the test lets it).
// Past webhooks.event_deadline_s the host is told once (worker_stuck in the durable feed, with the
// tenant, integration and inbox event), /metrics counts it, a replacement worker maps the other
// tenant's meetings meanwhile, and the stuck one finishes its own when the call returns.
BOOST_AUTO_TEST_CASE(a_crm_call_that_never_returns_is_reported_and_other_tenants_keep_flowing) {
  // No meetings at Fathom before: the connections' syncs make no CRM call, only the webhooks do.
  Host h(json{{"webhooks", {{"workers", 1}, {"event_deadline_s", 1}}}}, {"--meetings", "0", "--seed", "9"});
  struct Latch {
    std::mutex mu;
    std::condition_variable cv;
    bool armed = false;  // from the slow tenant's webhook on
    bool open = false;
    int blocked = 0;
  };
  auto latch = std::make_shared<Latch>();  // shared with the handlers, which the bridge keeps
  for (const char* op : kCrmOps) {
    BOOST_REQUIRE(h.bridge->register_crm_operation(op, [latch](const fb::CrmCall& c) -> fb::Result<std::string> {
      std::unique_lock lock(latch->mu);
      if (c.tenant_id == "slowco" && latch->armed) {
        ++latch->blocked;
        latch->cv.notify_all();
        latch->cv.wait(lock, [&] { return latch->open; });
      }
      return c.operation.rfind("find_", 0) == 0 ? std::string("null") : std::string(R"({"id":"x"})");
    }).ok());
  }
  auto release = [latch] {
    std::lock_guard lock(latch->mu);
    latch->open = true;
    latch->cv.notify_all();
  };
  const int64_t slow = h.connect("slowco", "u1", "alice@example.com");
  h.connect("fastco", "u2", "carol@example.com");
  {
    std::lock_guard lock(latch->mu);
    latch->armed = true;
  }
  h.sim.admin("POST", "/_sim/meetings", {{"count", 1}, {"recorded_by", "alice@example.com"}, {"complete", true}});
  {
    std::unique_lock lock(latch->mu);
    BOOST_REQUIRE(latch->cv.wait_for(lock, std::chrono::seconds(60), [&] { return latch->blocked > 0; }));
  }
  h.sim.admin("POST", "/_sim/meetings", {{"count", 2}, {"recorded_by", "carol@example.com"}, {"complete", true}});
  bool flowed = eventually([&] { return h.get("/v1/webhooks/events?status=done&tenant_id=fastco").json().size() == 2u; },
                           60000);
  // The replacement may map them before the report is in the feed: wait for it too.
  json stuck = json::array();
  eventually([&] {
    stuck = json::array();
    json feed = h.get("/v1/events?after=0&limit=1000").json();  // kept: the loop views into it
    for (const auto& e : feed["events"]) {
      // Only slowco's: with a 1 s deadline on the real clock, a replacement worker slowed down by a
      // loaded machine (a new Lua state, ASan) can be written off too while it maps fastco's.
      if (e["type"] == "worker_stuck" && e["tenant_id"] == "slowco") stuck.push_back(e);
    }
    return !stuck.empty();
  }, 60000);
  json slow_events = h.get("/v1/webhooks/events?tenant_id=slowco").json();
  std::string metrics = http_get(h.origin + "/metrics").body;
  // The call returns; then the stuck worker finishes its event (before the bridge goes away).
  release();
  BOOST_TEST(eventually([&] { return h.get("/v1/webhooks/events?status=done").json().size() == 3u; }, 60000));
  BOOST_TEST(flowed, "fastco's meetings were not mapped while slowco's CRM call was blocked");
  BOOST_REQUIRE_EQUAL(stuck.size(), 1u);
  BOOST_TEST(stuck[0]["tenant_id"] == "slowco");
  BOOST_TEST(stuck[0]["integration_id"] == slow);
  BOOST_REQUIRE_EQUAL(slow_events.size(), 1u);
  BOOST_TEST(stuck[0]["data"]["event_id"] == slow_events[0]["id"]);
  BOOST_TEST(stuck[0]["data"]["busy_s"].get<int64_t>() >= 1);
  // At least slowco's batch (see above: a slowed replacement may count too).
  const std::string counter = "\nfathom_bridge_webhook_workers_stuck_total ";  // the sample, not its # HELP
  const size_t at = metrics.find(counter);
  BOOST_REQUIRE(at != std::string::npos);
  BOOST_TEST(std::stoll(metrics.substr(at + counter.size())) >= 1, metrics.substr(at, 60));
}

BOOST_AUTO_TEST_SUITE_END()
