// sqlite_db.cpp: the SQLite driver behind Db/Stmt (the embedded default; see db.h).
#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include "store/db.h"
#include "store/timed_recursive_mutex.h"

namespace fb::detail {
namespace {

class SqliteStmt final : public StmtDriver {
 public:
  SqliteStmt(sqlite3* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  ~SqliteStmt() override { sqlite3_finalize(s_); }

  void bind_int64(int i, int64_t v) override { sqlite3_bind_int64(s_, i, v); }
  void bind_double(int i, double v) override { sqlite3_bind_double(s_, i, v); }
  void bind_text(int i, std::string_view v) override {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void bind_blob(int i, std::string_view bytes) override {
    sqlite3_bind_blob(s_, i, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  }
  void bind_null(int i) override { sqlite3_bind_null(s_, i); }

  Result<bool> step() override {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    std::string msg = sqlite3_errmsg(db_);
    Code code = (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) ? Code::kConflict
                : (rc == SQLITE_CONSTRAINT)                 ? Code::kAlreadyExists
                                                            : Code::kIo;
    sqlite3_reset(s_);
    return Status(code, "sqlite: " + msg);
  }
  void reset() override {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }

  int64_t int64(int col) const override { return sqlite3_column_int64(s_, col); }
  double real(int col) const override { return sqlite3_column_double(s_, col); }
  bool is_null(int col) const override { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
  std::string text(int col) const override {
    const unsigned char* p = sqlite3_column_text(s_, col);
    if (!p) return {};
    return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(s_, col)));
  }
  std::string blob(int col) const override {
    const void* p = sqlite3_column_blob(s_, col);
    if (!p) return {};
    return std::string(static_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(s_, col)));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_;
};

// Runs fn, turning an exception into a Status so a transaction always ends (commit or rollback).
Status guarded(const std::function<Status()>& fn, const char* where) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return Status::Internal(std::string("exception in ") + where + ": " + e.what());
  }
}

class SqliteDb final : public Db {
 public:
  SqliteDb(const std::string& path, bool full_sync) : Db(path, full_sync) {}
  ~SqliteDb() override {
    cache_.clear();  // finalize statements before closing
    if (db_) sqlite3_close_v2(db_);
  }

  Status init(const DbOptions& options);

  Engine engine() const override { return Engine::kSqlite; }
  Status do_transaction(const std::function<Status()>& fn, bool immediate) override {
    std::lock_guard lock(mu_);
    return run_transaction(fn, immediate);
  }
  Status do_transaction_until(std::chrono::steady_clock::time_point deadline, const std::function<Status()>& fn,
                              bool immediate) override;
  Status with(const std::function<Status()>& fn) override {
    std::lock_guard lock(mu_);
    return guarded(fn, "database work");
  }
  Stmt& prepare(std::string_view sql) override;
  Result<Stmt> prepare_uncached(std::string_view sql) override;
  Status exec(std::string_view sql) override;
  int64_t last_insert_rowid() const override { return sqlite3_last_insert_rowid(db_); }
  int changes() const override { return sqlite3_changes(db_); }
  Result<bool> has_table(std::string_view table) override;
  Result<int64_t> highest_id_given(std::string_view table) override;
  Status last_error(std::string_view what) const override {
    std::string m(what);
    m += ": ";
    m += db_ ? sqlite3_errmsg(db_) : "no connection";
    return Status::Io(std::move(m));
  }

 private:
  // REQUIRES: mu_ held. BEGIN (unless `begun`: the caller did), fn, then COMMIT or ROLLBACK; joins
  // an outer transaction of this thread instead.
  Status run_transaction(const std::function<Status()>& fn, bool immediate, bool begun = false);

  sqlite3* db_ = nullptr;
  int busy_timeout_ms_ = 0;
  TimedRecursiveMutex mu_;  // not std::recursive_timed_mutex: see timed_recursive_mutex.h
  int tx_depth_ = 0;  // guarded by mu_
  std::unordered_map<std::string, Stmt> cache_;
};

Status SqliteDb::init(const DbOptions& options) {
  const std::string& p = path();
  int flags = options.read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  flags |= SQLITE_OPEN_NOMUTEX;  // our own mutex serialises use of the connection
  if (sqlite3_open_v2(p.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    return Status::Io("cannot open database '" + p + "': " + (db_ ? sqlite3_errmsg(db_) : "out of memory"));
  }
  // SQLite falls back to a read-only connection when the file cannot be opened for writing (a
  // read-only file system, no permission): every write would then fail far from here.
  if (!options.read_only && sqlite3_db_readonly(db_, "main") == 1) {
    return Status::Io("database '" + p +
                      "' is read-only (a read-only file system, or no permission to write it); it must be writable");
  }
  busy_timeout_ms_ = options.busy_timeout_ms;
  sqlite3_busy_timeout(db_, options.busy_timeout_ms);
  sqlite3_commit_hook(
      db_,
      [](void* self) {
        static_cast<SqliteDb*>(self)->count_commit();
        return 0;  // 0: let the commit go ahead
      },
      this);
  sqlite3_extended_result_codes(db_, 0);
  std::string pragmas = "PRAGMA foreign_keys=ON;";
  if (!options.read_only) {
    pragmas += "PRAGMA journal_mode=WAL;";
    pragmas += options.full_sync ? "PRAGMA synchronous=FULL;" : "PRAGMA synchronous=NORMAL;";
  }
  char* err = nullptr;
  if (sqlite3_exec(db_, pragmas.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string m = err ? err : "unknown error";
    sqlite3_free(err);
    return Status::Io("cannot configure database '" + p + "': " + m);
  }
  // A plain CREATE (not the write-locked one of other drivers): a read-only connection must open
  // a database whose table exists, and SQLite's IF NOT EXISTS is safe between processes.
  return with([&] {
    return exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations("
        " component TEXT NOT NULL, version INTEGER NOT NULL, applied_at INTEGER NOT NULL,"
        " PRIMARY KEY(component, version))");
  });
}

Status SqliteDb::do_transaction_until(std::chrono::steady_clock::time_point deadline,
                                      const std::function<Status()>& fn, bool immediate) {
  std::unique_lock lock(mu_, std::defer_lock);
  if (!lock.try_lock_until(deadline)) {
    return Status::Unavailable("database '" + path() + "': the connection stayed busy past the deadline");
  }
  if (tx_depth_ > 0 || !immediate) return run_transaction(fn, immediate);
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return Status::Unavailable("database '" + path() + "': no time left before the deadline");
  // Only BEGIN IMMEDIATE waits for another connection (in WAL mode it takes the write lock), so
  // only it gets the shorter busy timeout.
  sqlite3_busy_timeout(db_, static_cast<int>(std::min<int64_t>(left.count(), busy_timeout_ms_)));
  Status begin = exec("BEGIN IMMEDIATE");
  sqlite3_busy_timeout(db_, busy_timeout_ms_);
  if (!begin.ok()) {
    if (begin.is(Code::kConflict)) {
      return Status::Unavailable("database '" + path() + "' is locked by another connection: " + begin.message());
    }
    return begin;
  }
  return run_transaction(fn, false, true);
}

Status SqliteDb::run_transaction(const std::function<Status()>& fn, bool immediate, bool begun) {
  if (tx_depth_ > 0) {  // join the outer transaction
    ++tx_depth_;
    Status s = guarded(fn, "transaction");
    --tx_depth_;
    return s;
  }
  if (!begun) FB_TRY(exec(immediate ? "BEGIN IMMEDIATE" : "BEGIN"));
  ++tx_depth_;
  Status s = guarded(fn, "transaction");
  --tx_depth_;
  if (s.ok()) {
    Status c = exec("COMMIT");
    if (c.ok()) return s;
    s = c;
  }
  sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  return s;
}

Stmt& SqliteDb::prepare(std::string_view sql) {
  auto it = cache_.find(std::string(sql));
  if (it != cache_.end()) {
    it->second.reset();
    return it->second;
  }
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &s,
                         nullptr) != SQLITE_OK) {
    // A bad SQL string is a programming error in our own code: make it loud.
    throw std::logic_error("sqlite prepare failed: " + std::string(sqlite3_errmsg(db_)) + " in: " +
                           std::string(sql));
  }
  auto [pos, _] = cache_.emplace(std::string(sql), Stmt(std::make_unique<SqliteStmt>(db_, s)));
  return pos->second;
}

Result<Stmt> SqliteDb::prepare_uncached(std::string_view sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &s, nullptr) != SQLITE_OK) {
    return last_error("prepare");
  }
  return Stmt(std::make_unique<SqliteStmt>(db_, s));
}

Status SqliteDb::exec(std::string_view sql) {
  std::string copy(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, copy.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string m = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    Code code = (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) ? Code::kConflict : Code::kIo;
    return Status(code, "sqlite: " + m);
  }
  return Status::Ok();
}

Result<bool> SqliteDb::has_table(std::string_view table) {
  FB_ASSIGN(auto v, first_int("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", table));
  return v.has_value();
}

Result<int64_t> SqliteDb::highest_id_given(std::string_view table) {
  // sqlite_sequence exists once some AUTOINCREMENT table has been created.
  FB_ASSIGN(bool have, has_table("sqlite_sequence"));
  if (!have) return int64_t{0};
  FB_ASSIGN(auto v, first_int("SELECT seq FROM sqlite_sequence WHERE name=?", table));
  return v.value_or(0);
}

}  // namespace

Result<std::unique_ptr<Db>> open_sqlite(const std::string& path, DbOptions options) {
  // The file holds meeting content and sealed tokens: a new one is made private (0600) before
  // SQLite creates it with its default 0644, and SQLite gives the -wal and -shm files the mode of
  // the database file. An existing file keeps the mode its owner gave it.
  if (!options.read_only && !path.empty() && path != ":memory:" && path.rfind("file:", 0) != 0) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) ::close(fd);  // otherwise SQLite opens (or fails on) what is there and says why
  }
  auto db = std::make_unique<SqliteDb>(path, options.full_sync && !options.read_only);
  FB_TRY(db->init(options));
  return std::unique_ptr<Db>(std::move(db));
}

bool disable_sqlite_memory_statistics() { return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) == SQLITE_OK; }

}  // namespace fb::detail
