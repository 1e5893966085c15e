// db.cpp: what every driver shares: choosing the driver, statement helpers, migrations.
#include "store/db.h"

#include <atomic>
#include <ctime>

#include "core/log.h"
#include "store/stmt_runs.h"

namespace fb::detail {

namespace {
thread_local uint64_t t_stmt_runs = 0;
}  // namespace

uint64_t stmt_runs_on_this_thread() { return t_stmt_runs; }

Result<bool> Stmt::step() {
  if (!started_) {
    started_ = true;
    ++t_stmt_runs;
  }
  Result<bool> r = d_->step();
  if (!r.ok() || !*r) started_ = false;  // ended: the next step executes it again
  return r;
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

std::optional<std::string> Stmt::opt_text(int col) const {
  if (is_null(col)) return std::nullopt;
  return text(col);
}

std::optional<int64_t> Stmt::opt_int64(int col) const {
  if (is_null(col)) return std::nullopt;
  return int64(col);
}

namespace {

// This thread's open transactions, outermost first, each with its after-commit work.
struct TxFrame {
  Db* db;
  std::vector<std::function<void()>> after;
};
thread_local std::vector<TxFrame> tx_frames;
std::atomic<void (*)(const Db&)> commit_observer{nullptr};

}  // namespace

Status Db::transaction(const std::function<Status()>& fn, bool immediate) {
  return framed([&] { return do_transaction(fn, immediate); });
}

Status Db::transaction_until(std::chrono::steady_clock::time_point deadline, const std::function<Status()>& fn,
                             bool immediate) {
  return framed([&] { return do_transaction_until(deadline, fn, immediate); });
}

Status Db::framed(const std::function<Status()>& run) {
  for (const TxFrame& f : tx_frames) {
    if (f.db == this) return run();  // the driver joins this thread's open transaction
  }
  tx_frames.push_back({this, {}});
  Status s = run();
  std::vector<std::function<void()>> after = std::move(tx_frames.back().after);
  tx_frames.pop_back();
  if (!s.ok()) return s;  // rolled back (or never begun): its after-commit work is dropped
  if (auto observe = commit_observer.load()) observe(*this);
  for (auto& fn : after) {
    try {
      fn();
    } catch (const std::exception& e) {
      FB_LOG(kError, "store") << "after-commit work threw: " << e.what();
    }
  }
  return s;
}

void Db::after_commit(std::function<void()> fn) {
  for (auto it = tx_frames.rbegin(); it != tx_frames.rend(); ++it) {
    if (it->db == this) {
      it->after.push_back(std::move(fn));
      return;
    }
  }
  fn();
}

Db* Db::open_transaction_on(const Db& store) {
  for (auto it = tx_frames.rbegin(); it != tx_frames.rend(); ++it) {
    if (it->db->same_store(store)) return it->db;
  }
  return nullptr;
}

bool Db::same_store(const Db& other) const {
  if (this == &other) return true;
  if (path_.empty() || path_ == ":memory:" || path_.rfind("file:", 0) == 0) return false;
  return engine() == other.engine() && path_ == other.path_;
}

void Db::set_commit_observer(void (*observer)(const Db&)) { commit_observer.store(observer); }

bool Db::is_postgres_url(std::string_view target) {
  return target.rfind("postgresql://", 0) == 0 || target.rfind("postgres://", 0) == 0;
}

Result<std::unique_ptr<Db>> Db::open(const std::string& target, DbOptions options) {
  if (is_postgres_url(target)) return open_postgres(target, options);
  return open_sqlite(target, options);
}

Status Db::ensure_migrations_table() {
  // Under the write lock: PostgreSQL's CREATE TABLE IF NOT EXISTS is not safe against another
  // process creating the same table at the same moment.
  return transaction([&] {
    return exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations("
        " component TEXT NOT NULL, version INTEGER NOT NULL, applied_at INTEGER NOT NULL,"
        " PRIMARY KEY(component, version))");
  });
}

Result<std::optional<int64_t>> Db::first_int(std::string_view sql, std::string_view arg) {
  Stmt& q = prepare(sql);
  q.bind(1, arg);
  auto r = q.step();
  std::optional<int64_t> v;
  if (r.ok() && *r) v = q.int64(0);
  q.reset();
  if (!r.ok()) return r.status();
  return v;
}

std::unique_ptr<DbNotifications> Db::listen(const std::string&) { return nullptr; }

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
      const char* sql = engine() == Engine::kPostgres && m.postgres_sql ? m.postgres_sql : m.sql;
      FB_TRY(exec(sql).with_context("migration " + std::string(component) + "/" + std::to_string(m.version)));
      Stmt& ins = prepare("INSERT INTO schema_migrations(component, version, applied_at) VALUES(?,?,?)");
      ins.bind(1, component).bind(2, m.version).bind(3, static_cast<int64_t>(std::time(nullptr)));
      FB_TRY(ins.run());
      FB_LOG(kInfo, "store") << "applied migration " << component << "/" << m.version;
      return Status::Ok();
    });
    FB_TRY(s);
  }
  return Status::Ok();
}

}  // namespace fb::detail
