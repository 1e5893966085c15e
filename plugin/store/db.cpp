#include "store/db.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>

#include "core/log.h"

namespace fb::detail {

// --- Stmt ---

Stmt& Stmt::operator=(Stmt&& o) noexcept {
  if (this != &o) {
    if (s_ && owned_) sqlite3_finalize(s_);
    db_ = o.db_;
    s_ = o.s_;
    owned_ = o.owned_;
    o.s_ = nullptr;
  }
  return *this;
}

Stmt::~Stmt() {
  if (s_ && owned_) sqlite3_finalize(s_);
}

Stmt& Stmt::bind(int i, int64_t v) {
  sqlite3_bind_int64(s_, i, v);
  return *this;
}
Stmt& Stmt::bind(int i, double v) {
  sqlite3_bind_double(s_, i, v);
  return *this;
}
Stmt& Stmt::bind(int i, std::string_view v) {
  sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}
Stmt& Stmt::bind(int i, std::nullptr_t) {
  sqlite3_bind_null(s_, i);
  return *this;
}
Stmt& Stmt::bind_blob(int i, std::string_view bytes) {
  sqlite3_bind_blob(s_, i, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  return *this;
}

Result<bool> Stmt::step() {
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

Status Stmt::run() {
  for (;;) {
    auto r = step();
    if (!r.ok()) return r.status();
    if (!*r) break;
  }
  reset();
  return Status::Ok();
}

Stmt& Stmt::reset() {
  sqlite3_reset(s_);
  sqlite3_clear_bindings(s_);
  return *this;
}

int64_t Stmt::int64(int col) const { return sqlite3_column_int64(s_, col); }
double Stmt::real(int col) const { return sqlite3_column_double(s_, col); }
bool Stmt::is_null(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }

std::string Stmt::text(int col) const {
  const unsigned char* p = sqlite3_column_text(s_, col);
  if (!p) return {};
  return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(s_, col)));
}

std::optional<std::string> Stmt::opt_text(int col) const {
  if (is_null(col)) return std::nullopt;
  return text(col);
}

std::optional<int64_t> Stmt::opt_int64(int col) const {
  if (is_null(col)) return std::nullopt;
  return int64(col);
}

std::string Stmt::blob(int col) const {
  const void* p = sqlite3_column_blob(s_, col);
  if (!p) return {};
  return std::string(static_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(s_, col)));
}

// --- Db ---

namespace {
// Runs fn, turning an exception into a Status so a transaction always ends (commit or rollback).
Status guarded(const std::function<Status()>& fn, const char* where) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return Status::Internal(std::string("exception in ") + where + ": " + e.what());
  }
}
}  // namespace

Db::~Db() {
  cache_.clear();  // finalize statements before closing
  if (db_) sqlite3_close_v2(db_);
}

Status Db::last_error(std::string_view what) const {
  std::string m(what);
  m += ": ";
  m += db_ ? sqlite3_errmsg(db_) : "no connection";
  return Status::Io(std::move(m));
}

Result<std::unique_ptr<Db>> Db::open(const std::string& path, DbOptions options) {
  // The file holds meeting content and sealed tokens: a new one is made private (0600) before
  // SQLite creates it with its default 0644, and SQLite gives the -wal and -shm files the mode of
  // the database file. An existing file keeps the mode its owner gave it.
  if (!options.read_only && !path.empty() && path != ":memory:" && path.rfind("file:", 0) != 0) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) ::close(fd);  // otherwise SQLite opens (or fails on) what is there and says why
  }
  std::unique_ptr<Db> db(new Db());
  db->path_ = path;
  db->full_sync_ = options.full_sync && !options.read_only;
  int flags = options.read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  flags |= SQLITE_OPEN_NOMUTEX;  // our own mutex serialises use of the connection
  if (sqlite3_open_v2(path.c_str(), &db->db_, flags, nullptr) != SQLITE_OK) {
    return Status::Io("cannot open database '" + path + "': " +
                      (db->db_ ? sqlite3_errmsg(db->db_) : "out of memory"));
  }
  // SQLite falls back to a read-only connection when the file cannot be opened for writing (a
  // read-only file system, no permission): every write would then fail far from here.
  if (!options.read_only && sqlite3_db_readonly(db->db_, "main") == 1) {
    return Status::Io("database '" + path +
                      "' is read-only (a read-only file system, or no permission to write it); it must be writable");
  }
  db->busy_timeout_ms_ = options.busy_timeout_ms;
  sqlite3_busy_timeout(db->db_, options.busy_timeout_ms);
  sqlite3_commit_hook(
      db->db_,
      [](void* self) {
        static_cast<Db*>(self)->commits_.fetch_add(1, std::memory_order_relaxed);
        return 0;  // 0: let the commit go ahead
      },
      db.get());
  sqlite3_extended_result_codes(db->db_, 0);
  std::string pragmas = "PRAGMA foreign_keys=ON;";
  if (!options.read_only) {
    pragmas += "PRAGMA journal_mode=WAL;";
    pragmas += options.full_sync ? "PRAGMA synchronous=FULL;" : "PRAGMA synchronous=NORMAL;";
  }
  char* err = nullptr;
  if (sqlite3_exec(db->db_, pragmas.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string m = err ? err : "unknown error";
    sqlite3_free(err);
    return Status::Io("cannot configure database '" + path + "': " + m);
  }
  Status s = db->with([&] {
    return db->exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations("
        " component TEXT NOT NULL, version INTEGER NOT NULL, applied_at INTEGER NOT NULL,"
        " PRIMARY KEY(component, version))");
  });
  if (!s.ok()) return s;
  return db;
}

Status Db::with(const std::function<Status()>& fn) {
  std::lock_guard lock(mu_);
  return guarded(fn, "database work");
}

Status Db::transaction(const std::function<Status()>& fn, bool immediate) {
  std::lock_guard lock(mu_);
  return run_transaction(fn, immediate);
}

Status Db::transaction_until(std::chrono::steady_clock::time_point deadline, const std::function<Status()>& fn) {
  std::unique_lock lock(mu_, std::defer_lock);
  if (!lock.try_lock_until(deadline)) {
    return Status::Unavailable("database '" + path_ + "': the connection stayed busy past the deadline");
  }
  if (tx_depth_ > 0) return run_transaction(fn, true);
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return Status::Unavailable("database '" + path_ + "': no time left before the deadline");
  // Only BEGIN IMMEDIATE waits for another connection (in WAL mode it takes the write lock), so
  // only it gets the shorter busy timeout.
  sqlite3_busy_timeout(db_, static_cast<int>(std::min<int64_t>(left.count(), busy_timeout_ms_)));
  Status begin = exec("BEGIN IMMEDIATE");
  sqlite3_busy_timeout(db_, busy_timeout_ms_);
  if (!begin.ok()) {
    if (begin.is(Code::kConflict)) {
      return Status::Unavailable("database '" + path_ + "' is locked by another connection: " + begin.message());
    }
    return begin;
  }
  return run_transaction(fn, false, true);
}

Status Db::run_transaction(const std::function<Status()>& fn, bool immediate, bool begun) {
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

Stmt& Db::prepare(std::string_view sql) {
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
  auto [pos, _] = cache_.emplace(std::string(sql), Stmt(db_, s, true));
  return pos->second;
}

Result<Stmt> Db::prepare_uncached(std::string_view sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &s, nullptr) != SQLITE_OK) {
    return last_error("prepare");
  }
  return Stmt(db_, s, true);
}

Status Db::exec(std::string_view sql) {
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

int64_t Db::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }
int Db::changes() const { return sqlite3_changes(db_); }

Result<int> Db::schema_version(std::string_view component) {
  int v = 0;
  Status s = with([&] {
    Stmt& q = prepare("SELECT COALESCE(MAX(version),0) FROM schema_migrations WHERE component=?");
    q.bind(1, component);
    auto r = q.step();
    if (!r.ok()) return r.status();
    v = static_cast<int>(q.int64(0));
    q.reset();
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return v;
}

Status Db::migrate(std::string_view component, const std::vector<Migration>& steps) {
  int last = 0;
  for (const Migration& m : steps) {  // check the whole list before applying any of it
    if (m.version <= last) {
      return Status::Internal("migrations of '" + std::string(component) + "' are not strictly increasing");
    }
    last = m.version;
  }
  for (const Migration& m : steps) {
    Status s = transaction([&]() -> Status {
      Stmt& q = prepare("SELECT 1 FROM schema_migrations WHERE component=? AND version=?");
      q.bind(1, component).bind(2, m.version);
      auto have = q.step();
      q.reset();
      if (!have.ok()) return have.status();
      if (*have) return Status::Ok();
      FB_TRY(exec(m.sql).with_context("migration " + std::string(component) + "/" + std::to_string(m.version)));
      Stmt& ins = prepare("INSERT INTO schema_migrations(component, version, applied_at) VALUES(?,?,strftime('%s','now'))");
      ins.bind(1, component).bind(2, m.version);
      FB_TRY(ins.run());
      FB_LOG(kInfo, "store") << "applied migration " << component << "/" << m.version;
      return Status::Ok();
    });
    FB_TRY(s);
  }
  return Status::Ok();
}

bool disable_sqlite_memory_statistics() { return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) == SQLITE_OK; }

}  // namespace fb::detail
