// The whole product over real parts: fathom-sim on loopback, a real SQLite file, the real default
// scripts, and the sidecar's HTTP routes as a host would call them.
#define BOOST_TEST_MODULE fb_e2e
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "bridge/bridge_impl.h"
#include "core/log.h"
#include "crypto/encoding.h"
#include "fathom_bridge/bridge.h"
#include "server/sidecar.h"
#include "support/http.h"
#include "support/sim_process.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using nlohmann::json;
using namespace fb::test;

namespace {


// A CRM that behaves like a real one: idempotency keys are honoured, and a record created twice
// for the same natural key is counted as a duplicate (which the scripts must never cause).
class TestCrm {
 public:
  fb::Result<std::string> call(const fb::CrmCall& c) {
    std::lock_guard lock(mu_);
    ++calls_;
    if (auto it = by_key_.find(c.idempotency_key); it != by_key_.end()) return it->second;
    json args = json::parse(c.args_json);
    json result;
    if (c.operation.rfind("find_", 0) == 0) {
      result = nullptr;
    } else {
      std::string natural = c.operation + ":" +
                            (args.contains("recording_id") ? args["recording_id"].dump() : "") +
                            args.value("email", "") + args.value("domain", "") + args.value("title", "") + "|" + args.value("kind", "");
      // A meeting mapped twice (by sync and by webhook) would log its activity twice. (Tasks with
      // the same title are allowed: the contract has hosts merge them.)
      if (c.operation == "log_activity") {
        if (!natural_.insert(natural).second) {
          ++duplicates_;
          BOOST_TEST_MESSAGE("duplicate CRM record: " << natural);
        }
      }
      records_[c.operation]++;
      result = {{"id", c.operation + "_" + std::to_string(++seq_)}};
    }
    by_key_[c.idempotency_key] = result.dump();
    return result.dump();
  }
  int records(const std::string& op) {
    std::lock_guard lock(mu_);
    return records_[op];
  }
  int duplicates() {
    std::lock_guard lock(mu_);
    return duplicates_;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::string> by_key_;
  std::set<std::string> natural_;
  std::map<std::string, int> records_;
  int calls_ = 0, seq_ = 0, duplicates_ = 0;
};



}  // namespace

BOOST_AUTO_TEST_CASE(connect_sync_webhook_disconnect_through_the_sidecar) {
  const int port = free_port();
  const std::string crm = "http://127.0.0.1:" + std::to_string(port);
  SimProcess sim({"--meetings", "40", "--seed", "11", "--redirect-uri", crm + "/oauth/callback"});
  TempDir dir;
  const std::string db_path = dir.store("bridge.db");
  const std::string api_token = "host-token-" + std::to_string(port);

  std::mutex log_mu;
  std::string logs;
  fb::detail::set_log_sink([&](fb::detail::LogLevel, std::string_view comp, std::string_view msg) {
    std::lock_guard lock(log_mu);
    logs.append(comp).append(": ").append(msg).append("\n");
  });

  json cfg = {{"fathom", sim.fathom_settings(crm + "/oauth/callback")},
              {"frontend", {{"url", crm}}},
              {"tokens", {{"key", fb::detail::base64_encode(std::string(32, 'e'))}}},
              {"webhooks", {{"public_base_url", crm}}},
              {"store", {{store_key(db_path), db_path}}},
              {"scripts", {{"dir", std::string(FB_SOURCE_DIR) + "/scripts"}}},
              {"sync", {{"scheduler", false}}},
              {"server", {{"api_token", api_token}}},
              {"log_level", "debug"}};
  auto config = fb::parse_config(cfg.dump(), false);
  BOOST_REQUIRE_MESSAGE(config.ok(), config.status().to_string());
  auto opened = fb::Bridge::open(*config);
  BOOST_REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
  fb::Bridge& bridge = **opened;
  TestCrm crm_records;
  // Every CRM operation must come inside a batch of its own thread (CrmBatchHooks).
  static thread_local int open_batch = 0;
  std::atomic<int> batches_begun{0}, batches_ended{0}, calls_outside_batch{0};
  BOOST_REQUIRE(bridge
                    .set_crm_batch_hooks({[&](size_t) {
                                            ++open_batch;
                                            batches_begun.fetch_add(1);
                                            return fb::Status::Ok();
                                          },
                                          [&](bool) {
                                            --open_batch;
                                            batches_ended.fetch_add(1);
                                            return fb::Status::Ok();
                                          }})
                    .ok());
  for (const char* op : {"find_company_by_domain", "find_contact_by_email", "find_deal", "upsert_company",
                         "upsert_contact", "log_activity", "create_task", "create_deal", "attach_recording"}) {
    BOOST_REQUIRE(bridge
                      .register_crm_operation(op,
                                              [&](const fb::CrmCall& c) {
                                                if (open_batch != 1) calls_outside_batch.fetch_add(1);
                                                return crm_records.call(c);
                                              })
                      .ok());
  }
  std::mutex ev_mu;
  std::vector<fb::Event> events;
  bridge.set_event_sink([&](const fb::Event& e) {
    std::lock_guard lock(ev_mu);
    events.push_back(e);
  });
  auto sidecar = fb::detail::Sidecar::start(bridge, port);
  BOOST_REQUIRE_MESSAGE(sidecar.ok(), sidecar.status().to_string());
  HeaderMap auth{{"Authorization", "Bearer " + api_token}};

  // Host routes refuse a caller without the bearer token.
  BOOST_TEST(http_post_json(crm + "/v1/connect/start", {{"tenant_id", "acme"}, {"user_id", "u1"}}).status == 401);

  // 1. Connect (popup): start over HTTP, consent at Fathom, the browser lands on our callback.
  HttpReply start = http_post_json(crm + "/v1/connect/start",
                                   {{"tenant_id", "acme"}, {"user_id", "u1"}, {"mode", "popup"}}, auth);
  BOOST_REQUIRE_EQUAL(start.status, 200);
  std::string location = sim.authorize_as(start.json()["authorize_url"], "alice@example.com", "approve");
  BOOST_REQUIRE(location.rfind(crm + "/oauth/callback?", 0) == 0);
  HttpReply page = http_get(location);
  BOOST_TEST(page.status == 200);
  BOOST_TEST(page.body.find("postMessage") != std::string::npos);
  BOOST_TEST_MESSAGE(page.body.substr(page.body.find("var origin"), 60));
  BOOST_TEST(page.body.find("var origin = \"" + crm + "\"") != std::string::npos);  // the frontend, never '*'
  BOOST_TEST(page.body.find("#5636D3") != std::string::npos);
  json health = http_get(crm + "/v1/token-health?tenant_id=acme", auth).json();
  BOOST_REQUIRE_EQUAL(health.size(), 1u);
  const int64_t id = health[0]["integration_id"];
  BOOST_TEST(health[0]["status"] == "valid");

  // 2. The Fathom webhook was registered on connect, pointing at our unguessable path.
  json hooks = sim.admin("GET", "/_sim/webhooks");
  json hook_list = hooks.is_array() ? hooks : hooks["webhooks"];
  BOOST_REQUIRE_EQUAL(hook_list.size(), 1u);
  std::string hook_url = hook_list[0]["url"];
  BOOST_TEST(hook_url.rfind(crm + "/webhooks/fathom/", 0) == 0);

  // 3. Backfill through the default mapping.
  HttpReply job = http_post_json(crm + "/v1/sync",
                                 {{"tenant_id", "acme"}, {"user_id", "u1"}, {"integration_id", id}, {"mode", "backfill"}}, auth);
  BOOST_REQUIRE_MESSAGE(job.status == 200, job.body);
  json j = job.json();
  BOOST_TEST(j["status"] == "succeeded");
  BOOST_TEST(j["meetings_new"].get<int>() > 0);
  BOOST_TEST(j["meetings_mapped"] == j["meetings_new"]);
  const int activities = crm_records.records("log_activity");
  BOOST_TEST(activities > 0);
  BOOST_TEST(crm_records.records("create_task") > 0);  // action items arrive with the list pages

  // 4. A new meeting completes: Fathom's signed webhook reaches the sidecar and is mapped.
  json added = sim.admin("POST", "/_sim/meetings", {{"count", 1}, {"recorded_by", "alice@example.com"}});
  const int64_t rec = added["recording_ids"][0];
  sim.admin("POST", "/_sim/meetings/" + std::to_string(rec) + "/complete");
  BOOST_TEST(eventually([&] { return crm_records.records("log_activity") == activities + 1; }));
  BOOST_TEST(eventually([&] {
    json ev = http_get(crm + "/v1/webhooks/events?status=done", auth).json();
    return ev.size() == 1 && ev[0]["recording_id"] == rec;
  }));

  // 5. Incremental with nothing new: one API call, the webhook's meeting is not mapped again.
  int64_t calls_before = sim.counters()["api_calls_total"];
  j = http_post_json(crm + "/v1/sync", {{"tenant_id", "acme"}, {"user_id", "u1"}, {"integration_id", id}}, auth).json();
  BOOST_TEST(j["status"] == "succeeded");
  BOOST_TEST(sim.counters()["api_calls_total"].get<int64_t>() - calls_before == 1);
  BOOST_TEST(crm_records.records("log_activity") == activities + 1);
  BOOST_TEST(crm_records.duplicates() == 0);
  BOOST_TEST(calls_outside_batch.load() == 0);
  BOOST_TEST(batches_begun.load() > 0);
  BOOST_TEST(batches_ended.load() == batches_begun.load());

  // 6. Another tenant cannot act on this integration.
  HttpReply foreign = http_post_json(crm + "/v1/access-token",
                                     {{"tenant_id", "globex"}, {"user_id", "u1"}, {"integration_id", id}}, auth);
  BOOST_TEST(foreign.status == 404);
  HttpReply own = http_post_json(crm + "/v1/access-token",
                                 {{"tenant_id", "acme"}, {"user_id", "u1"}, {"integration_id", id}}, auth);
  BOOST_REQUIRE_EQUAL(own.status, 200);
  const std::string access_token = own.json()["access_token"];
  const std::string webhook_secret = hook_list[0]["secret"];

  // 7. Disconnect deletes the Fathom webhook and the tokens.
  HttpReply disc = http_post_json(crm + "/v1/disconnect",
                                  {{"tenant_id", "acme"}, {"user_id", "u1"}, {"integration_id", id}}, auth);
  BOOST_TEST(disc.status == 200);
  json after = sim.admin("GET", "/_sim/webhooks");
  BOOST_TEST((after.is_array() ? after : after["webhooks"]).size() == 0u);
  BOOST_TEST(http_get(crm + "/v1/token-health?tenant_id=acme", auth).json()[0]["status"] == "disconnected");
  json feed = http_get(crm + "/v1/events?after=0", auth).json();
  bool saw_disconnect = false;
  for (const auto& e : feed["events"]) saw_disconnect = saw_disconnect || e["type"] == "disconnected";
  BOOST_TEST(saw_disconnect);

  (*sidecar)->stop();
  opened->reset();
  fb::detail::set_log_sink(nullptr);

  // 8. With debug logging on all along, no secret is in the logs or in the database files.
  std::string files = stored_bytes(db_path);
  BOOST_TEST(files.find("acme") != std::string::npos);  // the scan did read the rows
  for (const std::string& secret : {access_token, webhook_secret, std::string("sim-secret"), api_token}) {
    BOOST_TEST_INFO("secret of length " << secret.size());
    BOOST_TEST(files.find(secret) == std::string::npos);
    BOOST_TEST(logs.find(secret) == std::string::npos);
  }
  BOOST_TEST(logs.find("applied migration") != std::string::npos);  // the sink did capture the run
}

// crm_call_json builds the call by splicing the script's encoded arguments between the other
// fields instead of parsing and re-serialising them with nlohmann (issue 11: ~6 CRM calls per
// event). Checked against the library's own construction of the same object.
BOOST_AUTO_TEST_CASE(crm_call_json_is_the_same_document_as_a_json_library_builds) {
  const std::vector<std::string> args = {
      "{}",
      "[]",
      R"({"email":"bob@acme.test","name":"Bob \"the client\"","company_id":null})",
      R"({"title":"Zoë's \u00e9t\u00e9 \ud83d\ude00 plan","contact_ids":["ct:a","ct:b"],"n":-12.5e3,"ok":true})",
      R"({"nested":{"a":[1,2,{"b":"\\/\n\t\u0001"}]},"empty":{},"list":[]})",
  };
  for (const auto& a : args) {
    fb::CrmCall call;
    call.operation = "upsert_contact";
    call.args_json = a;
    call.idempotency_key = "webhook:1:42:v1:upsert_contact:\"quoted\"\n";
    call.integration_id = 9007199254740993;
    call.tenant_id = "tenant \u00e9\\";
    call.user_id = "u\t1";
    call.dry_run = a.size() % 2 == 0;
    call.script_version = static_cast<int64_t>(a.size() % 3) * 7;  // 0: the folder's scripts, null
    json expected = {{"operation", call.operation},         {"args", json::parse(a)},
                     {"idempotency_key", call.idempotency_key}, {"integration_id", call.integration_id},
                     {"tenant_id", call.tenant_id},           {"user_id", call.user_id},
                     {"dry_run", call.dry_run},
                     {"script_version", call.script_version ? json(call.script_version) : json(nullptr)}};
    std::string text = fb::detail::crm_call_json(call);
    json got = json::parse(text, nullptr, false);
    BOOST_TEST_INFO("args " << a << " gave " << text);
    BOOST_TEST(!got.is_discarded());
    BOOST_TEST(got == expected);
  }
  // Arguments that are not JSON (never produced by the script encoder) still give a valid call.
  fb::CrmCall bad;
  bad.operation = "x";
  bad.args_json = "";
  BOOST_TEST(json::parse(fb::detail::crm_call_json(bad))["args"] == json::object());
}
