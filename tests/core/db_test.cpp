// The SQLite wrapper over real database files: migrations, transactions, two connections.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <thread>

#include "store/db.h"

using namespace fb::detail;
namespace fs = std::filesystem;

namespace {

struct DbDir {
  DbDir() {
    std::string tmpl = (fs::temp_directory_path() / "fb-core-db-XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~DbDir() { fs::remove_all(path); }
  std::string file(const char* name) const { return (fs::path(path) / name).string(); }
  std::string path;
};

const std::vector<Migration> kSteps = {
    {1, "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL)"},
    {2, "ALTER TABLE notes ADD COLUMN tag TEXT"},
};

int64_t count_notes(Db& db) {
  int64_t n = -1;
  BOOST_REQUIRE(db.with([&] {
                   Stmt& q = db.prepare("SELECT COUNT(*) FROM notes");
                   auto r = q.step();
                   if (!r.ok()) return r.status();
                   n = q.int64(0);
                   q.reset();
                   return fb::Status::Ok();
                 }).ok());
  return n;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(db)

BOOST_AUTO_TEST_CASE(migrations_apply_once_per_component) {
  DbDir dir;
  auto db = Db::open(dir.file("m.db"));
  BOOST_REQUIRE(db.ok());
  BOOST_REQUIRE((*db)->migrate("notes", kSteps).ok());
  BOOST_REQUIRE((*db)->migrate("notes", kSteps).ok());  // idempotent
  BOOST_TEST(*(*db)->schema_version("notes") == 2);
  BOOST_TEST(*(*db)->schema_version("other") == 0);
  // A second process (connection) opening the same file sees the same version and does nothing.
  auto db2 = Db::open(dir.file("m.db"));
  BOOST_REQUIRE(db2.ok());
  BOOST_REQUIRE((*db2)->migrate("notes", kSteps).ok());
  BOOST_TEST(*(*db2)->schema_version("notes") == 2);
}

BOOST_AUTO_TEST_CASE(bad_migration_rolls_back_and_names_itself) {
  DbDir dir;
  auto db = Db::open(dir.file("bad.db"));
  BOOST_REQUIRE(db.ok());
  auto s = (*db)->migrate("broken", {{1, "CREATE TABLE t(x INT); CREATE TABLE t(y INT)"}});
  BOOST_TEST(!s.ok());
  BOOST_TEST(s.message().find("migration broken/1") != std::string::npos);
  BOOST_TEST(*(*db)->schema_version("broken") == 0);
  // The partial CREATE was rolled back with the step.
  auto retry = (*db)->migrate("broken", {{1, "CREATE TABLE t(x INT)"}});
  BOOST_TEST(retry.ok());
  BOOST_TEST((*db)->migrate("order", {{2, "SELECT 1"}, {1, "SELECT 1"}}).code() == fb::Code::kInternal);
  BOOST_TEST(*(*db)->schema_version("order") == 0);  // nothing of a misordered list is applied
}

BOOST_AUTO_TEST_CASE(transaction_commits_or_rolls_back) {
  DbDir dir;
  auto db = Db::open(dir.file("t.db"));
  BOOST_REQUIRE(db.ok());
  Db& d = **db;
  BOOST_REQUIRE(d.migrate("notes", kSteps).ok());
  BOOST_REQUIRE(d.transaction([&] {
                   return d.prepare("INSERT INTO notes(body) VALUES(?)").bind(1, "kept").run();
                 }).ok());
  auto failed = d.transaction([&] {
    FB_TRY(d.prepare("INSERT INTO notes(body) VALUES(?)").bind(1, "dropped").run());
    return fb::Status::Conflict("changed my mind");
  });
  BOOST_TEST(failed.code() == fb::Code::kConflict);
  auto threw = d.transaction([&]() -> fb::Status {
    FB_TRY(d.prepare("INSERT INTO notes(body) VALUES(?)").bind(1, "dropped too").run());
    throw std::runtime_error("boom");
  });
  BOOST_TEST(threw.code() == fb::Code::kInternal);
  BOOST_TEST(count_notes(d) == 1);
  // Constraint violations are values, not crashes.
  auto null_body = d.transaction([&] { return d.prepare("INSERT INTO notes(body) VALUES(NULL)").run(); });
  BOOST_TEST(null_body.code() == fb::Code::kAlreadyExists);
}

BOOST_AUTO_TEST_CASE(data_survives_reopen_and_is_shared_between_connections) {
  DbDir dir;
  {
    auto a = Db::open(dir.file("s.db"));
    auto b = Db::open(dir.file("s.db"));
    BOOST_REQUIRE(a.ok());
    BOOST_REQUIRE(b.ok());
    BOOST_REQUIRE((*a)->migrate("notes", kSteps).ok());
    // Two writers on two threads through two connections: busy_timeout serialises them. Failures
    // are counted and asserted on the main thread (Boost.Test is not thread-safe).
    std::atomic<int> failed{0};
    auto writer = [&failed](Db& d, const char* body) {
      for (int i = 0; i < 50; ++i) {
        if (!d.transaction([&] { return d.prepare("INSERT INTO notes(body) VALUES(?)").bind(1, body).run(); }).ok()) {
          ++failed;
        }
      }
    };
    std::thread t1(writer, std::ref(**a), "a");
    std::thread t2(writer, std::ref(**b), "b");
    t1.join();
    t2.join();
    BOOST_TEST(failed.load() == 0);
    BOOST_TEST(count_notes(**b) == 100);
  }
  auto again = Db::open(dir.file("s.db"));
  BOOST_REQUIRE(again.ok());
  BOOST_TEST(count_notes(**again) == 100);
}

// One connection shared by a thread committing with a deadline (the webhook inbox's group
// commit) and one with plain transactions (a worker): the connection lock serialises them. In the
// TSan stage (./run tsan) this is the check that the lock is one TSan sees: with
// std::recursive_timed_mutex, whose try_lock_until waits in pthread_mutex_clocklock (not intercepted
// by GCC 12's libtsan), a lock taken by transaction_until was invisible ("unlock of an unlocked
// mutex", and races on everything it protects). See store/timed_recursive_mutex.h.
BOOST_AUTO_TEST_CASE(one_connection_shared_by_deadline_and_plain_transactions) {
  DbDir dir;
  auto db = Db::open(dir.file("s.db"));
  BOOST_REQUIRE(db.ok());
  Db& d = **db;
  BOOST_REQUIRE(d.migrate("notes", kSteps).ok());
  std::atomic<int> failed{0};
  auto insert = [&d](const char* body) { return d.prepare("INSERT INTO notes(body) VALUES(?)").bind(1, body).run(); };
  std::thread with_deadline([&] {
    for (int i = 0; i < 200; ++i) {
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      if (!d.transaction_until(deadline, [&] { return insert("deadline"); }).ok()) ++failed;
    }
  });
  std::thread plain([&] {
    for (int i = 0; i < 200; ++i) {
      if (!d.transaction([&] { return insert("plain"); }).ok()) ++failed;
    }
  });
  with_deadline.join();
  plain.join();
  BOOST_TEST(failed.load() == 0);
  BOOST_TEST(count_notes(d) == 400);

  // Held by another thread past the deadline: kUnavailable at the deadline, not a hang.
  std::atomic<bool> held{false}, release{false};
  std::thread holder([&] {
    (void)d.transaction([&] {
      held = true;
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      return fb::Status::Ok();
    });
  });
  while (!held) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  fb::Status late =
      d.transaction_until(std::chrono::steady_clock::now() + std::chrono::milliseconds(50), [] { return fb::Status::Ok(); });
  release = true;
  holder.join();
  BOOST_TEST(late.code() == fb::Code::kUnavailable);
  BOOST_TEST(late.message().find("past the deadline") != std::string::npos);
  // The owning thread may nest a deadline transaction in its own (it joins the outer one).
  BOOST_TEST(d.transaction([&] {
                return d.transaction_until(std::chrono::steady_clock::now(), [&] { return insert("nested"); });
              }).ok());
  BOOST_TEST(count_notes(d) == 401);
}

BOOST_AUTO_TEST_CASE(open_reports_unusable_path) {
  auto db = Db::open("/nonexistent-dir/sub/x.db");
  BOOST_TEST(db.code() == fb::Code::kIo);
  BOOST_TEST(db.status().message().find("/nonexistent-dir/sub/x.db") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
