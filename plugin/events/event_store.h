// event_store.h: the durable host event feed (the "events" component of the store).
//
// Every host event (connected, reconnect_required, sync_completed, webhook_dead_lettered, ...)
// is written to the table `events` with an id from SQLite's AUTOINCREMENT: ids only grow, are
// never reused (not even after retention deleted the newest rows) and survive restarts, so a
// consumer that remembers the last id it handled reads on from there (at-least-once, stable id).
// Rows older than the retention are deleted as new ones arrive.
//
//   auto store = EventStore::open(db, clock, {.retention_s = 7 * 86400});
//   int64_t id = *store->append(event);
//   auto page = store->wait(after_id, 100, 30'000);   // long poll: returns at once when newer rows exist
//
// Threading: thread-safe. wait() is woken by append() in this process and also re-reads the table
// every poll_ms, so it sees rows that other processes on the same file appended.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/event_bus.h"
#include "fathom_bridge/events.h"
#include "fathom_bridge/status.h"
#include "store/db.h"

namespace fb::detail {

struct EventStoreOptions {
  int64_t retention_s = 7 * 86400;  // events older than this are deleted
  int64_t poll_ms = 500;            // wait(): how often the table is re-read for other processes' rows
};

struct StoredEvent {
  int64_t id = 0;
  int64_t created_at_ms = 0;
  Event event;
};

// Applies the "events" component's migrations (idempotent; safe from several processes).
Status migrate_events(Db& db);

class EventStore {
 public:
  static Result<std::unique_ptr<EventStore>> open(Db& db, Clock& clock, EventStoreOptions options = {});

  // Stores e and returns its id. Inside a transaction() of this thread on any Db of the same
  // store (another component's handle on the same file or database: Db::open_transaction_on), the
  // row is written in that transaction, so it commits or rolls back with what caused it; then
  // committed(id), the on_append listeners and the long polls run after that commit, on this
  // thread, and never when it rolls back. Outside a transaction the row commits on its own and
  // they run before append returns.
  Result<int64_t> append(const Event& e, std::function<void(int64_t id)> committed = {});
  // Events with id > after_id, oldest first, at most limit (1..1000).
  Result<std::vector<StoredEvent>> read(int64_t after_id, int limit);
  // read(), but when nothing is newer than after_id, waits up to timeout_ms for a row.
  Result<std::vector<StoredEvent>> wait(int64_t after_id, int limit, int64_t timeout_ms);
  // The highest id ever given (0 when none): where a consumer starts to see only new events.
  Result<int64_t> last_id();
  // Deletes the events older than the retention; returns how many.
  Result<int> prune();
  // Calls fn(id) after every append() in this process, once its row is committed (for long polls
  // that cannot block a thread, and the pusher).
  void on_append(std::function<void(int64_t)> fn);
  // The EventBus recorder of the feed: stores each emitted event with append() (in its cause's
  // transaction when there is one) and delivers it, with its id, after that commit. When it cannot
  // be stored outside a transaction, it is still delivered (id 0); inside one, the error is returned
  // to the cause, which rolls back with it.
  EventBus::Recorder recorder();
  // Wakes every wait() (used when shutting down).
  void wake_all();

  // {"id", "type", "tenant_id", "user_id", "integration_id", "detail", "data", "created_at"}
  static nlohmann::json to_json(const StoredEvent& e);
  // {"events": [...], "next": id of the last event or after_id when none}
  static std::string page_json(const std::vector<StoredEvent>& events, int64_t after_id);

 private:
  EventStore(Db& db, Clock& clock, EventStoreOptions options) : db_(db), clock_(clock), options_(options) {}
  // After the row of `id` committed: wakes the long polls, tells committed and the listeners.
  void published(int64_t id, int64_t now_ms, const std::function<void(int64_t)>& committed);
  Db& db_;
  Clock& clock_;
  EventStoreOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t appended_ = 0;  // guarded by mu_: bumps on each append, for wait()
  int64_t last_prune_ms_ = 0;  // guarded by mu_
  std::vector<std::function<void(int64_t)>> listeners_;  // guarded by mu_
};

}  // namespace fb::detail
