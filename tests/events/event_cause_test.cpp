// Events in the same transaction as their cause (issue 13). An event emitted inside a transaction
// is written in it, through whichever handle on the store holds it, and reaches listeners only
// after the commit; a rollback leaves neither its row nor a delivery; a process killed right after
// its cause's commit still has the event row. Runs on SQLite and (fb_event_causes_test_postgresql)
// PostgreSQL.
#define BOOST_TEST_MODULE fb_event_causes
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/clock.h"
#include "crypto/encoding.h"
#include "core/event_bus.h"
#include "events/event_store.h"
#include "fathom_bridge/bridge.h"
#include "fathom_bridge/config.h"
#include "store/db.h"
#include "support/sim_process.h"
#include "support/temp_dir.h"

using nlohmann::json;
using namespace fb;
using namespace fb::detail;
using fb::test::SimProcess;
using fb::test::TempDir;

namespace {

std::unique_ptr<Db> open_store(const std::string& target, DbOptions options = {}) {
  auto db = Db::open(target, options);
  BOOST_REQUIRE_MESSAGE(db.ok(), db.status().to_string());
  return std::move(*db);
}

int64_t count(Db& db, const std::string& sql) {
  int64_t n = -1;
  BOOST_REQUIRE(db.with([&]() -> Status {
    Stmt& q = db.prepare(sql);
    return each_row(q, [&](Stmt& r) { n = r.int64(0); });
  }).ok());
  return n;
}

// The feed as the bridge wires it: its own handle on the store, a cause's handle beside it, a
// third handle that reads only what is committed, and a listener on the bus.
struct Feed {
  TempDir dir;
  std::string target = dir.store("feed.db");
  // A short wait for the write lock: a feed that wrote on its own handle while the cause holds the
  // lock fails in a second instead of ten.
  std::unique_ptr<Db> events_db = open_store(target, {.busy_timeout_ms = 1000});
  std::unique_ptr<Db> cause_db = open_store(target);
  std::unique_ptr<Db> reader = open_store(target);
  FakeClock clock;
  std::unique_ptr<EventStore> store;
  EventBus bus;
  std::mutex mu;
  std::vector<Event> delivered;        // guarded by mu
  std::vector<int64_t> rows_on_delivery;  // guarded by mu: the event's committed rows when it arrived

  Feed() {
    auto s = EventStore::open(*events_db, clock);
    BOOST_REQUIRE_MESSAGE(s.ok(), s.status().to_string());
    store = std::move(*s);
    BOOST_REQUIRE(cause_db->transaction([&] {
      return cause_db->exec("CREATE TABLE causes(id INTEGER PRIMARY KEY, what TEXT NOT NULL)");
    }).ok());
    bus.set_recorder(store->recorder());
    bus.subscribe([this](const Event& e) {
      int64_t rows = count(*reader, "SELECT COUNT(*) FROM events WHERE id = " + std::to_string(e.id));
      std::lock_guard lock(mu);
      delivered.push_back(e);
      rows_on_delivery.push_back(rows);
    });
  }
  // A cause: a row of `causes` and its event, in one transaction on the cause's handle.
  Status cause(const std::string& what, Status outcome) {
    return cause_db->transaction([&]() -> Status {
      Stmt& q = cause_db->prepare("INSERT INTO causes(what) VALUES(?)");
      q.bind(1, what);
      FB_TRY(q.run());
      FB_TRY(bus.emit(Event{"connected", "acme", "u1", 7, what, "{}"}));
      std::lock_guard lock(mu);
      BOOST_TEST(delivered.empty(), "delivered before its transaction ended");
      return outcome;
    });
  }
  size_t deliveries() {
    std::lock_guard lock(mu);
    return delivered.size();
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(an_event_whose_cause_rolls_back_is_neither_stored_nor_delivered) {
  Feed f;
  Status s = f.cause("rolled back", Status::Conflict("the cause failed"));
  BOOST_TEST(s.is(Code::kConflict), s.to_string());
  BOOST_TEST(count(*f.reader, "SELECT COUNT(*) FROM causes") == 0);
  BOOST_TEST(count(*f.reader, "SELECT COUNT(*) FROM events") == 0);
  BOOST_TEST(f.store->read(0, 100)->empty());
  BOOST_TEST(f.deliveries() == 0u);
  BOOST_TEST(f.store->wait(0, 100, 0)->empty());

  // Nested: the cause joins an outer transaction that then fails; nothing of it survives.
  s = f.cause_db->transaction([&]() -> Status {
    FB_TRY(f.cause("inner", Status::Ok()));
    return Status::Internal("the outer work failed");
  });
  BOOST_TEST(!s.ok());
  BOOST_TEST(count(*f.reader, "SELECT COUNT(*) FROM events") == 0);
  BOOST_TEST(f.deliveries() == 0u);
}

BOOST_AUTO_TEST_CASE(an_event_commits_with_its_cause_and_is_delivered_after_the_commit) {
  Feed f;
  int64_t appended = 0;
  f.store->on_append([&](int64_t id) { appended = id; });
  const int64_t cause_commits = f.cause_db->commits();
  BOOST_REQUIRE(f.cause("committed", Status::Ok()).ok());
  BOOST_TEST(count(*f.reader, "SELECT COUNT(*) FROM causes") == 1);
  auto rows = f.store->read(0, 100);
  BOOST_REQUIRE(rows.ok());
  BOOST_REQUIRE_EQUAL(rows->size(), 1u);
  BOOST_TEST((*rows)[0].event.detail == "committed");
  BOOST_REQUIRE_EQUAL(f.deliveries(), 1u);
  BOOST_TEST(f.delivered[0].id == (*rows)[0].id);  // the listener sees the stored id
  BOOST_TEST(f.rows_on_delivery[0] == 1);          // ... of a row already committed
  BOOST_TEST(appended == (*rows)[0].id);
  // The event was written on the cause's handle, in its one transaction.
  BOOST_TEST(f.cause_db->commits() == cause_commits + 1);

  // Outside any transaction an event commits on its own and is delivered at once.
  BOOST_REQUIRE(f.bus.emit(Event{"script_loaded", "", "", 0, "no cause", "{}"}).ok());
  BOOST_TEST(f.deliveries() == 2u);
  BOOST_TEST(f.store->read(0, 100)->size() == 2u);
}

namespace {

// The child's reader and the integration whose disconnection it waits for (a commit observer is a
// plain function).
Db* g_child_reader = nullptr;
int64_t g_disconnecting = 0;

// Kills the process right after the commit that made the integration disconnected.
void kill_once_disconnected(const Db&) {
  const std::string sql =
      "SELECT COUNT(*) FROM integrations WHERE status = 'disconnected' AND id = " + std::to_string(g_disconnecting);
  int64_t n = 0;
  Status s = g_child_reader->with([&]() -> Status {
    auto q = g_child_reader->prepare_uncached(sql);
    if (!q.ok()) return q.status();
    return each_row(*q, [&](Stmt& r) { n = r.int64(0); });
  });
  if (s.ok() && n == 1) ::kill(::getpid(), SIGKILL);
}

Config bridge_config(const TempDir& dir, const SimProcess& sim) {
  json cfg = {{"fathom", sim.fathom_settings("http://127.0.0.1:9/oauth/callback")},
              {"frontend", {{"url", "http://127.0.0.1:9"}}},
              {"tokens", {{"key", base64_encode(std::string(32, 'e'))}}},
              {"store", {{fb::test::store_key(dir.store("bridge.db")), dir.store("bridge.db")}}},
              {"scripts", {{"dir", std::string(FB_SOURCE_DIR) + "/scripts"}}},
              {"sync", {{"scheduler", false}}},
              {"log_level", "error"}};
  auto config = parse_config(cfg.dump(), false);
  BOOST_REQUIRE_MESSAGE(config.ok(), config.status().to_string());
  return *config;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_process_killed_right_after_a_disconnect_commits_still_has_its_event) {
  TempDir dir;
  SimProcess sim;
  const Config config = bridge_config(dir, sim);
  const Caller alice{"acme", "alice", ""};
  int64_t id = 0;
  {
    auto bridge = Bridge::open(config, {.background = false});
    BOOST_REQUIRE_MESSAGE(bridge.ok(), bridge.status().to_string());
    auto connected = (*bridge)->connect_api_key(alice, sim.api_key("alice@example.com"));
    BOOST_REQUIRE_MESSAGE(connected.ok(), connected.status().to_string());
    id = *connected;
  }
  pid_t pid = fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {  // the child disconnects and is killed right after that commit
    auto reader = Db::open(config.store.target());
    auto bridge = Bridge::open(config, {.background = false});
    if (!reader.ok() || !bridge.ok()) _exit(3);
    g_child_reader = reader->get();
    g_disconnecting = id;
    Db::set_commit_observer(kill_once_disconnected);
    Status s = (*bridge)->disconnect(alice, id);
    _exit(s.ok() ? 0 : 4);  // not reached when the disconnection committed
  }
  int st = 0;
  BOOST_REQUIRE(waitpid(pid, &st, 0) == pid);
  BOOST_REQUIRE_MESSAGE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the child was not killed at the commit");

  auto bridge = Bridge::open(config, {.background = false});
  BOOST_REQUIRE_MESSAGE(bridge.ok(), bridge.status().to_string());
  auto page = (*bridge)->events_json(0, 100);
  BOOST_REQUIRE(page.ok());
  int disconnected = 0;
  const json events = json::parse(*page)["events"];
  for (const json& e : events) {
    if (e["type"] == "disconnected" && e["integration_id"] == id) ++disconnected;
  }
  BOOST_TEST(disconnected == 1, "events after the crash: " << *page);
}
