// The fathom-bridge command-line tool, run as a process the way operators and admins run it.
#include <sys/wait.h>

#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <fstream>
#include <string>

#include "crypto/encoding.h"
#include "support/temp_dir.h"
#include "support/wait.h"

namespace {

using Run = fb::test::CommandResult;

Run run_cli(const std::string& args) {
  Run r = fb::test::run_command(std::string(FB_BINARY_DIR) + "/plugin/cli/fathom-bridge " + args + " 2>&1");
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
    "store": {"path": ")" + dir.file("cli.db") + R"("},
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

BOOST_AUTO_TEST_SUITE_END()
