#include "events/event_store.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "core/log.h"

namespace fb::detail {

using nlohmann::json;

Status migrate_events(Db& db) {
  static const std::vector<Migration> kSteps = {
      {1,
       // AUTOINCREMENT: an id is never given twice, even when the newest rows were deleted.
       // created_at is Unix milliseconds; data is a JSON object.
       "CREATE TABLE events("
       " id INTEGER PRIMARY KEY AUTOINCREMENT,"
       " created_at INTEGER NOT NULL,"
       " type TEXT NOT NULL,"
       " tenant_id TEXT NOT NULL DEFAULT '',"
       " user_id TEXT NOT NULL DEFAULT '',"
       " integration_id INTEGER NOT NULL DEFAULT 0,"
       " detail TEXT NOT NULL DEFAULT '',"
       " data TEXT NOT NULL DEFAULT '{}');"
       "CREATE INDEX events_created_at ON events(created_at);"},
      {2,
       // The push delivery log (events/event_pusher.h): one row per event pushed to the CRM.
       // Times are Unix milliseconds.
       "CREATE TABLE event_deliveries("
       " event_id INTEGER PRIMARY KEY,"
       " status TEXT NOT NULL CHECK(status IN ('pending','delivered','failed')),"
       " attempts INTEGER NOT NULL DEFAULT 0,"
       " next_attempt_at INTEGER NOT NULL,"
       " last_status INTEGER,"
       " last_error TEXT,"
       " updated_at INTEGER NOT NULL);"
       "CREATE INDEX event_deliveries_due ON event_deliveries(status, next_attempt_at);"
       "CREATE TABLE event_push_cursor(id INTEGER PRIMARY KEY CHECK(id = 1), last_queued INTEGER NOT NULL);"},
  };
  return db.migrate("events", kSteps);
}

Result<std::unique_ptr<EventStore>> EventStore::open(Db& db, Clock& clock, EventStoreOptions options) {
  if (options.retention_s <= 0) return Status::Config("setting 'events.retention_s' must be positive");
  FB_TRY(migrate_events(db));
  return std::unique_ptr<EventStore>(new EventStore(db, clock, options));
}

Result<int64_t> EventStore::append(const Event& e, std::function<void(int64_t id)> committed) {
  int64_t id = 0;
  const int64_t now = clock_.now_ms();
  // The cause's open transaction when there is one (issue 13), else a transaction of our own.
  Db& db = Db::open_transaction_on(db_) ? *Db::open_transaction_on(db_) : db_;
  Status stored = db.transaction([&]() -> Status {
    Stmt& q = db.prepare(
        "INSERT INTO events(created_at, type, tenant_id, user_id, integration_id, detail, data) VALUES(?,?,?,?,?,?,?)");
    q.bind_all(now, e.type, e.tenant_id, e.user_id, e.integration_id, e.detail,
               e.data_json.empty() ? std::string("{}") : e.data_json);
    FB_TRY(q.run());
    id = db.last_insert_rowid();
    return Status::Ok();
  });
  FB_TRY(stored);
  db.after_commit([this, id, now, committed = std::move(committed)] { published(id, now, committed); });
  return id;
}

void EventStore::published(int64_t id, int64_t now_ms, const std::function<void(int64_t)>& committed) {
  std::vector<std::function<void(int64_t)>> listeners;
  bool prune_now = false;
  {
    std::lock_guard lock(mu_);
    ++appended_;
    listeners = listeners_;
    if (now_ms - last_prune_ms_ > 60'000) {
      last_prune_ms_ = now_ms;
      prune_now = true;
    }
  }
  cv_.notify_all();
  if (committed) committed(id);
  for (auto& fn : listeners) fn(id);
  if (prune_now) {
    auto pruned = prune();
    if (!pruned.ok()) FB_LOG(kWarn, "events") << "pruning old events failed: " << pruned.status().message();
  }
}

Result<std::vector<StoredEvent>> EventStore::read(int64_t after_id, int limit) {
  limit = std::clamp(limit, 1, 1000);
  std::vector<StoredEvent> out;
  FB_TRY(db_.with([&]() -> Status {
    Stmt& q = db_.prepare(
        "SELECT id, created_at, type, tenant_id, user_id, integration_id, detail, data FROM events"
        " WHERE id > ? ORDER BY id LIMIT ?");
    q.bind_all(after_id, limit);
    return each_row(q, [&](Stmt& r) {
      StoredEvent s;
      s.id = r.int64(0);
      s.created_at_ms = r.int64(1);
      s.event = Event{r.text(2), r.text(3), r.text(4), r.int64(5), r.text(6), r.text(7)};
      out.push_back(std::move(s));
    });
  }));
  return out;
}

Result<std::vector<StoredEvent>> EventStore::wait(int64_t after_id, int limit, int64_t timeout_ms) {
  // Real time, not the clock seam: this is how long the calling thread blocks.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max<int64_t>(0, timeout_ms));
  for (;;) {
    int64_t seen;
    {
      std::lock_guard lock(mu_);
      seen = appended_;
    }
    FB_ASSIGN(auto events, read(after_id, limit));
    const auto now = std::chrono::steady_clock::now();
    if (!events.empty() || now >= deadline) return events;
    std::unique_lock lock(mu_);
    cv_.wait_until(lock, std::min(deadline, now + std::chrono::milliseconds(options_.poll_ms)),
                   [&] { return appended_ != seen; });
  }
}

Result<int64_t> EventStore::last_id() {
  int64_t id = 0;
  FB_TRY(db_.with([&]() -> Status {
    // The highest id ever given, also after those rows were deleted.
    FB_ASSIGN(id, db_.highest_id_given("events"));
    return Status::Ok();
  }));
  return id;
}

Result<int> EventStore::prune() {
  int n = 0;
  const int64_t cutoff = clock_.now_ms() - options_.retention_s * 1000;
  Status deleted = db_.transaction([&]() -> Status {
    Stmt& q = db_.prepare("DELETE FROM events WHERE created_at < ?");
    q.bind(1, cutoff);
    FB_TRY(q.run());
    n = db_.changes();
    return Status::Ok();
  });
  FB_TRY(deleted);
  return n;
}

EventBus::Recorder EventStore::recorder() {
  return [this](const Event& e, EventBus::Deliver deliver) -> Status {
    auto id = append(e, [e, deliver](int64_t stored_id) {
      Event stored = e;
      stored.id = stored_id;
      deliver(stored);
    });
    if (id.ok()) return Status::Ok();
    FB_LOG(kError, "events") << "could not store event " << e.type << ": " << id.status().message();
    if (!Db::open_transaction_on(db_)) deliver(e);  // no cause to roll back: tell the listeners anyway
    return id.status();
  };
}

void EventStore::on_append(std::function<void(int64_t)> fn) {
  std::lock_guard lock(mu_);
  listeners_.push_back(std::move(fn));
}

void EventStore::wake_all() {
  {
    std::lock_guard lock(mu_);
    ++appended_;
  }
  cv_.notify_all();
}

json EventStore::to_json(const StoredEvent& s) {
  json data = json::parse(s.event.data_json.empty() ? "{}" : s.event.data_json, nullptr, false);
  return {{"id", s.id},
          {"type", s.event.type},
          {"tenant_id", s.event.tenant_id},
          {"user_id", s.event.user_id},
          {"integration_id", s.event.integration_id},
          {"detail", s.event.detail},
          {"data", data.is_discarded() ? json::object() : data},
          {"created_at", s.created_at_ms}};
}

std::string EventStore::page_json(const std::vector<StoredEvent>& events, int64_t after_id) {
  json list = json::array();
  for (const auto& e : events) list.push_back(to_json(e));
  return json{{"events", std::move(list)}, {"next", events.empty() ? after_id : events.back().id}}.dump();
}

}  // namespace fb::detail
