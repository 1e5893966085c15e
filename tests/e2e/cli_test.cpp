// The fathom-bridge command-line tool, run as a process the way operators and admins run it.
#include <sys/wait.h>

#include <httplib.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "crypto/encoding.h"
#include "fathom_bridge/bridge.h"
#include "store/db.h"
#include "webhooks/verifier.h"
#include "support/sim_process.h"
#include "support/temp_dir.h"
#include "support/wait.h"

namespace {

using Run = fb::test::CommandResult;

std::string cli_command(const std::string& args) {
  return std::string(FB_BINARY_DIR) + "/plugin/cli/fathom-bridge " + args + " 2>&1";
}

// On the test's thread only (Boost.Test's assertions are not thread-safe; from another thread run
// fb::test::run_command(cli_command(...)) and check `ran` after joining it).
Run run_cli(const std::string& args) {
  Run r = fb::test::run_command(cli_command(args));
  BOOST_REQUIRE(r.ran);
  return r;
}

std::string write_config(fb::test::TempDir& dir, const std::string& extra = "") {
  std::string path = dir.file("config.json");
  std::ofstream(path) << R"({"fathom": {"client_id": "cid", "client_secret": "cli-secret-value",
    "redirect_uri": "http://127.0.0.1:9/oauth/callback", "token_url": "http://127.0.0.1:9/t",
    "authorize_url": "http://127.0.0.1:9/a", "api_base": "http://127.0.0.1:9/external/v1"},
    "frontend": {"url": "http://127.0.0.1:9"},
    "tokens": {"key": ")" + fb::detail::base64_encode(std::string(32, 'c')) + R"("},
    "store": {")" + fb::test::store_key(dir.store("cli.db")) + R"(": ")" + dir.store("cli.db") + R"("},
    "scripts": {"dir": ")" + std::string(FB_SOURCE_DIR) + R"(/scripts"},
    "log_level": "error")" + extra + "}";
  return path;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(cli)

BOOST_AUTO_TEST_CASE(usage_errors_exit_2_with_the_reason) {
  Run none = run_cli("");
  BOOST_TEST(none.exit_code == 2);
  BOOST_TEST(none.output.find("usage: fathom-bridge") != std::string::npos);
  Run unknown = run_cli("frobnicate");
  BOOST_TEST(unknown.exit_code == 2);
  BOOST_TEST(unknown.output.find("unknown command 'frobnicate'") != std::string::npos);
  Run sync = run_cli("sync --tenant a --user b");
  BOOST_TEST(sync.exit_code == 2);
  BOOST_TEST(sync.output.find("--integration") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(status_and_jobs_on_a_fresh_store) {
  fb::test::TempDir dir;
  std::string cfg = write_config(dir);
  Run status = run_cli("status --config " + cfg);
  BOOST_TEST_INFO(status.output);
  BOOST_TEST(status.exit_code == 0);
  BOOST_TEST(status.output.find("STATUS") != std::string::npos);
  Run json = run_cli("status --json --config " + cfg);
  BOOST_TEST(json.exit_code == 0);
  BOOST_TEST(json.output.find("[]") != std::string::npos);
  Run jobs = run_cli("jobs --status failed --config " + cfg);
  BOOST_TEST(jobs.exit_code == 0);
  BOOST_TEST(jobs.output.find("mode") != std::string::npos);
  Run replay = run_cli("webhooks replay --config " + cfg);
  BOOST_TEST(replay.exit_code == 2);
  Run bad_id = run_cli("webhooks replay abc --config " + cfg);
  BOOST_TEST(bad_id.exit_code == 1);
  BOOST_TEST(bad_id.output.find("event id") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_bad_setting_is_named_and_the_secret_is_not_echoed) {
  fb::test::TempDir dir;
  Run r = run_cli("status --config " + write_config(dir, R"(, "sync": {"interval_s": "hourly"})"));
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.output.find("sync.interval_s") != std::string::npos);
  BOOST_TEST(r.output.find("cli-secret-value") == std::string::npos);
  Run missing = run_cli("status --config " + dir.file("nope.json"));
  BOOST_TEST(missing.exit_code == 1);
  BOOST_TEST(missing.output.find("nope.json") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(script_test_dry_runs_the_default_mapping) {
  std::string fixtures = std::string(FB_SOURCE_DIR) + "/tests/scripting/fixtures/";
  Run ok = run_cli("script test " + std::string(FB_SOURCE_DIR) + "/scripts/mapping.lua --meeting " + fixtures +
                   "mixed.json");
  BOOST_TEST_INFO(ok.output);
  BOOST_TEST(ok.exit_code == 0);
  BOOST_TEST(ok.output.find("log_activity") != std::string::npos);
  Run missing = run_cli("script test " + std::string(FB_SOURCE_DIR) + "/scripts/mapping.lua --meeting /nonexistent.json");
  BOOST_TEST(missing.exit_code == 2);
}

// Issue 10 point 9: a tenant id that is not UTF-8 is refused by name, and a row stored by an
// older version with such an id no longer aborts `status --json` (it is shown with U+FFFD).
BOOST_AUTO_TEST_CASE(a_tenant_id_that_is_not_utf8_is_refused_and_old_rows_do_not_abort_status) {
  fb::test::TempDir dir;
  std::string cfg = write_config(dir);
  BOOST_REQUIRE(run_cli("status --config " + cfg).exit_code == 0);  // creates the store
  // An old row with such an id can only exist in SQLite (PostgreSQL refuses invalid UTF-8 in text).
  if (!fb::test::store_engine_is_postgres()) {
    auto db = fb::detail::Db::open(dir.file("cli.db"));
    BOOST_REQUIRE(db.ok());
    BOOST_REQUIRE((*db)->exec("INSERT INTO integrations(tenant_id, user_id, kind, connected_at, created_at, updated_at)"
                              " VALUES(CAST(x'ff61636d65' AS TEXT), 'u1', 'api_key', 1, 1, 1)").ok());
  }
  Run report = run_cli("status --json --config " + cfg);
  BOOST_TEST_INFO(report.output);
  BOOST_TEST(report.exit_code == 0);
  if (!fb::test::store_engine_is_postgres()) BOOST_TEST(report.output.find("\xEF\xBF\xBD" "acme") != std::string::npos);
  Run table = run_cli("status --config " + cfg);
  BOOST_TEST(table.exit_code == 0);
  Run bad = run_cli("status --json --tenant $(printf '\\377') --config " + cfg);
  BOOST_TEST_INFO(bad.output);
  BOOST_TEST(bad.exit_code == 1);
  BOOST_TEST(bad.output.find("tenant_id is not valid UTF-8") != std::string::npos);
}

namespace {

// A config whose Fathom is the simulator, for commands that call it.
std::string write_sim_config(fb::test::TempDir& dir, const fb::test::SimProcess& sim, const std::string& extra = "") {
  std::string path = dir.file("sim-config.json");
  std::ofstream(path) << R"({"fathom": {"client_id": "sim-client", "client_secret": "sim-secret",
    "redirect_uri": "http://127.0.0.1:9/oauth/callback", "token_url": ")" + sim.token_url() + R"(",
    "authorize_url": ")" + sim.authorize_url() + R"(", "api_base": ")" + sim.api_base() + R"("},
    "frontend": {"url": "http://127.0.0.1:9"},
    "tokens": {"key": ")" + fb::detail::base64_encode(std::string(32, 'c')) + R"("},
    "store": {")" + fb::test::store_key(dir.store("cli.db")) + R"(": ")" + dir.store("cli.db") + R"("},
    "scripts": {"dir": ")" + std::string(FB_SOURCE_DIR) + R"(/scripts"},
    "sync": {"scheduler": false},
    "log_level": "error")" + extra + "}";
  return path;
}

// Connects an API-key integration in the config's store, as a host would; returns its id.
int64_t connect_api_key(const std::string& config_path, const std::string& tenant, const std::string& user,
                        const std::string& key) {
  auto config = fb::load_config(config_path);
  BOOST_REQUIRE_MESSAGE(config.ok(), config.status().to_string());
  auto bridge = fb::Bridge::open(*config, {.background = false});
  BOOST_REQUIRE_MESSAGE(bridge.ok(), bridge.status().to_string());
  auto id = (*bridge)->connect_api_key({tenant, user, ""}, key);
  BOOST_REQUIRE_MESSAGE(id.ok(), id.status().to_string());
  return *id;
}

// The JSON object a command printed (indented: from its first '{' to the first "}" line).
nlohmann::json printed_json(const std::string& output) {
  size_t at = output.find('{');
  size_t end = output.find("\n}", at);
  BOOST_REQUIRE_MESSAGE(at != std::string::npos && end != std::string::npos, "no JSON in: " + output);
  return nlohmann::json::parse(output.substr(at, end + 2 - at));
}

}  // namespace

// A CRM's operation endpoint (server.crm_url) on loopback: answers like a CRM, or refuses all.
class CrmEndpoint {
 public:
  CrmEndpoint() {
    server_.Post("/crm", [this](const httplib::Request& req, httplib::Response& res) {
      ++calls_;
      if (refuse_) {
        res.status = 500;
        return;
      }
      std::string op = nlohmann::json::parse(req.body).value("operation", "");
      res.set_content(op.rfind("find_", 0) == 0 ? "null" : R"({"id":"crm-1"})", "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    BOOST_REQUIRE(fb::test::eventually([&] { return server_.is_running(); }));
  }
  ~CrmEndpoint() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/crm"; }
  void refuse(bool r) { refuse_ = r; }
  int calls() const { return calls_; }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<bool> refuse_{false};
  std::atomic<int> calls_{0};
};

// Issue 10 point 16: `sync` in the CLI has no CRM. Without server.crm_url it refuses to map
// (exit 2, says why) instead of reporting `succeeded` while every meeting fails to map; a sync
// whose meetings fail to map exits 1 and its job says so with the counts.
BOOST_AUTO_TEST_CASE(sync_without_a_crm_refuses_and_a_sync_with_map_failures_exits_1) {
  fb::test::SimProcess sim({"--meetings", "12", "--seed", "3"});
  fb::test::TempDir dir;
  CrmEndpoint crm;
  crm.refuse(true);
  std::string cfg = write_sim_config(dir, sim);
  const int64_t id = connect_api_key(cfg, "acme", "u1", sim.api_key("alice@example.com"));
  const std::string who = " --tenant acme --user u1 --integration " + std::to_string(id);
  const int64_t calls = sim.counters()["api_calls_total"];

  Run no_crm = run_cli("sync" + who + " --mode backfill --config " + cfg);
  BOOST_TEST_INFO(no_crm.output);
  BOOST_TEST(no_crm.exit_code == 2);
  BOOST_TEST(no_crm.output.find("server.crm_url") != std::string::npos);
  BOOST_TEST(sim.counters()["api_calls_total"].get<int64_t>() == calls);  // nothing was paged

  std::string with_crm = write_sim_config(dir, sim, R"(, "server": {"crm_url": ")" + crm.url() + R"("})");
  Run failing = run_cli("sync" + who + " --mode backfill --json --config " + with_crm);
  BOOST_TEST_INFO(failing.output);
  BOOST_TEST(failing.exit_code == 1);
  nlohmann::json job = printed_json(failing.output);
  BOOST_TEST(job["status"] == "succeeded_with_errors");
  BOOST_TEST(job["meetings_new"].get<int64_t>() > 0);
  BOOST_TEST(job["map_failures"].get<int64_t>() > 0);
  BOOST_TEST(crm.calls() > 0);  // the scripts' calls did reach the CRM

  crm.refuse(false);
  Run ok = run_cli("sync" + who + " --mode backfill --json --config " + with_crm);
  BOOST_TEST_INFO(ok.output);
  BOOST_TEST(ok.exit_code == 0);
  BOOST_TEST(printed_json(ok.output)["status"] == "succeeded");

  Run not_mine = run_cli("sync --tenant acme --user u2 --integration " + std::to_string(id) + " --config " + with_crm);
  BOOST_TEST(not_mine.exit_code == 1);
}

// Issue 10 point 7, from the command line: routes for webhooks made by hand in Fathom's settings,
// with the secret read from a file (never an argument), rotation and removal. The deliveries are
// checked by a host opening the same store.
BOOST_AUTO_TEST_CASE(webhook_routes_with_a_hand_made_secret_from_the_command_line) {
  fb::test::SimProcess sim({"--meetings", "2"});
  fb::test::TempDir dir;
  std::string cfg = write_sim_config(dir, sim, R"(, "webhooks": {"public_base_url": "http://127.0.0.1:9"})");
  const int64_t id = connect_api_key(cfg, "acme", "u1", sim.api_key("alice@example.com"));
  const std::string who = " --tenant acme --user u1 --config " + cfg;
  const std::string first = "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY", second = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  std::ofstream(dir.file("first")) << first << "\n";
  std::ofstream(dir.file("second")) << "  " << second << "\n";
  std::ofstream(dir.file("bad")) << "whsec_%%not-base64%%\n";

  Run listed = run_cli("webhooks routes" + who);  // the API-key connection registered one at Fathom
  BOOST_TEST_INFO(listed.output);
  BOOST_REQUIRE(listed.exit_code == 0);
  BOOST_TEST(printed_json("{\"r\": " + listed.output + "\n}")["r"].size() == 1u);
  BOOST_TEST(listed.output.find("\"source\": \"api\"") != std::string::npos);

  Run bad = run_cli("webhooks add --integration " + std::to_string(id) + " --secret-file " + dir.file("bad") + who);
  BOOST_TEST(bad.exit_code == 1);
  BOOST_TEST(bad.output.find("not-base64") == std::string::npos);
  BOOST_TEST(run_cli("webhooks add --secret-file " + dir.file("first") + who).exit_code == 2);  // no --integration

  Run added = run_cli("webhooks add --integration " + std::to_string(id) + " --secret-file " + dir.file("first") + who);
  BOOST_TEST_INFO(added.output);
  BOOST_REQUIRE(added.exit_code == 0);
  BOOST_TEST(added.output.find("whsec_") == std::string::npos);
  nlohmann::json route = printed_json(added.output);
  BOOST_TEST(route["source"] == "manual");
  const std::string path = route["path"], route_id = std::to_string(route["id"].get<int64_t>());

  Run rotated = run_cli("webhooks rotate " + route_id + " --secret-file " + dir.file("second") + who);
  BOOST_TEST_INFO(rotated.output);
  BOOST_REQUIRE(rotated.exit_code == 0);
  BOOST_TEST(printed_json(rotated.output)["previous_secret_expires_at"].is_number());
  BOOST_TEST(run_cli("webhooks rotate " + route_id + " --secret-file " + dir.file("second") +
                     " --tenant globex --user u1 --config " + cfg).exit_code == 1);  // not theirs

  {  // The host receives: the new secret and, during the grace period, the old one.
    auto config = fb::load_config(cfg);
    BOOST_REQUIRE(config.ok());
    auto bridge = fb::Bridge::open(*config, {.background = false});
    BOOST_REQUIRE(bridge.ok());
    auto deliver = [&](const std::string& secret, const std::string& msg) {
      auto key = fb::detail::SigningKey::from_secret(fb::detail::SecretString(secret));
      std::string body = R"({"recording_id":42,"title":"t"})", ts = std::to_string(std::time(nullptr));
      return (*bridge)->receive_webhook(path, {{"webhook-id", msg}, {"webhook-timestamp", ts},
                                               {"webhook-signature", key->sign(msg, ts, body)}}, body).http_status;
    };
    BOOST_TEST(deliver(second, "msg_new") == 200);
    BOOST_TEST(deliver(first, "msg_old") == 200);
    BOOST_TEST(deliver("whsec_x6EV6NIAAz3ldclszNJTwrow", "msg_other") == 401);
  }

  BOOST_TEST(run_cli("webhooks remove " + route_id + who).exit_code == 0);
  Run after = run_cli("webhooks routes" + who);
  BOOST_TEST(after.output.find(path) == std::string::npos);
  BOOST_TEST(run_cli("webhooks remove " + route_id + who).exit_code == 1);
}


namespace {

// The sync jobs of a store, read the way an operator's query would: (id, status, pages).
struct JobRow {
  int64_t id = 0;
  std::string status;
  int64_t pages = 0;
};
std::vector<JobRow> job_rows(const std::string& db_path) {
  std::vector<JobRow> out;
  auto db = fb::detail::Db::open(db_path);
  BOOST_REQUIRE_MESSAGE(db.ok(), db.status().to_string());
  fb::Status s = (*db)->with([&]() -> fb::Status {
    fb::detail::Stmt& q = (*db)->prepare("SELECT id, status, pages FROM sync_jobs ORDER BY id");
    return fb::detail::each_row(q, [&](fb::detail::Stmt& r) { out.push_back({r.int64(0), r.text(1), r.int64(2)}); });
  });
  BOOST_REQUIRE_MESSAGE(s.ok(), s.to_string());
  return out;
}

}  // namespace

// Issue 14 "The CLI and long work": a long sync against a tight rate limit (Fathom allows 3 calls
// a second and lists one meeting a page) is started, watched from a second process, and
// cancelled from a third at a page boundary; the cancelled run keeps its checkpoint, and the next
// run resumes there and maps the rest, each meeting once.
BOOST_AUTO_TEST_CASE(a_long_sync_is_started_watched_and_cancelled_from_other_processes) {
  fb::test::SimProcess sim({"--meetings", "24", "--seed", "9", "--page-size", "1", "--rate-limit", "3",
                            "--rate-window", "1"});
  fb::test::TempDir dir;
  CrmEndpoint crm;
  std::string cfg = write_sim_config(dir, sim, R"(, "server": {"crm_url": ")" + crm.url() + R"("})");
  const int64_t id = connect_api_key(cfg, "acme", "u1", sim.api_key("alice@example.com"));
  const std::string who = " --tenant acme --user u1";
  const std::string db = dir.store("cli.db");

  Run sync, watch;
  std::thread syncing([&] { sync = fb::test::run_command(cli_command("sync" + who + " --integration " + std::to_string(id) +
                                                                     " --mode backfill --json --config " + cfg)); });
  int64_t job = 0;
  BOOST_REQUIRE(fb::test::eventually([&] {
    for (const JobRow& r : job_rows(db)) if (r.status == "running" && r.pages >= 1) job = r.id;
    return job != 0;
  }, 30000));
  const std::string job_arg = " --job " + std::to_string(job) + who + " --config " + cfg;
  std::thread watching([&] { watch = fb::test::run_command(cli_command("sync watch" + job_arg)); });
  BOOST_REQUIRE(fb::test::eventually([&] {
    for (const JobRow& r : job_rows(db)) if (r.id == job && r.pages >= 4) return true;
    return false;
  }, 30000));
  Run cancel = run_cli("sync cancel" + job_arg);
  BOOST_TEST_INFO(cancel.output);
  BOOST_TEST(cancel.exit_code == 0);
  BOOST_TEST(cancel.output.find("cancel requested") != std::string::npos);
  syncing.join();
  watching.join();
  BOOST_REQUIRE(sync.ran && watch.ran);

  BOOST_TEST_INFO(sync.output);
  BOOST_TEST(sync.exit_code == 3);  // cancelled
  nlohmann::json cancelled = printed_json(sync.output);
  BOOST_TEST(cancelled["status"] == "cancelled");
  BOOST_TEST(cancelled["progress"]["cancel_requested"] == true);
  BOOST_TEST(cancelled["error_details"]["checkpoint_kept"] == true);
  const int64_t done_pages = cancelled["pages"].get<int64_t>();
  BOOST_TEST(done_pages >= 4);
  BOOST_TEST(done_pages < 24);
  // The watcher (not a terminal) wrote progress lines with the API budget, then the same end.
  BOOST_TEST_INFO(watch.output);
  BOOST_TEST(watch.exit_code == 3);
  BOOST_TEST(watch.output.find("sync job " + std::to_string(job) + ": running, ") != std::string::npos);
  BOOST_TEST(watch.output.find("API calls left") != std::string::npos);
  BOOST_TEST(watch.output.find("sync job " + std::to_string(job) + " cancelled") != std::string::npos);
  // A job that has ended cannot be cancelled again; another user does not see it at all.
  Run again = run_cli("sync cancel" + job_arg);
  BOOST_TEST(again.exit_code == 1);
  BOOST_TEST(again.output.find("not running (it is cancelled)") != std::string::npos);
  Run stranger = run_cli("sync watch --job " + std::to_string(job) + " --tenant acme --user u2 --config " + cfg);
  BOOST_TEST(stranger.exit_code == 1);
  BOOST_TEST(stranger.output.find("no sync job") != std::string::npos);

  // The next run resumes at the checkpoint and maps the rest.
  Run rest = run_cli("sync" + who + " --integration " + std::to_string(id) + " --mode backfill --json --config " + cfg);
  BOOST_TEST_INFO(rest.output);
  BOOST_TEST(rest.exit_code == 0);
  nlohmann::json resumed = printed_json(rest.output);
  BOOST_TEST(resumed["status"] == "succeeded");
  BOOST_TEST(resumed["resumed_job_id"] == job);
  // Every meeting of the backfill window listed once over the two runs: nothing listed twice, none skipped.
  int64_t stored = 0;
  {
    auto store = fb::detail::Db::open(db);
    BOOST_REQUIRE(store.ok());
    fb::Status s = (*store)->with([&]() -> fb::Status {
      fb::detail::Stmt& q = (*store)->prepare("SELECT COUNT(*) FROM sync_meetings WHERE integration_id=?");
      q.bind(1, id);
      return fb::detail::each_row(q, [&](fb::detail::Stmt& r) { stored = r.int64(0); });
    });
    BOOST_REQUIRE(s.ok());
  }
  BOOST_TEST(stored > done_pages);
  BOOST_TEST(cancelled["meetings_seen"].get<int64_t>() + resumed["meetings_seen"].get<int64_t>() == stored);
  BOOST_TEST(cancelled["meetings_new"].get<int64_t>() + resumed["meetings_new"].get<int64_t>() == stored);
  BOOST_TEST(resumed["meetings_mapped"].get<int64_t>() + cancelled["meetings_mapped"].get<int64_t>() == stored);
}

BOOST_AUTO_TEST_SUITE_END()
