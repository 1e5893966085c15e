// Stored script versions (issue 15) through the real ScriptHost, real Lua and a real SQLite
// file: upload checks, per-tenant override and fallback, activation reaching every worker and a
// second host on the same store, rollback, a broken active version at a cold start, and the
// version recorded with every CRM operation.
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <thread>

#include "scripting/script_versions.h"
#include "scripting_test_util.h"
#include "store/db.h"

namespace fb::test {
namespace {

// A mapping whose one CRM call says which rule ran.
std::string rule(const std::string& name) {
  return "function on_meeting(meeting, ctx)\n  crm.tag({rule = '" + name + "'})\nend\n";
}

detail::ScriptFiles files_of(const std::string& mapping) { return {{"mapping.lua", mapping}}; }

// What one CRM call carried: the rule that made it and the script version.
struct Seen {
  std::string rule;
  int64_t version = -1;
  Seen() = default;
  Seen(std::string r, int64_t v) : rule(std::move(r)), version(v) {}
  bool operator==(const Seen& o) const { return rule == o.rule && version == o.version; }
};
std::ostream& operator<<(std::ostream& os, const Seen& s) { return os << s.rule << "@v" << s.version; }

struct Tags {
  std::mutex mu;
  std::vector<Seen> seen;
  std::function<void()> during;  // runs inside the CRM call (holds an event in flight)
  void install(detail::ScriptHost& h) {
    Status s = h.register_crm_operation("tag", [this](const CrmCall& c) -> Result<std::string> {
      if (during) during();
      std::lock_guard lock(mu);
      seen.emplace_back(json::parse(c.args_json).at("rule").get<std::string>(), c.script_version);
      return std::string("{}");
    });
    if (!s.ok()) throw std::runtime_error(s.to_string());
  }
  Seen last() {
    std::lock_guard lock(mu);
    return seen.empty() ? Seen() : seen.back();
  }
};

struct Fixture {
  ScriptDir dir;
  std::unique_ptr<detail::Db> db;
  EventLog events;
  std::string meeting = fixture("mixed.json");
  Fixture() {
    dir.write("mapping.lua", rule("folder"));
    auto d = detail::Db::open(dir.store());
    if (!d.ok()) throw std::runtime_error(d.status().to_string());
    db = std::move(d).value();
  }
  std::unique_ptr<detail::ScriptHost> host(detail::Db* on = nullptr) {
    auto o = host_options(dir);
    o.db = on ? on : db.get();
    o.event_sink = events.sink();
    return open_host(std::move(o));
  }
  // Runs one meeting of tenant; returns (rule, version) its CRM call carried.
  Seen run(detail::ScriptHost& h, Tags& tags, const std::string& tenant, int64_t rec = 1) {
    auto e = meeting_event(meeting, rec);
    e.tenant_id = tenant;
    Status s = h.on_meeting(e);
    if (!s.ok()) throw std::runtime_error(s.to_string());
    return tags.last();
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(script_versions)

BOOST_AUTO_TEST_CASE(upload_of_a_broken_script_names_file_and_line) {
  Fixture f;
  auto h = f.host();
  auto r = h->upload("", files_of("function on_meeting(m, ctx)\n  crm.tag({})\n  local x = = 1\nend\n"), "alice", "typo");
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST(static_cast<int>(r.status().code()) == static_cast<int>(Code::kScript));
  BOOST_TEST(r.status().message().find("mapping.lua:3:") != std::string::npos, r.status().message());
  // A module that raises at its top level, reached through require from mapping.lua.
  auto m = h->upload("", {{"mapping.lua", "local d = require('helpers.domains')\n" + rule("x")},
                          {"helpers/domains.lua", "local t = {}\nerror('boom')\nreturn t\n"}},
                     "alice", "");
  BOOST_REQUIRE(!m.ok());
  BOOST_TEST(m.status().message().find("helpers/domains.lua:2:") != std::string::npos, m.status().message());
  auto list = h->versions()->list("", 10);
  BOOST_REQUIRE(list.ok());
  BOOST_TEST(list->empty());  // nothing broken was stored
  auto good = h->upload("", files_of(rule("A")), "alice", "first");
  BOOST_REQUIRE(good.ok());
  BOOST_TEST(good->author == "alice");
  BOOST_TEST(good->note == "first");
  BOOST_TEST(good->content_hash.size() == 64u);
  BOOST_TEST(good->created_at > 0);
  BOOST_TEST(!good->active);
  auto again = h->upload("", files_of(rule("A")), "bob", "same text");
  BOOST_REQUIRE(again.ok());
  BOOST_TEST(again->id == good->id);  // same content: the same immutable version
}

BOOST_AUTO_TEST_CASE(tenant_override_and_fallback_to_the_default) {
  Fixture f;
  auto h = f.host();
  Tags tags;
  tags.install(*h);
  BOOST_TEST(f.run(*h, tags, "acme") == Seen("folder", 0));  // nothing stored: the folder, as before

  auto def = h->upload("", files_of(rule("default")), "ops", "");
  auto acme = h->upload("acme", files_of(rule("acme-own")), "acme-admin", "");
  BOOST_REQUIRE(def.ok());
  BOOST_REQUIRE(acme.ok());
  BOOST_REQUIRE(h->versions()->activate("", def->id, "ops").ok());
  BOOST_REQUIRE(h->refresh_versions().ok());
  BOOST_TEST(f.run(*h, tags, "acme") == Seen("default", def->id));
  BOOST_TEST(f.run(*h, tags, "globex") == Seen("default", def->id));

  BOOST_REQUIRE(h->versions()->activate("acme", acme->id, "acme-admin").ok());
  BOOST_REQUIRE(h->refresh_versions().ok());
  BOOST_TEST(f.run(*h, tags, "acme") == Seen("acme-own", acme->id));
  BOOST_TEST(f.run(*h, tags, "globex") == Seen("default", def->id));  // no override: the default
  BOOST_TEST(h->running_version("acme") == acme->id);
  BOOST_TEST(h->running_version("globex") == def->id);

  // Another tenant's version cannot be activated for acme.
  auto other = h->upload("globex", files_of(rule("globex")), "g", "");
  BOOST_REQUIRE(other.ok());
  auto wrong = h->versions()->activate("acme", other->id, "acme-admin");
  BOOST_TEST(!wrong.ok());
  BOOST_TEST(static_cast<int>(wrong.status().code()) == static_cast<int>(Code::kNotFound));
}

BOOST_AUTO_TEST_CASE(rollback_returns_to_the_previous_active_version_in_one_step) {
  Fixture f;
  auto h = f.host();
  Tags tags;
  tags.install(*h);
  auto v1 = h->upload("", files_of(rule("one")), "ops", "");
  auto v2 = h->upload("", files_of(rule("two")), "ops", "");
  auto v3 = h->upload("", files_of(rule("three")), "ops", "");
  BOOST_REQUIRE(v1.ok() && v2.ok() && v3.ok());
  auto& vs = *h->versions();
  BOOST_REQUIRE(vs.activate("", v1->id, "ops").ok());
  BOOST_REQUIRE(vs.activate("", v2->id, "ops").ok());
  BOOST_REQUIRE(vs.activate("", v3->id, "ops").ok());
  BOOST_REQUIRE(h->refresh_versions().ok());
  BOOST_TEST(f.run(*h, tags, "acme") == Seen("three", v3->id));

  auto back = vs.rollback("", "ops");
  BOOST_REQUIRE(back.ok());
  BOOST_TEST(back->version_id == v2->id);
  BOOST_REQUIRE(h->refresh_versions().ok());
  BOOST_TEST(f.run(*h, tags, "acme") == Seen("two", v2->id));
  auto listed = vs.list("", 10);
  BOOST_REQUIRE(listed.ok());
  BOOST_TEST(listed->size() == 3u);
  for (const auto& v : *listed) BOOST_TEST(v.active == (v.id == v2->id));

  BOOST_REQUIRE(vs.rollback("", "ops").ok());  // again: one more step back
  BOOST_REQUIRE(h->refresh_versions().ok());
  BOOST_TEST(f.run(*h, tags, "acme") == Seen("one", v1->id));
  BOOST_REQUIRE(vs.rollback("", "ops").ok());  // before v1 nothing was active: the folder
  BOOST_REQUIRE(h->refresh_versions().ok());
  BOOST_TEST(f.run(*h, tags, "acme") == Seen("folder", 0));
  auto none = vs.rollback("", "ops");
  BOOST_TEST(static_cast<int>(none.status().code()) == static_cast<int>(Code::kFailedPrecondition));
}

BOOST_AUTO_TEST_CASE(activation_reaches_every_worker_and_a_second_host_on_the_same_store) {
  Fixture f;
  auto h = f.host();
  // A second host with its own connection to the same file (as another process would have).
  auto db2 = detail::Db::open(f.dir.store());
  BOOST_REQUIRE(db2.ok());
  auto h2 = f.host(db2->get());
  Tags tags, tags2;
  tags.install(*h);
  tags2.install(*h2);
  auto v1 = h->upload("", files_of(rule("one")), "ops", "");
  auto v2 = h->upload("", files_of(rule("two")), "ops", "");
  BOOST_REQUIRE(v1.ok() && v2.ok());
  BOOST_REQUIRE(h->versions()->activate("", v1->id, "ops").ok());
  BOOST_REQUIRE(h->refresh_versions().ok());
  BOOST_REQUIRE(h2->refresh_versions().ok());

  // Four workers on each host map meetings continuously and note the version of each call.
  constexpr int kWorkers = 4;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> activated_at_ms{0};
  std::vector<std::atomic<int64_t>> switched_ms(2 * kWorkers);
  for (auto& s : switched_ms) s = -1;
  auto now_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < 2 * kWorkers; ++w) {
    threads.emplace_back([&, w] {
      detail::ScriptHost& host = w < kWorkers ? *h : *h2;
      int64_t rec = 1000 * (w + 1);
      while (!stop) {
        auto e = meeting_event(f.meeting, ++rec);
        e.tenant_id = "acme";
        if (Status st = host.on_meeting(e); !st.ok()) {
          BOOST_TEST_MESSAGE("worker " << w << ": " << st.to_string());
          continue;
        }
        int64_t ran = host.running_version("acme");
        if (ran == v2->id && activated_at_ms > 0 && switched_ms[w] < 0) switched_ms[w] = now_ms();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));  // every worker runs v1 by now
  // Activation through the second host's connection; neither host is told.
  auto store2 = detail::ScriptVersionStore::open(db2->get());
  BOOST_REQUIRE(store2.ok());
  activated_at_ms = now_ms();
  BOOST_REQUIRE((*store2)->activate("", v2->id, "ops").ok());
  auto all_switched = [&] {
    for (auto& s : switched_ms) {
      if (s < 0) return false;
    }
    return true;
  };
  for (int i = 0; i < 400 && !all_switched(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  bool all = all_switched();
  stop = true;
  for (auto& t : threads) t.join();
  BOOST_REQUIRE(all);
  int64_t worst = 0;
  for (auto& s : switched_ms) worst = std::max(worst, s - activated_at_ms.load());
  BOOST_TEST_MESSAGE("activation reached all " << 2 * kWorkers << " workers of two hosts in " << worst << " ms");
  // The bound is the poll interval (500 ms) plus loading; generous for a loaded machine.
  BOOST_TEST(worst < 5000);
  // The calls themselves carried the version that made them.
  std::lock_guard lock(tags.mu);
  bool saw_v1 = false, saw_v2 = false;
  for (const Seen& s : tags.seen) {
    BOOST_TEST((s.rule == "one" ? v1->id : v2->id) == s.version);
    saw_v1 = saw_v1 || s.rule == "one";
    saw_v2 = saw_v2 || s.rule == "two";
  }
  BOOST_TEST(saw_v1);
  BOOST_TEST(saw_v2);
}

BOOST_AUTO_TEST_CASE(an_event_in_flight_finishes_on_the_version_it_started_with) {
  Fixture f;
  auto h = f.host();
  Tags tags;
  tags.install(*h);
  // Two CRM calls per event; the first blocks until the new version is active.
  detail::ScriptFiles one = files_of(
      "function on_meeting(m, ctx)\n  crm.tag({rule = 'one-a'})\n  crm.tag({rule = 'one-b'})\nend\n");
  auto v1 = h->upload("", one, "ops", "");
  auto v2 = h->upload("", files_of(rule("two")), "ops", "");
  BOOST_REQUIRE(v1.ok() && v2.ok());
  BOOST_REQUIRE(h->versions()->activate("", v1->id, "ops").ok());
  BOOST_REQUIRE(h->refresh_versions().ok());
  std::mutex m;
  std::condition_variable cv;
  bool entered = false, go = false;
  tags.during = [&] {
    std::unique_lock lock(m);
    if (entered) return;  // only the first call waits
    entered = true;
    cv.notify_all();
    cv.wait(lock, [&] { return go; });
  };
  std::thread inflight([&] { (void)f.run(*h, tags, "acme", 1); });
  {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return entered; });
  }
  BOOST_REQUIRE(h->versions()->activate("", v2->id, "ops").ok());
  BOOST_REQUIRE(h->refresh_versions().ok());
  {
    std::lock_guard lock(m);
    go = true;
  }
  cv.notify_all();
  inflight.join();
  BOOST_TEST(f.run(*h, tags, "acme", 2) == Seen("two", v2->id));
  std::lock_guard lock(tags.mu);
  BOOST_REQUIRE(tags.seen.size() == 3u);
  BOOST_TEST(tags.seen[0] == Seen("one-a", v1->id));
  BOOST_TEST(tags.seen[1] == Seen("one-b", v1->id));  // after the activation, still v1
  BOOST_TEST(tags.seen[2] == Seen("two", v2->id));
}

// A mapping.lua whose top level raises at line 4: a version that does not load.
const char* const kFailsAtLoad = "function on_meeting(m, ctx)\n  crm.tag({rule = 'x'})\nend\nerror('no')\n";

BOOST_AUTO_TEST_CASE(cold_start_with_a_broken_active_version_keeps_the_last_good_one) {
  Fixture f;
  int64_t good_id = 0, broken_id = 0;
  {
    auto h = f.host();
    auto good = h->upload("", files_of(rule("good")), "ops", "");
    BOOST_REQUIRE(good.ok());
    good_id = good->id;
    BOOST_REQUIRE(h->versions()->activate("", good_id, "ops").ok());
    // A version that stopped loading after it was stored (here stored without the upload's check,
    // as a version written by an older bridge or edited in the database would be).
    auto broken = h->versions()->add("", files_of(kFailsAtLoad),
                                     "ops", "broken");
    BOOST_REQUIRE(broken.ok());
    broken_id = broken->id;
    BOOST_REQUIRE(h->versions()->activate("", broken_id, "ops").ok());
  }
  // A fresh host (a restarted process): the folder holds another rule, which must not run either.
  auto h = f.host();
  Tags tags;
  tags.install(*h);
  BOOST_TEST(f.run(*h, tags, "acme") == Seen("good", good_id));
  auto rejected = f.events.of("script_rejected");
  BOOST_REQUIRE(!rejected.empty());
  json data = json::parse(rejected.back().data_json);
  BOOST_TEST(data.at("version").get<int64_t>() == broken_id);
  BOOST_TEST(data.at("version_running").get<int64_t>() == good_id);
  BOOST_TEST(data.at("line").get<int>() == 4);
  BOOST_TEST(data.at("file").get<std::string>() == "v" + std::to_string(broken_id) + "/mapping.lua");
}

// The same at run time: a broken version activated while a good one runs (by this process or
// another on the store) never replaces it; script_rejected names the version and what keeps running.
BOOST_AUTO_TEST_CASE(activating_a_broken_version_at_run_time_keeps_the_running_one) {
  Fixture f;
  auto h = f.host();
  Tags tags;
  tags.install(*h);
  auto good = h->upload("", files_of(rule("good")), "ops", "");
  BOOST_REQUIRE(good.ok());
  BOOST_REQUIRE(h->versions()->activate("", good->id, "ops").ok());
  BOOST_REQUIRE(h->refresh_versions().ok());
  BOOST_TEST(f.run(*h, tags, "acme") == Seen("good", good->id));

  auto broken = h->versions()->add("", files_of(kFailsAtLoad),
                                   "ops", "broken");
  BOOST_REQUIRE(broken.ok());
  BOOST_REQUIRE(h->versions()->activate("", broken->id, "ops").ok());
  Status refreshed = h->refresh_versions();
  BOOST_TEST(!refreshed.ok());  // the refresh says it could not load the active version
  BOOST_TEST(f.run(*h, tags, "acme", 2) == Seen("good", good->id));
  auto rejected = f.events.of("script_rejected");
  BOOST_REQUIRE_EQUAL(rejected.size(), 1u);
  json data = json::parse(rejected.back().data_json);
  BOOST_TEST(data.at("version").get<int64_t>() == broken->id);
  BOOST_TEST(data.at("version_running").get<int64_t>() == good->id);
  BOOST_TEST(data.at("file").get<std::string>() == "v" + std::to_string(broken->id) + "/mapping.lua");

  // Rejected once, not at every refresh; rolling back puts the good version back as the active one.
  (void)h->refresh_versions();
  BOOST_TEST(f.events.of("script_rejected").size() == 1u);
  BOOST_REQUIRE(h->versions()->rollback("", "ops").ok());
  BOOST_REQUIRE(h->refresh_versions().ok());
  BOOST_TEST(f.run(*h, tags, "acme", 3) == Seen("good", good->id));
}

BOOST_AUTO_TEST_CASE(import_reads_a_folder_with_its_modules) {
  Fixture f;
  f.dir.write("helpers/names.lua", "return { rule = 'from-module' }\n");
  f.dir.write("mapping.lua",
              "local names = require('helpers.names')\nfunction on_meeting(m, ctx)\n  crm.tag({rule = names.rule})\nend\n");
  f.dir.copy_in(source_path("scripts/types/fathom_bridge.lua"), "types/fathom_bridge.lua");  // editor stubs
  auto files = detail::read_script_folder(f.dir.dir());
  BOOST_REQUIRE(files.ok());
  BOOST_TEST(files->size() == 2u);  // mapping.lua and the module; never the ---@meta stubs
  auto h = f.host();
  Tags tags;
  tags.install(*h);
  auto v = h->upload("", *files, "ops", "imported");
  BOOST_REQUIRE(v.ok());
  BOOST_REQUIRE(h->versions()->activate("", v->id, "ops").ok());
  BOOST_REQUIRE(h->refresh_versions().ok());
  f.dir.write("helpers/names.lua", "return { rule = 'edited-on-disk' }\n");  // the stored copy runs
  BOOST_TEST(f.run(*h, tags, "acme") == Seen("from-module", v->id));
}

// Two real processes on one store file: an activation made by a third (this test) reaches both.
BOOST_AUTO_TEST_CASE(two_processes_sharing_one_store_pick_up_an_activation) {
  Fixture f;
  std::string meeting_file = f.dir.root() + "/meeting.json";
  {
    std::ofstream(meeting_file) << f.meeting;
  }
  int64_t v1 = 0, v2 = 0;
  {
    auto h = f.host();
    auto a = h->upload("", files_of(rule("one")), "ops", "");
    auto b = h->upload("", files_of(rule("two")), "ops", "");
    BOOST_REQUIRE(a.ok() && b.ok());
    v1 = a->id;
    v2 = b->id;
    BOOST_REQUIRE(h->versions()->activate("", v1, "ops").ok());
  }
  std::string stop = f.dir.root() + "/stop";
  struct Proc {
    FILE* out = nullptr;
    std::mutex mu;
    std::vector<std::pair<int64_t, int64_t>> lines;  // (monotonic ms, version)
    std::thread reader;
  };
  Proc procs[2];
  std::string cmd = std::string(FB_BINARY_DIR) + "/tests/scripting/fb_script_version_worker '" + f.dir.store() +
                    "' " + f.dir.dir() + " " + stop + " " + meeting_file;
  for (Proc& p : procs) {
    p.out = ::popen(cmd.c_str(), "r");
    BOOST_REQUIRE(p.out);
    p.reader = std::thread([&p] {
      long long t = 0, v = 0;
      while (std::fscanf(p.out, "%lld %lld", &t, &v) == 2) {
        std::lock_guard lock(p.mu);
        p.lines.emplace_back(t, v);
      }
    });
  }
  auto running = [&](Proc& p, int64_t version) {
    std::lock_guard lock(p.mu);
    return !p.lines.empty() && p.lines.back().second == version;
  };
  auto wait_for = [&](int64_t version) {
    for (int i = 0; i < 600; ++i) {
      if (running(procs[0], version) && running(procs[1], version)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  };
  bool both_v1 = wait_for(v1);
  auto activated_at = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  auto store = detail::ScriptVersionStore::open(f.db.get());
  BOOST_REQUIRE(store.ok());
  BOOST_REQUIRE((*store)->activate("", v2, "ops").ok());
  bool both_v2 = both_v1 && wait_for(v2);
  { std::ofstream(stop) << "stop"; }
  for (Proc& p : procs) {
    p.reader.join();
    BOOST_TEST(::pclose(p.out) == 0);
  }
  BOOST_REQUIRE(both_v1);
  BOOST_REQUIRE(both_v2);
  int64_t worst = 0;
  for (Proc& p : procs) worst = std::max(worst, p.lines.back().first - activated_at);
  BOOST_TEST_MESSAGE("activation reached two processes in " << worst << " ms");
  BOOST_TEST(worst < 5000);  // the poll interval is 500 ms; generous for a loaded machine
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace fb::test
