// db.h: a thin, safe wrapper over one SQLite connection, with per-component migrations.
//
// Threading: a Db is one connection guarded by its own mutex. Every use goes through
// transaction() or with(), which hold that mutex, so one Db may be shared by threads. For
// parallel readers or writers, open several Db objects on the same file: WAL mode lets readers
// run beside the one writer, and busy_timeout makes writers in other connections or processes
// wait instead of failing.
//
// Migrations: each component (oauth, sync, webhooks, ...) owns an ordered list of
// {version, sql} steps recorded in the table schema_migrations(component, version). migrate()
// applies the missing ones, each in its own transaction, so components evolve independently.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fathom_bridge/status.h"
#include "store/timed_recursive_mutex.h"

struct sqlite3;
struct sqlite3_stmt;

namespace fb::detail {

struct DbOptions {
  bool full_sync = false;      // PRAGMA synchronous=FULL (durable against power loss) vs NORMAL
  int busy_timeout_ms = 10000;  // wait this long for another connection's write lock
  bool read_only = false;
};

class Stmt {
 public:
  Stmt() = default;
  Stmt(sqlite3* db, sqlite3_stmt* s, bool owned) : db_(db), s_(s), owned_(owned) {}
  Stmt(Stmt&& o) noexcept : db_(o.db_), s_(o.s_), owned_(o.owned_) { o.s_ = nullptr; }
  Stmt& operator=(Stmt&& o) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt();

  // Binding, 1-based. Strings and blobs are copied by SQLite (SQLITE_TRANSIENT).
  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, int v) { return bind(i, static_cast<int64_t>(v)); }
  Stmt& bind(int i, double v);
  Stmt& bind(int i, std::string_view v);
  Stmt& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, std::nullptr_t);
  Stmt& bind_blob(int i, std::string_view bytes);
  template <typename T>
  Stmt& bind(int i, const std::optional<T>& v) {
    return v ? bind(i, *v) : bind(i, nullptr);
  }
  // Binds all arguments from index 1.
  template <typename... A>
  Stmt& bind_all(const A&... args) {
    int i = 0;
    (bind(++i, args), ...);
    return *this;
  }

  // Executes one step: true when a row is ready, false when done.
  Result<bool> step();
  // Steps to completion (for statements without rows).
  Status run();
  Stmt& reset();

  int64_t int64(int col) const;
  double real(int col) const;
  std::string text(int col) const;  // "" for NULL
  std::optional<std::string> opt_text(int col) const;
  std::optional<int64_t> opt_int64(int col) const;
  std::string blob(int col) const;
  bool is_null(int col) const;

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* s_ = nullptr;
  bool owned_ = true;
};

struct Migration {
  int version;
  const char* sql;
};

// Steps q to its end, calling on_row(q) for each row, and always resets it (a statement left
// mid-result would keep an old read snapshot open on this connection and hide other processes'
// commits from later reads).
template <typename F>
Status each_row(Stmt& q, F&& on_row) {
  for (;;) {
    auto more = q.step();
    if (!more.ok()) {
      q.reset();
      return more.status();
    }
    if (!*more) break;
    on_row(q);
  }
  q.reset();
  return Status::Ok();
}

class Db {
 public:
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // Opens (creating) the database file. ":memory:" works for throwaway tests. A new file is
  // created 0600 (and so are its -wal and -shm); an existing file keeps its mode.
  static Result<std::unique_ptr<Db>> open(const std::string& path, DbOptions options = {});

  const std::string& path() const { return path_; }
  // Whether commits are durable against power loss (DbOptions::full_sync).
  bool full_sync() const { return full_sync_; }

  // Runs fn holding the connection lock inside BEGIN IMMEDIATE ... COMMIT (or BEGIN DEFERRED
  // when immediate is false). A non-ok Status from fn, or an exception, rolls back. Nested calls
  // from the same thread join the outer transaction.
  Status transaction(const std::function<Status()>& fn, bool immediate = true);
  // The same (BEGIN IMMEDIATE) for a caller that has promised an answer by `deadline`: waiting for
  // this connection's lock and for another connection's write lock both end there, with
  // kUnavailable, instead of after busy_timeout_ms. The deadline does not bound fn itself.
  Status transaction_until(std::chrono::steady_clock::time_point deadline, const std::function<Status()>& fn);
  // Runs fn holding the connection lock, outside any explicit transaction (single statements
  // are atomic on their own).
  Status with(const std::function<Status()>& fn);

  // REQUIRES: called inside transaction() or with(). Statements are cached by SQL text.
  Stmt& prepare(std::string_view sql);
  // A one-off statement that is not cached. REQUIRES: inside transaction() or with().
  Result<Stmt> prepare_uncached(std::string_view sql);
  // Executes one or more statements with no parameters. REQUIRES: inside transaction()/with().
  Status exec(std::string_view sql);
  int64_t last_insert_rowid() const;
  int changes() const;
  // Write transactions this connection has committed since it was opened: explicit ones and
  // single statements that wrote (autocommit), counted by SQLite's commit hook. Read-only work
  // commits nothing. Tests use it to check a batch's bookkeeping is one transaction. Thread-safe.
  int64_t commits() const { return commits_.load(std::memory_order_relaxed); }

  // Applies the component's migrations that are not yet recorded. Safe to call from several
  // processes at once: each step runs under BEGIN IMMEDIATE and re-checks its version.
  Status migrate(std::string_view component, const std::vector<Migration>& steps);
  // The highest applied version of a component (0 when none).
  Result<int> schema_version(std::string_view component);

  // Serialises a Status for the last SQLite error on this connection.
  Status last_error(std::string_view what) const;

 private:
  Db() = default;
  // REQUIRES: mu_ held. BEGIN (unless `begun`: the caller did), fn, then COMMIT or ROLLBACK; joins
  // an outer transaction of this thread instead.
  Status run_transaction(const std::function<Status()>& fn, bool immediate, bool begun = false);
  sqlite3* db_ = nullptr;
  std::string path_;
  bool full_sync_ = false;
  int busy_timeout_ms_ = 0;
  TimedRecursiveMutex mu_;  // not std::recursive_timed_mutex: see timed_recursive_mutex.h
  int tx_depth_ = 0;  // guarded by mu_
  std::atomic<int64_t> commits_{0};
  std::unordered_map<std::string, Stmt> cache_;
};

// For a process that is ours alone (`fathom-bridge serve`, benchmarks): turns off SQLite's
// global memory statistics, which take a process-wide mutex on every SQLite allocation (about 2%
// of a webhook delivery's CPU). Process-wide, so a library never calls it on a host's behalf.
// Effective only before SQLite is first used; returns whether it took effect.
bool disable_sqlite_memory_statistics();

}  // namespace fb::detail
