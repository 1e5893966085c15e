// The store seam over real databases: migrations, transactions, several connections. Runs on
// SQLite files (fb_core_test) and on the throwaway PostgreSQL (fb_core_test_postgresql): every
// store is opened through TempDir::store().
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <future>
#include <thread>

#include "store/db.h"
#include "support/temp_dir.h"

using namespace fb::detail;
using fb::test::store_engine_is_postgres;

namespace {

using DbDir = fb::test::TempDir;

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

// Two Dbs (two connections, or two pools) on one store with the notes table.
struct TwoConnections {
  explicit TwoConnections(const std::string& name) {
    auto x = Db::open(dir.store(name));
    auto y = Db::open(dir.store(name));
    BOOST_REQUIRE(x.ok());
    BOOST_REQUIRE(y.ok());
    a = std::move(*x);
    b = std::move(*y);
    BOOST_REQUIRE(a->migrate("notes", kSteps).ok());
  }
  DbDir dir;
  std::unique_ptr<Db> a, b;
};

// A transaction held open on db by a thread of its own, from construction (once `sql`, if any,
// ran in it) until release() or destruction.
class HeldTransaction {
 public:
  HeldTransaction(Db& db, std::string sql, bool immediate)
      : thread_([this, &db, sql = std::move(sql), immediate] {
          (void)db.transaction([&] {
            fb::Status s = sql.empty() ? fb::Status::Ok() : db.exec(sql);
            holding_ = true;
            while (!release_) std::this_thread::sleep_for(std::chrono::milliseconds(5));
            return s;
          }, immediate);
          holding_ = true;  // also when the transaction could not start
        }) {
    while (!holding_) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ~HeldTransaction() { release(); }
  void release() {
    release_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> holding_{false}, release_{false};
  std::thread thread_;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(db)

BOOST_AUTO_TEST_CASE(migrations_apply_once_per_component) {
  DbDir dir;
  auto db = Db::open(dir.store("m.db"));
  BOOST_REQUIRE(db.ok());
  BOOST_REQUIRE((*db)->migrate("notes", kSteps).ok());
  BOOST_REQUIRE((*db)->migrate("notes", kSteps).ok());  // idempotent
  BOOST_TEST(*(*db)->schema_version("notes") == 2);
  BOOST_TEST(*(*db)->schema_version("other") == 0);
  // A second process (connection) opening the same file sees the same version and does nothing.
  auto db2 = Db::open(dir.store("m.db"));
  BOOST_REQUIRE(db2.ok());
  BOOST_REQUIRE((*db2)->migrate("notes", kSteps).ok());
  BOOST_TEST(*(*db2)->schema_version("notes") == 2);
}

BOOST_AUTO_TEST_CASE(bad_migration_rolls_back_and_names_itself) {
  DbDir dir;
  auto db = Db::open(dir.store("bad.db"));
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
  auto db = Db::open(dir.store("t.db"));
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
    auto a = Db::open(dir.store("s.db"));
    auto b = Db::open(dir.store("s.db"));
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
  auto again = Db::open(dir.store("s.db"));
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

BOOST_AUTO_TEST_CASE(open_reports_unreachable_postgresql_naming_the_store_without_its_password) {
  auto db = Db::open("postgresql://fb:hunter2@/nodb?host=/nonexistent-dir&port=1&connect_timeout=2");
  BOOST_TEST(db.code() == fb::Code::kUnavailable);
  const std::string m = db.status().message();
  BOOST_TEST(m.find("store postgresql://fb:***@/nodb") != std::string::npos, m);
  BOOST_TEST(m.find("hunter2") == std::string::npos, m);
  BOOST_TEST(Db::is_postgres_url("postgres://h/db"));
  BOOST_TEST(!Db::is_postgres_url("fathom-bridge.db"));
}

// What the stores rely on beyond plain SQL, the same on both engines: blobs with any bytes,
// NULLs, ids from an autoincrementing column (and the highest ever given after a delete), changes(),
// has_table(), the scalar MAX(a, b), and commits() counting explicit and autocommit writes.
BOOST_AUTO_TEST_CASE(values_ids_and_commit_counts_behave_the_same_on_every_engine) {
  DbDir dir;
  auto opened = Db::open(dir.store("v.db"));
  BOOST_REQUIRE(opened.ok());
  Db& d = **opened;
  BOOST_TEST((d.engine() == Engine::kPostgres) == store_engine_is_postgres());
  BOOST_REQUIRE(d.migrate("v", {{1, "CREATE TABLE v(id INTEGER PRIMARY KEY AUTOINCREMENT, b BLOB, t TEXT, n INTEGER, "
                                    "r REAL) ; CREATE TABLE k(a TEXT NOT NULL, b INTEGER NOT NULL, "
                                    "PRIMARY KEY (a, b)) WITHOUT ROWID"}})
                    .ok());
  const std::string bytes("\x00\xff\x00'?\"\\x", 8);
  const int64_t commits_before = d.commits();
  int64_t first = 0, second = 0;
  BOOST_REQUIRE(d.transaction([&]() -> fb::Status {
                   Stmt& ins = d.prepare("INSERT INTO v(b, t, n, r) VALUES(?,?,?,?)");
                   FB_TRY(ins.bind_blob(1, bytes).bind(2, "tea ? 'x'").bind(3, int64_t{1} << 40).bind(4, 2.5).run());
                   first = d.last_insert_rowid();
                   FB_TRY(ins.bind(1, nullptr).bind(2, nullptr).bind(3, nullptr).bind(4, nullptr).run());
                   second = d.last_insert_rowid();
                   return fb::Status::Ok();
                 }).ok());
  BOOST_TEST(d.commits() == commits_before + 1);
  BOOST_TEST(second == first + 1);
  BOOST_REQUIRE(d.with([&]() -> fb::Status {
                   Stmt& q = d.prepare("SELECT b, t, n, r, MAX(n, ?), n IS NULL FROM v ORDER BY id");
                   q.bind(1, int64_t{7});
                   FB_ASSIGN(bool row, q.step());
                   BOOST_REQUIRE(row);
                   BOOST_TEST(q.blob(0) == bytes);
                   BOOST_TEST(q.text(1) == "tea ? 'x'");
                   BOOST_TEST(q.int64(2) == (int64_t{1} << 40));
                   BOOST_TEST(q.real(3) == 2.5);
                   BOOST_TEST(q.int64(4) == (int64_t{1} << 40));
                   BOOST_TEST(q.int64(5) == 0);
                   FB_ASSIGN(row, q.step());
                   BOOST_REQUIRE(row);
                   BOOST_TEST(q.is_null(0));
                   BOOST_TEST(!q.opt_text(1).has_value());
                   BOOST_TEST(!q.opt_int64(2).has_value());
                   BOOST_TEST(q.int64(5) == 1);
                   q.reset();
                   // With a blob the PostgreSQL driver takes the results binary: the same values.
                   Stmt& neg = d.prepare("SELECT b, -n, CAST(-3 AS SMALLINT), CAST(-70000 AS INT4), r * 2, t, n IS NULL"
                                         " FROM v WHERE id=?");
                   neg.bind(1, first);
                   FB_ASSIGN(row, neg.step());
                   BOOST_REQUIRE(row);
                   BOOST_TEST(neg.blob(0) == bytes);
                   BOOST_TEST(neg.int64(1) == -(int64_t{1} << 40));
                   BOOST_TEST(neg.text(1) == "-1099511627776");
                   BOOST_TEST(neg.int64(2) == -3);
                   BOOST_TEST(neg.int64(3) == -70000);
                   BOOST_TEST(neg.real(4) == 5.0);
                   BOOST_TEST(neg.text(5) == "tea ? 'x'");
                   BOOST_TEST(neg.int64(6) == 0);
                   neg.reset();
                   // Every autocommit write statement counts as one commit, also one that changed nothing.
                   FB_TRY(d.prepare("UPDATE v SET t='u' WHERE id=?").bind(1, second).run());
                   BOOST_TEST(d.changes() == 1);
                   FB_TRY(d.prepare("DELETE FROM v WHERE id=?").bind(1, second).run());
                   FB_TRY(d.prepare("DELETE FROM v WHERE id=?").bind(1, second).run());
                   BOOST_TEST(d.changes() == 0);
                   FB_ASSIGN(int64_t highest, d.highest_id_given("v"));
                   BOOST_TEST(highest == second);  // also after that row was deleted
                   FB_ASSIGN(bool have, d.has_table("k"));
                   BOOST_TEST(have);
                   FB_ASSIGN(have, d.has_table("nope"));
                   BOOST_TEST(!have);
                   // The common upsert dialect.
                   Stmt& up = d.prepare("INSERT INTO k(a, b) VALUES(?, ?) ON CONFLICT DO NOTHING");
                   FB_TRY(up.bind(1, "a").bind(2, 1).run());
                   FB_TRY(up.bind(1, "a").bind(2, 1).run());
                   BOOST_TEST(d.changes() == 0);
                   return fb::Status::Ok();
                 }).ok());
  BOOST_TEST(d.commits() == commits_before + 6);  // the transaction, then five autocommit writes
}

// Text with a NUL character: SQLite stores it whole; libpq would send a text parameter only up to
// its NUL and PostgreSQL would store the rest cut off without a word, so the PostgreSQL driver
// refuses the statement, naming the parameter and the statement. Blobs carry NULs on both.
BOOST_AUTO_TEST_CASE(text_with_a_nul_is_stored_whole_or_refused_by_name_never_cut) {
  DbDir dir;
  auto opened = Db::open(dir.store("nul.db"));
  BOOST_REQUIRE(opened.ok());
  Db& d = **opened;
  BOOST_REQUIRE(d.migrate("nul", {{1, "CREATE TABLE nul(id INTEGER PRIMARY KEY, t TEXT, b BLOB)"}}).ok());
  const std::string with_nul("before\0after", 12);
  fb::Status put = d.transaction([&] {
    return d.prepare("INSERT INTO nul(id, t, b) VALUES(1, ?, ?)").bind(1, with_nul).bind_blob(2, with_nul).run();
  });
  std::optional<std::string> stored;
  BOOST_REQUIRE(d.with([&]() -> fb::Status {
                   Stmt& q = d.prepare("SELECT t FROM nul WHERE id=1");
                   FB_ASSIGN(bool row, q.step());
                   if (row) stored = q.text(0);
                   q.reset();
                   return fb::Status::Ok();
                 }).ok());
  if (store_engine_is_postgres()) {
    BOOST_TEST(put.code() == fb::Code::kInvalidArgument, put.to_string());
    BOOST_TEST(put.message().find("parameter 1 is text with a NUL character") != std::string::npos, put.message());
    BOOST_TEST(put.message().find("INSERT INTO nul") != std::string::npos, put.message());
    BOOST_TEST(!stored.has_value());  // the transaction rolled back: no row, and no cut-off text
    // The same value as a blob goes through, and the connection is fine afterwards.
    BOOST_REQUIRE(d.transaction([&] {
                     return d.prepare("INSERT INTO nul(id, b) VALUES(2, ?)").bind_blob(1, with_nul).run();
                   }).ok());
  } else {
    BOOST_REQUIRE(put.ok());
    BOOST_TEST(stored.value_or("") == with_nul);
  }
}

// transaction_until() gives up with kUnavailable when another connection holds the write lock
// past the deadline (a delivery is then answered 503), and the write lock serialises
// read-modify-write transactions across connections.
BOOST_AUTO_TEST_CASE(write_lock_is_shared_by_connections_and_bounded_by_a_deadline) {
  TwoConnections two("l.db");
  auto& a = two.a;
  auto& b = two.b;
  HeldTransaction holder(*a, "", /*immediate=*/true);
  auto waited = b->transaction_until(std::chrono::steady_clock::now() + std::chrono::milliseconds(300),
                                     [] { return fb::Status::Ok(); });
  holder.release();
  BOOST_TEST(waited.code() == fb::Code::kUnavailable, waited.to_string());
  // Counter increments read and write under the lock: none is lost across two connections.
  BOOST_REQUIRE(a->with([&] { return a->exec("INSERT INTO notes(id, body) VALUES(1, '0')"); }).ok());
  std::atomic<int> failed{0};
  auto bump = [&failed](Db& d) {
    for (int i = 0; i < 40; ++i) {
      fb::Status s = d.transaction([&]() -> fb::Status {
        Stmt& q = d.prepare("SELECT body FROM notes WHERE id=1");
        FB_ASSIGN(bool row, q.step());
        int v = row ? std::stoi(q.text(0)) : -1000;
        q.reset();
        return d.prepare("UPDATE notes SET body=? WHERE id=1").bind(1, std::to_string(v + 1)).run();
      });
      if (!s.ok()) ++failed;
    }
  };
  std::thread t1(bump, std::ref(*a)), t2(bump, std::ref(*b));
  t1.join();
  t2.join();
  BOOST_TEST(failed.load() == 0);
  BOOST_REQUIRE(a->with([&]() -> fb::Status {
                   Stmt& q = a->prepare("SELECT body FROM notes WHERE id=1");
                   FB_ASSIGN(bool row, q.step());
                   BOOST_TEST(row);
                   BOOST_TEST(q.text(0) == "80");
                   q.reset();
                   return fb::Status::Ok();
                 }).ok());
}

// PostgreSQL only: one Db is a pool (threads run side by side, up to pool_size), and a connection the
// server drops is replaced by itself: the call on it fails naming the store, the next one works.
BOOST_AUTO_TEST_CASE(postgresql_pool_runs_threads_side_by_side_and_reconnects) {
  if (!store_engine_is_postgres()) return;
  DbDir dir;
  auto opened = Db::open(dir.store("p.db"), {.pool_size = 3});
  BOOST_REQUIRE(opened.ok());
  Db& d = **opened;
  // Three threads each hold a connection at the same time (pg_sleep): all three in about 0.3 s, and
  // the server sees three backends of this database.
  std::atomic<int> inside{0}, most{0};
  auto sleeper = [&] {
    (void)d.with([&] {
      int now = ++inside;
      for (int m = most; now > m && !most.compare_exchange_weak(m, now);) {
      }
      fb::Status s = d.exec("SELECT pg_sleep(0.3)");
      --inside;
      return s;
    });
  };
  std::thread t1(sleeper), t2(sleeper), t3(sleeper);
  t1.join();
  t2.join();
  t3.join();
  BOOST_TEST(most.load() == 3);
  // Kill this Db's backends from another connection: the next call fails (kUnavailable, naming the
  // store) or already reconnects; a call after that works.
  auto admin = Db::open(dir.store("p.db"), {.pool_size = 1});
  BOOST_REQUIRE(admin.ok());
  BOOST_REQUIRE((*admin)->with([&] {
                   return (*admin)->exec(
                       "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid()");
                 }).ok());
  fb::Status first = d.with([&] { return d.exec("SELECT 1"); });
  if (!first.ok()) {
    BOOST_TEST(first.code() == fb::Code::kUnavailable, first.to_string());
    BOOST_TEST(first.message().find("store postgresql://") != std::string::npos, first.to_string());
  }
  for (int i = 0; i < 3 && !first.ok(); ++i) first = d.with([&] { return d.exec("SELECT 1"); });
  BOOST_TEST(first.ok(), first.to_string());
}

// PostgreSQL only: one failure reads the same way however it was met. libpq writes the error's
// position as "LINE 1: ..." with a caret when it holds the query (a prepare) and as "at character
// N" when it does not (a prepared statement run), and the workers' log limiter (one line per
// distinct reason a minute) counted the two as two reasons: fb_webhooks_unit_test_postgresql's
// failing_claims_are_logged_once_a_minute_not_once_a_poll saw three lines on a loaded machine.
BOOST_AUTO_TEST_CASE(postgresql_errors_read_the_same_from_a_prepare_and_from_a_run) {
  if (!store_engine_is_postgres()) return;
  DbDir dir;
  auto opened = Db::open(dir.store("e.db"), {.pool_size = 1});
  BOOST_REQUIRE(opened.ok());
  Db& d = **opened;
  BOOST_REQUIRE(d.migrate("notes", kSteps).ok());
  auto run = [&] {
    return d.with([&] {
      Stmt& q = d.prepare("SELECT body FROM notes WHERE id=?");
      q.bind_all(int64_t{1});
      auto r = q.step();
      q.reset();
      return r.status();
    });
  };
  BOOST_REQUIRE(run().ok());  // prepared and cached
  BOOST_REQUIRE(d.with([&] { return d.exec("ALTER TABLE notes RENAME TO notes_away"); }).ok());
  fb::Status ran = run();  // the cached statement, planned again by the server
  BOOST_REQUIRE(!ran.ok());
  // Not cached: prepared now and refused (bad SQL throws; Db::with answers it as a Status).
  fb::Status refused = d.with([&] {
    d.prepare("SELECT tag FROM notes");
    return fb::Status::Ok();
  });
  BOOST_REQUIRE(!refused.ok());
  const std::string prepared = refused.message();
  BOOST_TEST(prepared.find("prepare failed") != std::string::npos, prepared);
  const std::string expected = "ERROR:  relation \"notes\" does not exist at character ";
  BOOST_TEST(ran.message().find(expected) != std::string::npos, ran.to_string());
  BOOST_TEST(prepared.find(expected) != std::string::npos, prepared);
  BOOST_TEST(ran.message().find("LINE 1") == std::string::npos, ran.to_string());
  BOOST_TEST(prepared.find("LINE 1") == std::string::npos, prepared);
}

// PostgreSQL only: a transaction_until() caller has promised an answer by its deadline (the webhook
// inbox: a 503 before Fathom's timeout), so a lock it waits for inside (a table another session
// holds locked: a DBA's ALTER TABLE or VACUUM FULL) ends there too, as SQLite's busy timeout ends
// it on SQLite. Found by fb_chaos_test_postgresql: a delivery waited for the lock without end, and
// once bounded, its error said "current transaction is aborted" instead of the lock timeout.
BOOST_AUTO_TEST_CASE(postgresql_lock_waits_in_a_deadline_transaction_end_at_the_deadline) {
  if (!store_engine_is_postgres()) return;
  TwoConnections two("t.db");
  Db& b = *two.b;
  HeldTransaction holder(*two.a, "LOCK TABLE notes IN ACCESS EXCLUSIVE MODE", /*immediate=*/false);
  for (bool immediate : {false, true}) {
    // On its own thread: before the fix it waited until the holder let go, which only happens below.
    const auto start = std::chrono::steady_clock::now();
    // As the webhook inbox does: statements prepared first, run later. The prepare is what waits
    // for the lock; the error then names that wait, not the "current transaction is aborted" that
    // PostgreSQL answers every later statement with.
    auto waited = std::async(std::launch::async, [&] {
      return b.transaction_until(std::chrono::steady_clock::now() + std::chrono::milliseconds(300), [&] {
        Stmt& find = b.prepare("SELECT COUNT(*) FROM notes WHERE id=?");
        Stmt& insert = b.prepare("INSERT INTO notes(id, body) VALUES(?, 'x')");
        FB_TRY(insert.bind(1, 1).run());
        find.bind(1, 1);
        return find.step().status();
      }, immediate);
    });
    const bool answered = waited.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
    BOOST_TEST(answered, "immediate=" << immediate << ": still waiting for the lock 20 s after a 300 ms deadline");
    if (!answered) {
      holder.release();  // let it through, or the future's destructor waits for it forever
      break;
    }
    const fb::Status s = waited.get();
    BOOST_TEST(!s.ok(), "immediate=" << immediate);
    BOOST_TEST(s.message().find("lock timeout") != std::string::npos, "immediate=" << immediate << ": " << s);
    const double took_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    BOOST_TEST(took_s < 10, "immediate=" << immediate);
  }
  holder.release();
  BOOST_TEST(count_notes(b) == 0);  // nothing half-written
  // The bound is the caller's deadline only: after it, the connections wait for locks as before.
  BOOST_TEST(b.transaction([&] { return b.exec("INSERT INTO notes(id, body) VALUES(1, 'x')"); }).ok());
}

BOOST_AUTO_TEST_SUITE_END()
