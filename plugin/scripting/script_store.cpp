#include "scripting/script_store.h"

#include <chrono>

#include "store/db.h"

namespace fb::detail {
namespace {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Status too_many() {
  return Status::TooLarge("store: this integration already has " + std::to_string(ScriptStore::kMaxKeysPerIntegration) +
                          " keys");
}

}  // namespace

Result<std::unique_ptr<ScriptStore>> ScriptStore::open(Db* db) {
  if (db) {
    FB_TRY(db->migrate("scripting", {{1, "CREATE TABLE script_store ("
                                         " integration_id INTEGER NOT NULL,"
                                         " key TEXT NOT NULL,"
                                         " value TEXT NOT NULL,"
                                         " updated_at INTEGER NOT NULL,"
                                         " PRIMARY KEY (integration_id, key)) WITHOUT ROWID"}}));
  }
  return std::unique_ptr<ScriptStore>(new ScriptStore(db));
}

Result<std::optional<std::string>> ScriptStore::get(int64_t integration_id, std::string_view key) {
  if (!db_) {
    std::lock_guard lock(mu_);
    auto it = memory_.find({integration_id, std::string(key)});
    if (it == memory_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  std::optional<std::string> out;
  FB_TRY(db_->with([&]() -> Status {
    Stmt& s = db_->prepare("SELECT value FROM script_store WHERE integration_id = ? AND key = ?");
    s.reset().bind_all(integration_id, key);
    FB_ASSIGN(bool row, s.step());
    if (row) out = s.text(0);
    s.reset();
    return Status::Ok();
  }));
  return out;
}

Status ScriptStore::set(int64_t integration_id, std::string_view key, std::string_view value_json) {
  if (!db_) {
    std::lock_guard lock(mu_);
    std::pair<int64_t, std::string> k{integration_id, std::string(key)};
    if (!memory_.count(k)) {
      int64_t n = 0;
      for (const auto& [kk, _] : memory_) n += kk.first == integration_id;
      if (n >= kMaxKeysPerIntegration) return too_many();
    }
    memory_[k] = std::string(value_json);
    return Status::Ok();
  }
  return db_->transaction([&]() -> Status {
    Stmt& exists = db_->prepare("SELECT 1 FROM script_store WHERE integration_id = ? AND key = ?");
    exists.reset().bind_all(integration_id, key);
    FB_ASSIGN(bool present, exists.step());
    exists.reset();
    if (!present) {
      Stmt& count = db_->prepare("SELECT COUNT(*) FROM script_store WHERE integration_id = ?");
      count.reset().bind_all(integration_id);
      FB_ASSIGN(bool row, count.step());
      int64_t n = row ? count.int64(0) : 0;
      count.reset();
      if (n >= kMaxKeysPerIntegration) return too_many();
    }
    Stmt& up = db_->prepare(
        "INSERT INTO script_store (integration_id, key, value, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (integration_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at");
    up.reset().bind_all(integration_id, key, value_json, unix_now());
    return up.run();
  });
}

Status ScriptStore::remove(int64_t integration_id, std::string_view key) {
  if (!db_) {
    std::lock_guard lock(mu_);
    memory_.erase({integration_id, std::string(key)});
    return Status::Ok();
  }
  return db_->with([&]() -> Status {
    Stmt& s = db_->prepare("DELETE FROM script_store WHERE integration_id = ? AND key = ?");
    s.reset().bind_all(integration_id, key);
    return s.run();
  });
}

}  // namespace fb::detail
