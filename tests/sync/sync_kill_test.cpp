// A real sync process killed with SIGKILL mid-sync, then restarted: it resumes from its last
// committed page and ends with exactly the rows (and mappings) of an uninterrupted run.
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "store/db.h"
#include "support/sim_process.h"
#include "support/temp_dir.h"

extern char** environ;

using namespace fb;
using namespace fb::detail;

namespace {

std::string helper_path() { return std::string(FB_BINARY_DIR) + "/tests/sync/fb_sync_kill_helper"; }

pid_t spawn_helper(const test::SimProcess& sim, const std::string& db) {
  std::string bin = helper_path(), base = sim.api_base(), key = sim.api_key("alice@example.com");
  std::vector<std::string> args = {bin, "--api-base", base, "--api-key", key, "--db", db};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, bin.c_str(), nullptr, nullptr, argv.data(), environ);
  BOOST_REQUIRE_MESSAGE(rc == 0, "cannot start " << bin << ": " << std::strerror(rc));
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

// One integer from a query on the file (-1 while the table does not exist yet).
int64_t scalar(Db& db, const std::string& sql) {
  int64_t v = -1;
  (void)db.with([&]() -> Status {
    auto q = db.prepare_uncached(sql);
    if (!q.ok()) return q.status();
    auto row = q->step();
    if (row.ok() && *row) v = q->int64(0);
    return Status::Ok();
  });
  return v;
}

using Rows = std::vector<std::tuple<int64_t, std::string, int64_t, int64_t, std::string>>;
Rows meeting_rows(Db& db) {
  Rows rows;
  (void)db.with([&]() -> Status {
    auto q = db.prepare_uncached(
        "SELECT recording_id, content_hash, content_version, mapped_version, raw_json FROM sync_meetings "
        "ORDER BY recording_id");
    for (;;) {
      auto row = q->step();
      if (!row.ok() || !*row) break;
      rows.emplace_back(q->int64(0), q->text(1), q->int64(2), q->int64(3), q->text(4));
    }
    return Status::Ok();
  });
  return rows;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_sync_killed_mid_way_resumes_and_equals_an_uninterrupted_run) {
  test::SimProcess sim({"--meetings", "200"});
  test::TempDir dir;
  const std::string ref_db = dir.file("reference.db"), kill_db = dir.file("killed.db");

  // The uninterrupted run.
  BOOST_REQUIRE_EQUAL(wait_exit(spawn_helper(sim, ref_db)), 0);
  auto c0 = sim.counters();
  const int64_t pages = c0["api_calls"]["GET /meetings"].get<int64_t>();
  BOOST_REQUIRE_GE(pages, 8);

  // Slow pages, so the kill lands between pages; kill once 3 pages are committed and mapped.
  sim.config({{"latency_ms", 150}});
  sim.admin("POST", "/_sim/counters/reset");
  pid_t pid = spawn_helper(sim, kill_db);
  auto observer = Db::open(kill_db).value();
  int64_t committed = -1;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    committed = scalar(*observer, "SELECT checkpoint_pages FROM sync_state WHERE integration_id=1");
    if (committed >= 3 &&
        scalar(*observer, "SELECT COUNT(*) FROM sync_meetings WHERE mapped_version < content_version") == 0) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  BOOST_REQUIRE_GE(committed, 3);
  kill(pid, SIGKILL);
  BOOST_REQUIRE_EQUAL(wait_exit(pid), -SIGKILL);
  committed = scalar(*observer, "SELECT checkpoint_pages FROM sync_state WHERE integration_id=1");
  BOOST_TEST_MESSAGE("killed after " << committed << " of " << pages << " pages");
  BOOST_REQUIRE_LT(committed, pages);
  BOOST_TEST(scalar(*observer, "SELECT COUNT(*) FROM sync_jobs WHERE status='running'") == 1);
  BOOST_TEST(scalar(*observer, "SELECT COUNT(*) FROM sync_meetings") == committed * 10);
  BOOST_TEST(scalar(*observer, "SELECT high_water FROM sync_state") == 0);

  // The restart: same command, no more latency.
  sim.config({{"latency_ms", 0}});
  BOOST_REQUIRE_EQUAL(wait_exit(spawn_helper(sim, kill_db)), 0);

  auto ref = Db::open(ref_db).value();
  BOOST_TEST((meeting_rows(*observer) == meeting_rows(*ref)));
  BOOST_TEST(scalar(*observer, "SELECT high_water FROM sync_state") ==
             scalar(*ref, "SELECT high_water FROM sync_state"));
  // Every meeting mapped exactly once, across the kill.
  BOOST_TEST(scalar(*observer, "SELECT COUNT(*) FROM helper_mapped") == scalar(*ref, "SELECT COUNT(*) FROM sync_meetings"));
  BOOST_TEST(scalar(*observer, "SELECT COUNT(DISTINCT recording_id) FROM helper_mapped") ==
             scalar(*observer, "SELECT COUNT(*) FROM helper_mapped"));
  // The log: the killed job is marked interrupted, the restart resumed it.
  BOOST_TEST(scalar(*observer, "SELECT COUNT(*) FROM sync_jobs WHERE status='interrupted' AND id=1") == 1);
  BOOST_TEST(scalar(*observer, "SELECT resumed_job_id FROM sync_jobs WHERE id=2") == 1);
  BOOST_TEST(scalar(*observer, "SELECT pages FROM sync_jobs WHERE id=2") == pages - committed);
  // No committed page was listed again (the page in flight at the kill may have been sent).
  int64_t calls = sim.counters()["api_calls"]["GET /meetings"].get<int64_t>();
  BOOST_TEST(calls >= pages);
  BOOST_TEST(calls <= pages + 1);
}
