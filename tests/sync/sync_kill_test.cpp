// A real sync process killed with SIGKILL mid-sync, then restarted: it resumes from its last
// committed page and ends with exactly the rows (and mappings) of an uninterrupted run. The killed
// process held the sync lease: on SQLite (one machine) the restart takes it over at once; on
// PostgreSQL (a fleet: the holder's pid proves nothing) once its time to live has passed, and not
// before (issue 12).
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
#include "support/wait.h"

extern char** environ;

using namespace fb;
using namespace fb::detail;

namespace {

std::string helper_path() { return std::string(FB_BINARY_DIR) + "/tests/sync/fb_sync_kill_helper"; }

constexpr int kLeaseTtlS = 15;  // the helpers' sync.lease_ttl_s: the restart (ASan, a loaded machine) must come well inside it

std::vector<std::string> helper_args(const test::SimProcess& sim, const std::string& db) {
  return {helper_path(), "--api-base", sim.api_base(), "--api-key", sim.api_key("alice@example.com"), "--db", db,
          "--lease-ttl", std::to_string(kLeaseTtlS)};
}

pid_t spawn_helper(const test::SimProcess& sim, const std::string& db) {
  std::vector<std::string> args = helper_args(sim, db);
  const std::string bin = args[0];
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
  const std::string ref_db = dir.store("reference.db"), kill_db = dir.store("killed.db");

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

  // The restart: same command, no more latency. The dead process's lease stands until it expires on
  // PostgreSQL; on SQLite its pid shows it is gone.
  sim.config({{"latency_ms", 0}});
  std::string restart;
  for (const auto& a : helper_args(sim, kill_db)) restart += "'" + a + "' ";
  const auto killed_at = std::chrono::steady_clock::now();
  test::CommandResult first = test::run_command(restart + "2>&1");
  BOOST_TEST_MESSAGE("first restart: " << first.output);
  if (test::store_engine_is_postgres()) {
    BOOST_TEST(first.exit_code == 2);
    BOOST_TEST(first.output.find("already running") != std::string::npos);
    test::CommandResult later;
    while (std::chrono::steady_clock::now() - killed_at < std::chrono::seconds(kLeaseTtlS + 20)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      later = test::run_command(restart + "2>&1");
      if (later.output.find("already running") == std::string::npos) break;
    }
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killed_at);
    BOOST_TEST_MESSAGE("taken over " << waited.count() << " ms after the kill (lease " << kLeaseTtlS << " s)");
    BOOST_REQUIRE_MESSAGE(later.exit_code == 0, later.output);
  } else {
    BOOST_REQUIRE_MESSAGE(first.exit_code == 0, first.output);
  }

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
