// The test harness itself: SimProcess starts and stops the binary; TempDir cleans up.
#include <signal.h>
#include <sys/stat.h>

#include <boost/test/unit_test.hpp>
#include <fstream>

#include "support/http.h"
#include "support/sim_process.h"
#include "support/temp_dir.h"

using namespace fb::test;

BOOST_AUTO_TEST_SUITE(harness)

BOOST_AUTO_TEST_CASE(sim_process_starts_answers_and_stops) {
  pid_t pid;
  std::string base;
  {
    SimProcess sim({"--meetings", "12", "--seed", "3"});
    pid = sim.pid();
    base = sim.base_url();
    BOOST_TEST(base.rfind("http://127.0.0.1:", 0) == 0);
    BOOST_TEST(sim.port() > 0);
    BOOST_TEST(sim.api_base() == base + "/external/v1");
    BOOST_TEST(sim.token_url() == base + "/external/v1/oauth2/token");
    auto users = sim.users();
    BOOST_REQUIRE_EQUAL(users.size(), 3u);
    BOOST_TEST(users[0]["email"] == "alice@example.com");
    BOOST_TEST(users[0]["team"] == "Sales");
    BOOST_TEST(users[2]["team"] == "Engineering");
    BOOST_TEST(sim.admin("GET", "health")["meetings"] == 12);
    auto r = http_get(sim.api_base() + "/meetings", {{"X-Api-Key", sim.api_key("alice@example.com")}});
    BOOST_TEST(r.status == 200);
    BOOST_TEST(r.json()["items"].is_array());
    BOOST_CHECK_THROW(sim.admin("POST", "/_sim/config", {{"no_such_knob", 1}}), std::runtime_error);
  }
  // The destructor reaped the child: the pid is gone and the port no longer answers.
  BOOST_TEST(::kill(pid, 0) == -1);
  BOOST_TEST(http_get(base + "/_sim/health").status == 0);
}

BOOST_AUTO_TEST_CASE(two_simulators_run_side_by_side) {
  SimProcess a, b;
  BOOST_TEST(a.port() != b.port());
  BOOST_TEST(a.api_key("bob@example.com") == b.api_key("bob@example.com"));  // same default seed
}

BOOST_AUTO_TEST_CASE(bad_arguments_fail_with_a_clear_error) {
  BOOST_CHECK_THROW(SimProcess({"--no-such-flag"}), std::runtime_error);
  BOOST_CHECK_THROW(SimProcess({"--page-size", "zero"}), std::runtime_error);
}

BOOST_AUTO_TEST_CASE(temp_dir_is_unique_and_removed) {
  std::string path;
  {
    TempDir a, b;
    BOOST_TEST(a.path() != b.path());
    path = a.path();
    std::ofstream(a.file("x.db")) << "data";
    struct stat st{};
    BOOST_TEST(::stat(a.file("x.db").c_str(), &st) == 0);
  }
  struct stat st{};
  BOOST_TEST(::stat(path.c_str(), &st) == -1);
}

BOOST_AUTO_TEST_SUITE_END()
