// The sidecar's operator routes over real parts: fathom-sim on loopback, a real SQLite file, the
// default scripts, Fathom's signed webhooks. /readyz with a stuck worker, /metrics checked by
// promtool and moving after real deliveries, /v1/openapi.json validated by a maintained npm
// validator and compared with the routes the server really registered.
#define BOOST_TEST_MODULE fb_ops
#include <boost/test/unit_test.hpp>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "bridge/bridge_impl.h"
#include "crypto/encoding.h"
#include "fathom_bridge/bridge.h"
#include "server/ops_routes.h"
#include "scripting/dry_run.h"
#include "server/sidecar.h"
#include "support/http.h"
#include "support/sim_process.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using nlohmann::json;
using namespace fb::test;

namespace {

// A CRM whose log_activity can be held, to make a webhook worker hang in a host call the way a
// CRM that never answers would.
class GateCrm {
 public:
  fb::Result<std::string> call(const fb::CrmCall& c) {
    if (c.operation == "log_activity") {
      std::unique_lock lock(mu_);
      ++waiting_;
      cv_.wait(lock, [&] { return open_; });
      --waiting_;
    }
    if (c.operation.rfind("find_", 0) == 0) return std::string("null");
    std::lock_guard lock(mu_);
    return json{{"id", c.operation + "_" + std::to_string(++seq_)}}.dump();
  }
  void close() {
    std::lock_guard lock(mu_);
    open_ = false;
  }
  void open() {
    {
      std::lock_guard lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  int waiting() {
    std::lock_guard lock(mu_);
    return waiting_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  int waiting_ = 0;
  int seq_ = 0;
};

// fathom-sim, a bridge with the default scripts on a temp store, its sidecar, and one user
// connected through OAuth (so Fathom's webhook is registered and deliveries are signed for real).
struct OpsEnv {
  int port = free_port();
  std::string base = "http://127.0.0.1:" + std::to_string(port);
  SimProcess sim{{"--meetings", "12", "--seed", "5", "--redirect-uri", base + "/oauth/callback"}};
  TempDir dir;
  std::string token = "ops-token";
  HeaderMap auth{{"Authorization", "Bearer " + token}};
  GateCrm crm;
  std::unique_ptr<fb::Bridge> bridge;
  std::unique_ptr<fb::detail::Sidecar> sidecar;
  int64_t integration_id = 0;

  explicit OpsEnv(int event_deadline_s = 300) {
    json cfg = {{"fathom", sim.fathom_settings(base + "/oauth/callback")},
                {"frontend", {{"url", base}}},
                {"tokens", {{"key", fb::detail::base64_encode(std::string(32, 'o'))}}},
                {"webhooks", {{"public_base_url", base}, {"event_deadline_s", event_deadline_s}}},
                {"store", {{store_key(dir.store("ops.db")), dir.store("ops.db")}}},
                {"scripts", {{"dir", std::string(FB_SOURCE_DIR) + "/scripts"}}},
                {"sync", {{"scheduler", false}}},
                {"server", {{"api_token", token}}},
                {"log_level", "warn"}};
    auto config = fb::parse_config(cfg.dump(), false);
    BOOST_REQUIRE_MESSAGE(config.ok(), config.status().to_string());
    auto opened = fb::Bridge::open(*config);
    BOOST_REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    bridge = std::move(*opened);
    for (const std::string& op : fb::detail::documented_crm_operations()) {
      BOOST_REQUIRE(bridge->register_crm_operation(op, [this](const fb::CrmCall& c) { return crm.call(c); }).ok());
    }
    auto started = fb::detail::Sidecar::start(*bridge, port);
    BOOST_REQUIRE_MESSAGE(started.ok(), started.status().to_string());
    sidecar = std::move(*started);
  }
  ~OpsEnv() {
    crm.open();
    if (sidecar) sidecar->stop();
  }

  void connect() {
    HttpReply start = http_post_json(base + "/v1/connect/start", {{"tenant_id", "acme"}, {"user_id", "u1"}}, auth);
    BOOST_REQUIRE_EQUAL(start.status, 200);
    std::string location = sim.authorize_as(start.json()["authorize_url"], "alice@example.com", "approve");
    BOOST_REQUIRE_EQUAL(http_get(location).status, 200);
    json health = http_get(base + "/v1/token-health?tenant_id=acme", auth).json();
    BOOST_REQUIRE_EQUAL(health.size(), 1u);
    integration_id = health[0]["integration_id"];
  }
  // A new meeting completes at Fathom, which signs and sends its webhook to the sidecar.
  int64_t complete_meeting() {
    json added = sim.admin("POST", "/_sim/meetings", {{"count", 1}, {"recorded_by", "alice@example.com"}});
    int64_t rec = added["recording_ids"][0];
    sim.admin("POST", "/_sim/meetings/" + std::to_string(rec) + "/complete");
    return rec;
  }
};

// The value of one sample ("name{labels} value") in a Prometheus text page; -1 when absent.
double sample(const std::string& page, const std::string& series) {
  std::istringstream in(page);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return -1;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(readiness)

BOOST_AUTO_TEST_CASE(a_worker_stuck_past_its_deadline_makes_the_sidecar_not_ready) {
  OpsEnv env(/*event_deadline_s=*/1);
  env.connect();
  HttpReply ready = http_get(env.base + "/readyz");
  BOOST_TEST_INFO(ready.body);
  BOOST_REQUIRE_EQUAL(ready.status, 200);
  json r = ready.json();
  BOOST_TEST(r["ready"] == true);
  BOOST_TEST(r["checks"]["store"]["ok"] == true);
  BOOST_TEST(r["checks"]["scripts"]["ok"] == true);
  BOOST_TEST(r["checks"]["workers"]["ok"] == true);
  BOOST_TEST(http_get(env.base + "/healthz").body == "ok");

  // The CRM stops answering: the worker mapping the webhook's meeting hangs in log_activity.
  env.crm.close();
  env.complete_meeting();
  BOOST_REQUIRE(eventually([&] { return env.crm.waiting() == 1; }));
  HttpReply stuck;
  BOOST_TEST(eventually([&] {
    stuck = http_get(env.base + "/readyz");
    return stuck.status == 503;
  }));
  BOOST_TEST_INFO(stuck.body);
  json s = stuck.json();
  BOOST_TEST(s["ready"] == false);
  BOOST_TEST(s["checks"]["workers"]["ok"] == false);
  BOOST_TEST(s["checks"]["workers"]["detail"].get<std::string>().find("webhooks.event_deadline_s") != std::string::npos);
  BOOST_TEST(s["checks"]["store"]["ok"] == true);
  BOOST_TEST(http_get(env.base + "/healthz").status == 200);  // alive all the same

  // The CRM answers again: the event completes and the sidecar is ready again.
  env.crm.open();
  BOOST_TEST(eventually([&] { return http_get(env.base + "/readyz").status == 200; }));
}

BOOST_AUTO_TEST_CASE(broken_scripts_make_it_not_ready) {
  TempDir scripts;
  std::ofstream(scripts.file("mapping.lua")) << "this is not lua";
  std::ofstream(scripts.file("reactions.lua")) << "return {}\n";
  OpsEnv env;
  // Point a second bridge at the broken scripts: it opens (scripts are reported, not fatal).
  fb::Config c = env.bridge->config();
  c.scripts.dir = scripts.path();
  const std::string own = env.dir.store("other.db");  // a store of its own, on the run's engine
  (store_key(own) == "url" ? c.store.url : c.store.path) = own;
  auto other = fb::Bridge::open(c, {.background = false});
  if (!other.ok()) {
    BOOST_TEST_MESSAGE("bridge refuses broken scripts at open: " << other.status().to_string());
    return;  // the refusal is the stronger form of "not ready"
  }
  fb::detail::Metrics metrics(**other);
  fb::detail::Readiness r = metrics.readiness();
  BOOST_TEST_INFO(r.to_json());
  BOOST_TEST(!r.ready);
  BOOST_TEST(json::parse(r.to_json())["checks"]["scripts"]["ok"] == false);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(metrics)

BOOST_AUTO_TEST_CASE(counters_move_after_real_deliveries_and_promtool_accepts_the_page) {
  OpsEnv env;
  env.connect();
  std::string before = http_get(env.base + "/metrics").body;
  BOOST_TEST(sample(before, R"(fathom_bridge_webhook_deliveries_total{outcome="accepted"})") == 0);

  // One real signed delivery, processed by a worker through the default mapping.
  env.complete_meeting();
  BOOST_REQUIRE(eventually([&] {
    json ev = http_get(env.base + "/v1/webhooks/events?status=done", env.auth).json();
    return ev.size() == 1;
  }));
  // One refused delivery (an unknown path token), and one sync through the Fathom API.
  BOOST_TEST(http_post_json(env.base + "/webhooks/fathom/not-a-token", {{"recording_id", 1}}).status == 404);
  json job = http_post_json(env.base + "/v1/sync",
                            {{"tenant_id", "acme"}, {"user_id", "u1"}, {"integration_id", env.integration_id}}, env.auth)
                 .json();
  BOOST_TEST(job["status"] == "succeeded");

  HttpReply page = http_get(env.base + "/metrics");
  BOOST_REQUIRE_EQUAL(page.status, 200);
  BOOST_TEST(page.header("Content-Type").find("text/plain; version=0.0.4") == 0);
  const std::string& m = page.body;
  BOOST_TEST_INFO(m);
  BOOST_TEST(sample(m, R"(fathom_bridge_webhook_deliveries_total{outcome="accepted"})") == 1);
  BOOST_TEST(sample(m, R"(fathom_bridge_webhook_events_total{outcome="processed"})") == 1);
  BOOST_TEST(sample(m, R"(fathom_bridge_webhook_events_total{outcome="dead"})") == 0);
  BOOST_TEST(sample(m, R"(fathom_bridge_webhook_deliveries_rejected_total{reason="unknown_endpoint"})") == 1);
  BOOST_TEST(sample(m, R"(fathom_bridge_webhook_deliveries_rejected_total{reason="bad_signature"})") == 0);
  BOOST_TEST(sample(m, R"(fathom_bridge_inbox_events{status="done"})") == 1);
  BOOST_TEST(sample(m, R"(fathom_bridge_inbox_events{status="pending"})") == 0);
  BOOST_TEST(sample(m, "fathom_bridge_inbox_oldest_pending_age_seconds") == 0);
  BOOST_TEST(sample(m, R"(fathom_bridge_integrations{status="active"})") == 1);
  BOOST_TEST(sample(m, R"(fathom_bridge_sync_jobs{status="succeeded"})") == 1);
  BOOST_TEST(sample(m, R"(fathom_bridge_fathom_api_calls_total{outcome="ok"})") >= 1);
  BOOST_TEST(sample(m, R"(fathom_bridge_script_calls_total{outcome="ok"})") >= 1);
  BOOST_TEST(sample(m, "fathom_bridge_webhook_ingest_duration_seconds_count") == 2);  // the good and the refused one
  BOOST_TEST(sample(m, R"(fathom_bridge_webhook_ingest_duration_seconds_bucket{le="+Inf"})") == 2);
  BOOST_TEST(sample(m, "fathom_bridge_webhook_processing_duration_seconds_count") == 1);
  BOOST_TEST(sample(m, "fathom_bridge_store_up") == 1);
  BOOST_TEST(m.find("sim-secret") == std::string::npos);

  // promtool (Debian's prometheus package) lints the page: names, types, help, histogram shape.
  std::string file = env.dir.file("metrics.txt");
  std::ofstream(file) << m;
  CommandResult lint = run_command("promtool check metrics < " + file + " 2>&1");
  BOOST_REQUIRE_MESSAGE(lint.ran && lint.exit_code != 127, "promtool is missing: ./run setup installs prometheus");
  BOOST_TEST_INFO(lint.output);
  BOOST_TEST(lint.exit_code == 0);
  // promtool does fail on a bad page (so the check above can fail).
  std::ofstream(file) << "# TYPE broken counter\nbroken{ 1\n";
  BOOST_TEST(run_command("promtool check metrics < " + file + " 2>&1").exit_code != 0);
}

BOOST_AUTO_TEST_CASE(a_budget_stop_is_counted_by_its_limit) {
  TempDir scripts;
  std::ofstream(scripts.file("mapping.lua")) << "function on_meeting(meeting, ctx) while true do end end\n"
                                              << "return { on_meeting = on_meeting }\n";
  std::ofstream(scripts.file("reactions.lua")) << "return {}\n";
  OpsEnv env;
  fb::Config c = env.bridge->config();
  c.scripts.dir = scripts.path();
  // Stopped by its instruction budget: a time budget this small would also cover loading the
  // scripts, which a thread kept off the CPU on a busy machine can overrun ("[load]").
  c.scripts.time_limit_ms = 10'000;
  c.scripts.instruction_limit = 1'000'000;
  const std::string own = env.dir.store("budget.db");  // a store of its own, on the run's engine
  (store_key(own) == "url" ? c.store.url : c.store.path) = own;
  auto other = fb::Bridge::open(c, {.background = false});
  BOOST_REQUIRE_MESSAGE(other.ok(), other.status().to_string());
  fb::detail::MeetingEvent ev;
  ev.integration_id = 1;
  ev.tenant_id = "acme";
  ev.user_id = "u1";
  ev.recording_id = 1;
  ev.raw_json = R"({"recording_id": 1, "title": "t"})";
  ev.source = "sync";
  fb::Status s = (*other)->impl().scripts->on_meeting(ev);
  BOOST_TEST(!s.ok());
  fb::detail::Metrics metrics(**other);
  std::string m = metrics.render();
  BOOST_TEST_INFO(m);
  BOOST_TEST(sample(m, R"(fathom_bridge_script_budget_stops_total{limit="instructions"})") == 1);
  BOOST_TEST(sample(m, R"(fathom_bridge_script_budget_stops_total{limit="time"})") == 0);
  BOOST_TEST(sample(m, R"(fathom_bridge_script_calls_total{outcome="error"})") == 1);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(openapi)

// "METHOD /path" for each route the server registered; a prefix route (the webhook receiver) is
// documented as its prefix plus its path parameter.
std::set<std::string> registered_routes(const fb::detail::Sidecar& sidecar) {
  std::set<std::string> out;
  for (const auto& r : sidecar.routes()) {
    std::string method = r.method;
    for (auto& ch : method) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    // A prefix route ending in "/" takes a path parameter (the webhook token); the event feed's
    // asynchronous routes are prefix-mounted but answer their exact path only.
    const bool param = r.prefix && !r.path.empty() && r.path.back() == '/';
    out.insert(method + " " + (param ? r.path + "{token}" : r.path));
  }
  return out;
}

std::set<std::string> documented_routes(const json& doc) {
  std::set<std::string> out;
  for (const auto& [path, item] : doc["paths"].items()) {
    for (const auto& [method, op] : item.items()) {
      if (method == "parameters" || method == "summary" || method == "description") continue;
      out.insert(method + " " + path);
    }
  }
  return out;
}

BOOST_AUTO_TEST_CASE(the_document_is_valid_served_and_covers_every_registered_route) {
  OpsEnv env;
  const std::string path = std::string(FB_SOURCE_DIR) + "/plugin/server/openapi.json";
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  json doc = json::parse(text.str());

  // Served as kept in the repository, behind the /v1 token.
  BOOST_TEST(http_get(env.base + "/v1/openapi.json").status == 401);
  HttpReply served = http_get(env.base + "/v1/openapi.json", env.auth);
  BOOST_REQUIRE_EQUAL(served.status, 200);
  BOOST_TEST(served.json() == doc);

  // Every registered route is documented, and every documented route is registered.
  std::set<std::string> registered = registered_routes(*env.sidecar);
  std::set<std::string> documented = documented_routes(doc);
  BOOST_TEST(registered.size() > 15u);
  for (const auto& r : registered) {
    BOOST_TEST_INFO("registered but not in openapi.json: " << r);
    BOOST_TEST(documented.count(r) == 1u);
  }
  for (const auto& d : documented) {
    BOOST_TEST_INFO("in openapi.json but not registered: " << d);
    BOOST_TEST(registered.count(d) == 1u);
  }

  // A maintained validator (tests/openapi/package.json, installed by ./run test) accepts it.
  const std::string dir = std::string(FB_SOURCE_DIR) + "/tests/openapi";
  CommandResult ok = run_command("cd " + dir + " && node validate.mjs " + path + " 2>&1");
  BOOST_TEST_INFO(ok.output);
  BOOST_REQUIRE_MESSAGE(ok.output.find("Cannot find package") == std::string::npos,
                        "run `npm ci` in tests/openapi (./run test does)");
  BOOST_TEST(ok.exit_code == 0);
  BOOST_TEST(ok.output.find("valid fathom-bridge sidecar") == 0);
  // ... and refuses a broken one: a response schema that points nowhere.
  json broken = doc;
  broken["paths"]["/healthz"]["get"]["responses"]["200"]["content"]["text/plain"]["schema"] = {
      {"$ref", "#/components/schemas/Nowhere"}};
  std::string broken_path = env.dir.file("broken.json");
  std::ofstream(broken_path) << broken.dump();
  BOOST_TEST(run_command("cd " + dir + " && node validate.mjs " + broken_path + " 2>&1").exit_code != 0);
}

BOOST_AUTO_TEST_SUITE_END()

// Stored script versions through the sidecar (issue 15): upload (a broken one refused with file and
// line), validate against the tenant's stored meetings, activate, list, roll back.
BOOST_AUTO_TEST_SUITE(script_versions)

BOOST_AUTO_TEST_CASE(upload_validate_activate_and_roll_back_over_http) {
  OpsEnv env;
  env.connect();
  json job = http_post_json(env.base + "/v1/sync",
                            {{"tenant_id", "acme"}, {"user_id", "u1"}, {"integration_id", env.integration_id},
                             {"mode", "backfill"}},
                            env.auth)
                 .json();
  BOOST_REQUIRE_MESSAGE(job.value("status", "") == "succeeded", job.dump());

  HttpReply broken = http_post_json(env.base + "/v1/scripts/versions",
                                    {{"tenant_id", "acme"},
                                     {"files", {{"mapping.lua", "function on_meeting(m, ctx)\n  x = = 1\nend\n"}}},
                                     {"author", "alice"}},
                                    env.auth);
  BOOST_TEST(broken.status == 422);
  BOOST_TEST(broken.body.find("upload/mapping.lua:2:") != std::string::npos, broken.body);

  std::string mapping = fb::test::read_file(std::string(FB_SOURCE_DIR) + "/scripts/mapping.lua");
  const std::string title = "title = text(meeting.title) or text(meeting.meeting_title) or \"Fathom meeting\",";
  BOOST_REQUIRE(mapping.find(title) != std::string::npos);
  mapping.replace(mapping.find(title), title.size(), "title = \"[Fathom] \" .. (text(meeting.title) or \"meeting\"),");
  HttpReply up = http_post_json(env.base + "/v1/scripts/versions",
                                {{"tenant_id", "acme"}, {"files", {{"mapping.lua", mapping}}}, {"author", "alice"},
                                 {"note", "activity titles"}},
                                env.auth);
  BOOST_REQUIRE_MESSAGE(up.status == 201, up.body);
  int64_t id = up.json()["id"];

  json report = http_post_json(env.base + "/v1/scripts/validate",
                               {{"tenant_id", "acme"}, {"version_id", id}, {"meetings", 5}}, env.auth)
                    .json();
  BOOST_TEST_MESSAGE(report["summary"].dump());
  BOOST_TEST(report["summary"]["meetings"].get<int>() == 5);
  // One activity per meeting with external invitees (the mapping skips internal ones), retitled.
  BOOST_TEST(report["summary"]["changed"].get<int>() >= 1);
  BOOST_TEST(report["summary"]["changed"] == report["summary"]["meetings_changed"]);
  BOOST_TEST(report["summary"]["added"].get<int>() == 0);
  BOOST_TEST(report["summary"]["removed"].get<int>() == 0);
  BOOST_TEST(report["running_version"].is_null());  // acme runs the folder until now
  for (const auto& m : report["meetings"]) {
    BOOST_REQUIRE(m["changed"].size() <= 1u);
    if (m["changed"].empty()) continue;
    BOOST_TEST(m["changed"][0]["operation"] == "log_activity");
    BOOST_TEST(m["changed"][0]["after"]["title"].get<std::string>().rfind("[Fathom] ", 0) == 0);
  }

  HttpReply act = http_post_json(env.base + "/v1/scripts/activate",
                                 {{"tenant_id", "acme"}, {"version_id", id}, {"author", "alice"}}, env.auth);
  BOOST_REQUIRE_MESSAGE(act.status == 200, act.body);
  BOOST_TEST(act.json()["version_id"].get<int64_t>() == id);
  json list = http_get(env.base + "/v1/scripts/versions?tenant_id=acme", env.auth).json();
  BOOST_REQUIRE(list.size() == 1u);
  BOOST_TEST(list[0]["active"].get<bool>());
  BOOST_TEST(list[0]["note"] == "activity titles");
  BOOST_TEST(http_get(env.base + "/v1/scripts/versions", env.auth).json().empty());  // the default has none

  HttpReply back = http_post_json(env.base + "/v1/scripts/rollback", {{"tenant_id", "acme"}, {"author", "alice"}}, env.auth);
  BOOST_REQUIRE_MESSAGE(back.status == 200, back.body);
  BOOST_TEST(back.json()["version_id"].is_null());  // acme is back on the folder's scripts
  BOOST_TEST(http_post_json(env.base + "/v1/scripts/rollback", {{"tenant_id", "acme"}}, env.auth).status == 409);
  BOOST_TEST(http_get(env.base + "/v1/scripts/versions", {}).status == 401);
}

BOOST_AUTO_TEST_SUITE_END()
