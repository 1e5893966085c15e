// db.cpp: what every driver shares: choosing the driver, statement helpers, migrations.
#include "store/db.h"

#include <ctime>

#include "core/log.h"

namespace fb::detail {

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
