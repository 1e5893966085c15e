// db.h: THE STORE SEAM. Every store (integrations, OAuth states, meetings, sync state, the webhook
// inbox and registry, script state, the event feed) talks to its database through the two
// classes here, `Db` and `Stmt`, and nothing else. A database engine is a driver behind them:
//
//   sqlite_db.cpp  the SQLite driver (the embedded default: `store.path`)
//   pg_db.cpp      the PostgreSQL driver, on libpq (`store.url = "postgresql://..."`, issue 12),
//                  with pg_dialect.cpp translating the stores' SQL (plugin/store/README.md lists
//                  what it translates)
//
// Db::open() picks the driver from the target: a "postgresql://" or "postgres://" URL opens
// PostgreSQL, anything else is a SQLite file (":memory:" for throwaway tests).
//
// Threading: a Db may be shared by threads. Every use goes through transaction() or with(), which
// hold one connection for the calling thread: SQLite has one connection per Db (guarded by its
// mutex; open several Db objects on the same file for parallel readers beside the one writer);
// PostgreSQL has a pool of DbOptions::pool_size connections per Db, each thread in a
// transaction()/with() holding one of them.
//
// Writes: transaction() (immediate) takes the store-wide write lock, so read-modify-write code
// inside it is serialised against every other writer, across connections and processes: SQLite's
// BEGIN IMMEDIATE; on PostgreSQL a transaction-scoped advisory lock shared by the whole fleet.
// Single statements in with() are atomic on their own but do not take that lock.
//
// Migrations: each component (oauth, sync, webhooks, ...) owns an ordered list of
// {version, sql} steps recorded in the table schema_migrations(component, version). migrate()
// applies the missing ones, each in its own write transaction, so components evolve independently
// and several processes may migrate at once.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fathom_bridge/status.h"

namespace fb::detail {

enum class Engine { kSqlite, kPostgres };

struct DbOptions {
  bool full_sync = false;      // SQLite: PRAGMA synchronous=FULL (durable against power loss) vs NORMAL
  int busy_timeout_ms = 10000;  // wait this long for the write lock (and, PostgreSQL, for a free connection)
  bool read_only = false;       // SQLite only
  int pool_size = 4;            // PostgreSQL: connections this Db opens at most (store.pool_size)
};

// A driver's prepared statement. Bindings are 1-based and copied; column reads are valid after a
// step() that returned true, until the next step() or reset().
class StmtDriver {
 public:
  virtual ~StmtDriver() = default;
  virtual void bind_int64(int i, int64_t v) = 0;
  virtual void bind_double(int i, double v) = 0;
  virtual void bind_text(int i, std::string_view v) = 0;
  virtual void bind_blob(int i, std::string_view bytes) = 0;
  virtual void bind_null(int i) = 0;
  virtual Result<bool> step() = 0;
  virtual void reset() = 0;  // back to the start, bindings cleared
  virtual int64_t int64(int col) const = 0;
  virtual double real(int col) const = 0;
  virtual std::string text(int col) const = 0;
  virtual std::string blob(int col) const = 0;
  virtual bool is_null(int col) const = 0;
};

// A prepared statement: a move-only handle on a driver's statement.
class Stmt {
 public:
  Stmt() = default;
  explicit Stmt(std::unique_ptr<StmtDriver> d) : d_(std::move(d)) {}
  Stmt(Stmt&&) noexcept = default;
  Stmt& operator=(Stmt&&) noexcept = default;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Binding, 1-based. Strings and blobs are copied.
  Stmt& bind(int i, int64_t v) { return d_->bind_int64(i, v), *this; }
  Stmt& bind(int i, int v) { return bind(i, static_cast<int64_t>(v)); }
  Stmt& bind(int i, double v) { return d_->bind_double(i, v), *this; }
  Stmt& bind(int i, std::string_view v) { return d_->bind_text(i, v), *this; }
  Stmt& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, std::nullptr_t) { return d_->bind_null(i), *this; }
  Stmt& bind_blob(int i, std::string_view bytes) { return d_->bind_blob(i, bytes), *this; }
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
  // Steps to completion (for statements without rows), then resets.
  Status run();
  Stmt& reset() { return started_ = false, d_->reset(), *this; }

  int64_t int64(int col) const { return d_->int64(col); }
  double real(int col) const { return d_->real(col); }
  std::string text(int col) const { return d_->text(col); }  // "" for NULL
  std::optional<std::string> opt_text(int col) const;
  std::optional<int64_t> opt_int64(int col) const;
  std::string blob(int col) const { return d_->blob(col); }
  bool is_null(int col) const { return d_->is_null(col); }

 private:
  std::unique_ptr<StmtDriver> d_;
  bool started_ = false;  // stepped since its last reset or end (stmt_runs.h counts executions)
};

struct Migration {
  int version;
  const char* sql;
  // The step's text for PostgreSQL where the dialects differ beyond what the driver translates
  // (nullptr: `sql`, translated; see plugin/store/README.md).
  const char* postgres_sql = nullptr;
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

// Notifications a Db::listen() connection received. wait() is for one thread; interrupt() for any.
class DbNotifications {
 public:
  virtual ~DbNotifications() = default;
  // Waits up to `timeout` for notifications; returns their payloads (empty: none, or interrupted).
  // A lost connection is reopened by a later call (a notification sent meanwhile is missed: a
  // listener keeps a slow poll for that).
  virtual std::vector<std::string> wait(std::chrono::milliseconds timeout) = 0;
  // Ends a wait() in progress (or the next one) at once.
  virtual void interrupt() = 0;
};

class Db {
 public:
  virtual ~Db() = default;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // Opens a store. `target` is a SQLite file (created 0600 when new, and so are its -wal and -shm;
  // ":memory:" for throwaway tests) or a PostgreSQL URL ("postgresql://user@host:5432/db?sslmode=
  // require"; every libpq parameter, sslmode included, passes through). Fails with a message that
  // names the store when it cannot be reached.
  static Result<std::unique_ptr<Db>> open(const std::string& target, DbOptions options = {});
  // Whether `target` names a PostgreSQL database rather than a SQLite file.
  static bool is_postgres_url(std::string_view target);

  virtual Engine engine() const = 0;
  // The SQLite file, or the PostgreSQL URL without its password: for messages and logs.
  const std::string& path() const { return path_; }
  // Whether commits are durable against power loss (SQLite: DbOptions::full_sync; PostgreSQL:
  // whatever the server's synchronous_commit is, reported as true).
  bool full_sync() const { return full_sync_; }

  // Runs fn holding a connection, inside a transaction that holds the store-wide write lock (SQLite
  // BEGIN IMMEDIATE; PostgreSQL BEGIN + the fleet's advisory write lock), or without that lock when
  // immediate is false (SQLite BEGIN DEFERRED, PostgreSQL plain BEGIN: row locks and ON CONFLICT
  // are the caller's concurrency control). A non-ok Status from fn, or an exception, rolls back.
  // Nested calls from the same thread join the outer transaction.
  Status transaction(const std::function<Status()>& fn, bool immediate = true);
  // The same for a caller that has promised an answer by `deadline`: waiting for a connection
  // and (immediate) for the write lock both end there, with kUnavailable, instead of after
  // busy_timeout_ms. The deadline does not bound fn itself, except on PostgreSQL its lock waits
  // (a table another session holds locked): each ends at the deadline at the latest, failing
  // fn's statement (on SQLite the busy timeout bounds them).
  Status transaction_until(std::chrono::steady_clock::time_point deadline, const std::function<Status()>& fn,
                           bool immediate = true);
  // Runs fn holding a connection, outside any explicit transaction (single statements are atomic
  // on their own).
  virtual Status with(const std::function<Status()>& fn) = 0;

  // REQUIRES: called inside transaction() or with(). Statements are cached by SQL text, per
  // connection. SQL uses `?` placeholders in the dialect described in plugin/store/README.md.
  virtual Stmt& prepare(std::string_view sql) = 0;
  // A one-off statement that is not cached. REQUIRES: inside transaction() or with().
  virtual Result<Stmt> prepare_uncached(std::string_view sql) = 0;
  // Executes one or more statements with no parameters. REQUIRES: inside transaction()/with().
  virtual Status exec(std::string_view sql) = 0;
  // The id the last INSERT on this thread's connection gave (after changes() showed it inserted).
  virtual int64_t last_insert_rowid() const = 0;
  // Rows changed by the last INSERT/UPDATE/DELETE on this thread's connection.
  virtual int changes() const = 0;
  // Write transactions this Db has committed since it was opened: explicit ones and single
  // statements that wrote (autocommit). Read-only work commits nothing. Tests use it to check a
  // batch's bookkeeping is one transaction. Thread-safe.
  int64_t commits() const { return commits_.load(std::memory_order_relaxed); }

  // After-commit work (issue 13: an event is written in its cause's transaction and told to
  // listeners only once that commits). Inside this thread's transaction() on this Db, fn is
  // queued and runs on this thread right after the outermost COMMIT, outside every lock, in the
  // order queued; a rollback drops it. Outside such a transaction fn runs at once.
  void after_commit(std::function<void()> fn);
  // The Db of this thread's innermost open transaction() on the same store as `store` (the same
  // database: another component's handle on the same SQLite file or PostgreSQL URL), or nullptr.
  // Writing through it puts a row in that transaction, beside what caused it.
  static Db* open_transaction_on(const Db& store);
  // Whether this Db and `other` reach the same database (":memory:" ones only when they are one).
  bool same_store(const Db& other) const;
  // Test seam: called on the committing thread right after each outermost COMMIT, before its
  // after-commit work (a crash test kills the process there). nullptr: none. Process-wide.
  static void set_commit_observer(void (*observer)(const Db&));

  // Whether a table exists. REQUIRES: inside transaction() or with().
  virtual Result<bool> has_table(std::string_view table) = 0;
  // The highest id ever given by the table's autoincrementing `id` column, also after those rows
  // were deleted (SQLite: sqlite_sequence; PostgreSQL: the column's sequence); 0 when none yet.
  // REQUIRES: inside transaction() or with().
  virtual Result<int64_t> highest_id_given(std::string_view table) = 0;

  // Applies the component's migrations that are not yet recorded. Safe to call from several
  // processes at once: each step runs under the write lock and re-checks its version.
  Status migrate(std::string_view component, const std::vector<Migration>& steps);
  // The highest applied version of a component (0 when none).
  Result<int> schema_version(std::string_view component);

  // A Status for the last error on this thread's connection, prefixed with `what`.
  virtual Status last_error(std::string_view what) const = 0;

  // Wake-ups across processes: a connection of its own that LISTENs on `channel` (PostgreSQL
  // LISTEN/NOTIFY; a writer sends with `SELECT pg_notify(channel, payload)` in its transaction,
  // delivered at commit). Listening when it returns (when the server answers): a notification
  // committed after the call is not missed. nullptr on SQLite, where a process wakes its own
  // workers. Thread-safe.
  virtual std::unique_ptr<DbNotifications> listen(const std::string& channel);

 protected:
  Db(std::string path, bool full_sync) : path_(std::move(path)), full_sync_(full_sync) {}
  void count_commit() { commits_.fetch_add(1, std::memory_order_relaxed); }
  // The drivers' transactions (transaction() and transaction_until() above wrap them with the
  // after-commit queue): commit when fn returns ok (and then return ok), roll back otherwise.
  virtual Status do_transaction(const std::function<Status()>& fn, bool immediate) = 0;
  virtual Status do_transaction_until(std::chrono::steady_clock::time_point deadline,
                                      const std::function<Status()>& fn, bool immediate) = 0;
  // The schema_migrations table, created when missing. Drivers call it from open().
  Status ensure_migrations_table();
  // The first column of the first row of sql with `arg` bound to ?1 (nullopt: no row). For the
  // drivers' catalog look-ups. REQUIRES: inside transaction() or with().
  Result<std::optional<int64_t>> first_int(std::string_view sql, std::string_view arg);

 private:
  // Runs a driver transaction inside this thread's frame for this Db (see after_commit()).
  Status framed(const std::function<Status()>& run);

  std::string path_;
  bool full_sync_ = false;
  std::atomic<int64_t> commits_{0};
};

// The SQLite driver's open (Db::open for a file). Exposed for the driver's own tests.
Result<std::unique_ptr<Db>> open_sqlite(const std::string& path, DbOptions options);
// The PostgreSQL driver's open (Db::open for a URL).
Result<std::unique_ptr<Db>> open_postgres(const std::string& url, DbOptions options);

// For a process that is ours alone (`fathom-bridge serve`, benchmarks): turns off SQLite's
// global memory statistics, which take a process-wide mutex on every SQLite allocation (about 2%
// of a webhook delivery's CPU). Process-wide, so a library never calls it on a host's behalf.
// Effective only before SQLite is first used; returns whether it took effect.
bool disable_sqlite_memory_statistics();

}  // namespace fb::detail
