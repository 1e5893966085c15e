#include "scripting/script_store.h"

#include <atomic>
#include <chrono>
#include <vector>

#include "store/db.h"

namespace fb::detail {
namespace {

constexpr const char* kUpsertSql =
    "INSERT INTO script_store (integration_id, key, value, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (integration_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at";
constexpr const char* kDeleteSql = "DELETE FROM script_store WHERE integration_id = ? AND key = ?";

// Whether two Db objects reach the same database (the Bridge opens one per concern on one file).
bool same_database(const Db& a, const Db& b) {
  return &a == &b || (a.engine() == b.engine() && a.path() == b.path() && a.path() != ":memory:" && !a.path().empty());
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Status too_many() {
  return Status::TooLarge("store: this integration already has " + std::to_string(ScriptStore::kMaxKeysPerIntegration) +
                          " keys");
}

}  // namespace

// A thread's batched writes to one store: the final value of each key it touched (nullopt: removed)
// and whether the key was in the table when first touched (for the key limit).
class ScriptStore::Pending final : public BatchWrites {
 public:
  struct Entry {
    bool in_db = false;
    std::optional<std::string> value;
  };
  using Key = std::pair<int64_t, std::string>;

  explicit Pending(Db* db) : db_(db) {}

  Status apply(Db& db) override {
    if (!same_database(db, *db_)) return apply_now();
    return db.transaction([&] { return write(db); });  // joins the caller's transaction
  }
  Status apply_now() override {
    return db_->transaction([&] { return write(*db_); });
  }

  // Keys added minus keys removed for an integration, against the table.
  int64_t delta(int64_t integration_id) const {
    int64_t d = 0;
    for (auto it = entries.lower_bound({integration_id, std::string()}); it != entries.end() && it->first.first == integration_id;
         ++it) {
      if (it->second.value && !it->second.in_db) ++d;
      if (!it->second.value && it->second.in_db) --d;
    }
    return d;
  }

  std::map<Key, Entry> entries;

 private:
  Status write(Db& db) {
    const int64_t now = unix_now();
    for (const auto& [key, e] : entries) {
      Stmt& q = db.prepare(e.value ? kUpsertSql : kDeleteSql);
      q.reset();
      if (e.value) {
        q.bind_all(key.first, key.second, *e.value, now);
      } else {
        q.bind_all(key.first, key.second);
      }
      FB_TRY(q.run());
    }
    return Status::Ok();
  }
  Db* db_;
};

namespace {

// Each store's batches on this thread, by the store's serial (not its address, which a later store
// may reuse).
struct ThreadBatch {
  uint64_t store_serial;
  std::unique_ptr<BatchWrites> pending;
};
std::vector<ThreadBatch>& thread_batches() {
  thread_local std::vector<ThreadBatch> batches;
  return batches;
}
std::atomic<uint64_t> next_store_serial{1};

Result<bool> key_exists(Db& db, int64_t integration_id, std::string_view key) {
  bool present = false;
  FB_TRY(db.with([&]() -> Status {
    Stmt& q = db.prepare("SELECT 1 FROM script_store WHERE integration_id = ? AND key = ?");
    q.reset().bind_all(integration_id, key);
    FB_ASSIGN(present, q.step());
    q.reset();
    return Status::Ok();
  }));
  return present;
}

Result<int64_t> key_count(Db& db, int64_t integration_id) {
  int64_t n = 0;
  FB_TRY(db.with([&]() -> Status {
    Stmt& q = db.prepare("SELECT COUNT(*) FROM script_store WHERE integration_id = ?");
    q.reset().bind_all(integration_id);
    FB_ASSIGN(bool row, q.step());
    n = row ? q.int64(0) : 0;
    q.reset();
    return Status::Ok();
  }));
  return n;
}

}  // namespace

ScriptStore::ScriptStore(Db* db) : db_(db), serial_(next_store_serial.fetch_add(1)) {}

ScriptStore::Pending* ScriptStore::batch_of_this_thread() {
  if (!db_) return nullptr;
  for (ThreadBatch& b : thread_batches()) {
    if (b.store_serial == serial_) return static_cast<Pending*>(b.pending.get());
  }
  return nullptr;
}

void ScriptStore::begin_batch() {
  if (!db_) return;
  auto& batches = thread_batches();
  for (ThreadBatch& b : batches) {
    if (b.store_serial == serial_) {
      b.pending = std::make_unique<Pending>(db_);
      return;
    }
  }
  batches.push_back({serial_, std::make_unique<Pending>(db_)});
}

std::unique_ptr<BatchWrites> ScriptStore::end_batch() {
  auto& batches = thread_batches();
  for (size_t i = 0; i < batches.size(); ++i) {
    if (batches[i].store_serial != serial_) continue;
    std::unique_ptr<BatchWrites> out = std::move(batches[i].pending);
    batches.erase(batches.begin() + static_cast<std::ptrdiff_t>(i));
    if (out && static_cast<Pending*>(out.get())->entries.empty()) out.reset();
    return out;
  }
  return nullptr;
}

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
  if (Pending* p = batch_of_this_thread()) {
    auto it = p->entries.find({integration_id, std::string(key)});
    if (it != p->entries.end()) return it->second.value;
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
  if (Pending* p = batch_of_this_thread()) {
    Pending::Key k{integration_id, std::string(key)};
    auto it = p->entries.find(k);
    bool in_db = false;
    if (it == p->entries.end()) {
      FB_ASSIGN(in_db, key_exists(*db_, integration_id, key));
    }
    bool present = it != p->entries.end() ? it->second.value.has_value() : in_db;
    if (!present) {
      FB_ASSIGN(int64_t n, key_count(*db_, integration_id));
      if (n + p->delta(integration_id) >= kMaxKeysPerIntegration) return too_many();
    }
    if (it == p->entries.end()) it = p->entries.emplace(std::move(k), Pending::Entry{in_db, std::nullopt}).first;
    it->second.value = std::string(value_json);
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
    Stmt& up = db_->prepare(kUpsertSql);
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
  if (Pending* p = batch_of_this_thread()) {
    Pending::Key k{integration_id, std::string(key)};
    auto it = p->entries.find(k);
    if (it == p->entries.end()) {
      FB_ASSIGN(bool in_db, key_exists(*db_, integration_id, key));
      it = p->entries.emplace(std::move(k), Pending::Entry{in_db, std::nullopt}).first;
    }
    it->second.value.reset();
    return Status::Ok();
  }
  return db_->with([&]() -> Status {
    Stmt& s = db_->prepare(kDeleteSql);
    s.reset().bind_all(integration_id, key);
    return s.run();
  });
}

}  // namespace fb::detail
