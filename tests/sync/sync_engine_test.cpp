// SyncEngine against fathom-sim over real HTTP, into a real SQLite file.
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <nlohmann/json.hpp>

#include "fathom/sim_credentials.h"
#include "support/log_capture.h"
#include "support/refuse_meetings.h"
#include "support/sim_process.h"
#include "support/temp_dir.h"
#include "support/wait.h"
#include "sync/scheduler.h"
#include "sync/sync_test_env.h"

using namespace fb;
using namespace fb::detail;
using nlohmann::json;

namespace {

constexpr int64_t kAlice = 1;
constexpr int64_t kCarol = 2;

std::set<int64_t> visible_ids(const test::SimProcess& sim, const std::string& email) {
  json all = sim.admin("GET", "/_sim/meetings?visible_to=" + email);
  std::set<int64_t> out;
  for (auto& m : all["items"]) out.insert(m["recording_id"].get<int64_t>());
  return out;
}

int64_t api_calls(const test::SimProcess& sim, const std::string& route) {
  json c = sim.counters();
  return c["api_calls"].value(route, int64_t{0});
}

// Waits (up to 10 s) until the sim has answered `n` requests with 200; false on the timeout.
bool answered_ok(const test::SimProcess& sim, int n) {
  return test::eventually([&] { return sim.counters()["api_statuses"].value("200", 0) >= n; }, 10'000);
}

std::set<int64_t> stored_ids(MeetingStore& store, int64_t integration) {
  std::set<int64_t> out;
  auto rows = store.list(integration, 100000).value();
  for (auto& m : rows) out.insert(m.recording_id);
  return out;
}

// A sim with alice (API key) connected as integration 1 and carol as 2.
struct Env {
  explicit Env(std::vector<std::string> sim_args = {"--meetings", "47"}, SyncOptions opts = {},
               FathomClientOptions client_options = {}, Clock* engine_clock = nullptr)
      : sim(std::move(sim_args)) {
    creds.set(kAlice, sim.api_key("alice@example.com"));
    creds.set(kCarol, sim.api_key("carol@example.com"));
    directory.add(kAlice);
    directory.add(kCarol);
    client_options.backoff_base_ms = 5;
    client_options.backoff_max_ms = 20;
    env = std::make_unique<test::SyncEnv>(sim.api_base(), creds, directory, dir.store("sync.db"), &pipeline, opts,
                                          RateLimitOptions{}, client_options, nullptr, engine_clock);
    pipeline.content = &env->engine->content_source();
  }
  SyncEngine& engine() { return *env->engine; }
  MeetingStore& store() { return *env->store; }

  test::SimProcess sim;
  test::TempDir dir;
  test::ApiKeyCredentials creds;
  test::TestDirectory directory;
  test::CountingPipeline pipeline;
  std::unique_ptr<test::SyncEnv> env;
};

int64_t pages_for(size_t n) { return static_cast<int64_t>((n + 9) / 10); }

}  // namespace

BOOST_AUTO_TEST_CASE(backfill_costs_one_call_per_page_and_incremental_with_nothing_new_costs_one) {
  Env e;
  auto expected = visible_ids(e.sim, "alice@example.com");
  BOOST_REQUIRE_GT(expected.size(), 20u);
  auto job = e.engine().backfill(kAlice);
  BOOST_REQUIRE_MESSAGE(job.ok(), job.status());
  BOOST_TEST(job->status == "succeeded", job->message);
  BOOST_TEST(api_calls(e.sim, "GET /meetings") == pages_for(expected.size()));
  BOOST_TEST(job->api_calls == pages_for(expected.size()));
  BOOST_TEST(job->pages == pages_for(expected.size()));
  BOOST_TEST(job->meetings_new == static_cast<int64_t>(expected.size()));
  BOOST_TEST(job->meetings_mapped == static_cast<int64_t>(expected.size()));
  BOOST_TEST(stored_ids(e.store(), kAlice) == expected);
  BOOST_TEST(e.pipeline.total == static_cast<int>(expected.size()));
  BOOST_TEST(api_calls(e.sim, "GET /recordings/{id}/transcript") == 0);  // no rule asked
  BOOST_TEST(e.directory.record_sync_calls == 1);
  auto st = e.engine().state(kAlice).value();
  BOOST_TEST(st.status == "idle");
  BOOST_TEST(!st.has_checkpoint());
  BOOST_TEST(st.high_water == e.store().list(kAlice, 1).value().at(0).created_at);
  BOOST_TEST(st.last_sync_at > 0);

  e.sim.admin("POST", "/_sim/counters/reset");
  auto inc = e.engine().incremental(kAlice);
  BOOST_REQUIRE_MESSAGE(inc.ok(), inc.status());
  BOOST_TEST(inc->status == "succeeded", inc->message);
  BOOST_TEST(e.sim.counters()["api_calls_total"].get<int64_t>() == 1);
  BOOST_TEST(inc->api_calls == 1);
  BOOST_TEST(inc->meetings_new == 0);
  BOOST_TEST(inc->meetings_mapped == 0);
  BOOST_TEST(e.pipeline.total == static_cast<int>(expected.size()));
}

BOOST_AUTO_TEST_CASE(meetings_arriving_mid_sync_are_neither_missed_nor_duplicated) {
  Env e({"--meetings", "90"});
  auto before = visible_ids(e.sim, "alice@example.com");
  std::set<int64_t> added;
  e.engine().set_page_observer([&](int64_t, int64_t page, const Page<Meeting>&) {
    if (page == 1 || page == 3 || page == 5) {
      json r = e.sim.admin("POST", "/_sim/meetings", {{"count", 3}, {"recorded_by", "alice@example.com"}});
      for (auto& id : r["recording_ids"]) added.insert(id.get<int64_t>());
    }
  });
  auto job = e.engine().backfill(kAlice);
  BOOST_REQUIRE(job.ok());
  BOOST_REQUIRE_MESSAGE(job->ok(), job->message);
  BOOST_REQUIRE_EQUAL(added.size(), 9u);
  BOOST_TEST(job->pages >= 5);
  // Every meeting that existed when the sync started, each once.
  auto stored = stored_ids(e.store(), kAlice);
  for (int64_t id : before) BOOST_TEST(stored.count(id) == 1u, "missed " << id);
  BOOST_TEST(job->meetings_seen == static_cast<int64_t>(stored.size()));  // no page repeated a meeting

  e.engine().set_page_observer(nullptr);
  auto inc = e.engine().incremental(kAlice);
  BOOST_REQUIRE(inc.ok() && inc->ok());
  auto all = visible_ids(e.sim, "alice@example.com");
  BOOST_TEST(all.size() == before.size() + 9);
  BOOST_TEST(stored_ids(e.store(), kAlice) == all);
  BOOST_TEST(e.pipeline.total == static_cast<int>(all.size()));
  BOOST_TEST(e.pipeline.max_per_version() == 1);
  BOOST_TEST(inc->api_calls == 1);  // the 9 new ones fit one page
}

BOOST_AUTO_TEST_CASE(the_same_sync_twice_leaves_the_same_rows_and_maps_nothing_twice) {
  Env e;
  auto snapshot = [&] {
    std::vector<std::tuple<int64_t, std::string, int64_t, int64_t, std::string>> rows;
    auto stored = e.store().list(kAlice, 100000).value();
    for (auto& m : stored) {
      rows.emplace_back(m.recording_id, m.content_hash, m.content_version, m.mapped_version, m.raw_json);
    }
    return rows;
  };
  BOOST_REQUIRE(e.engine().backfill(kAlice)->ok());
  auto first = snapshot();
  int mapped = e.pipeline.total;
  auto again = e.engine().backfill(kAlice);
  BOOST_REQUIRE(again.ok() && again->ok());
  BOOST_TEST(again->meetings_new == 0);
  BOOST_TEST(again->meetings_changed == 0);
  BOOST_TEST(again->meetings_mapped == 0);
  BOOST_TEST((snapshot() == first));
  BOOST_TEST(e.pipeline.total == mapped);
  BOOST_TEST(e.pipeline.max_per_version() == 1);
}

BOOST_AUTO_TEST_CASE(a_meeting_delivered_by_webhook_then_listed_by_sync_is_mapped_once) {
  Env e;
  e.pipeline.want_transcript = true;  // a rule that reads fathom.transcript()
  auto ids = visible_ids(e.sim, "alice@example.com");
  int64_t hooked = *ids.rbegin();
  // The webhook body: the meeting with every include_* part, as the sim would deliver it.
  json payload = e.sim.admin("GET", "/_sim/meetings/" + std::to_string(hooked));
  BOOST_REQUIRE(payload.contains("transcript"));
  auto up = e.store().upsert(kAlice, payload.dump(), "webhook");
  BOOST_REQUIRE_MESSAGE(up.ok(), up.status());
  auto info = e.directory.get(kAlice).value();
  auto d = e.env->dispatcher->dispatch(info, hooked, e.pipeline, "webhook");
  BOOST_REQUIRE(d.ok());
  BOOST_TEST(dispatch_outcome_name(d->outcome) == std::string("mapped"));
  BOOST_TEST(api_calls(e.sim, "GET /recordings/{id}/transcript") == 0);  // the payload carried it

  auto job = e.engine().backfill(kAlice);
  BOOST_REQUIRE(job.ok() && job->ok());
  BOOST_TEST(e.pipeline.mapped(hooked) == 1);
  BOOST_TEST(e.pipeline.sources[hooked] == "webhook");
  BOOST_TEST(e.store().get(kAlice, hooked)->content_version == 1);
  BOOST_TEST(job->meetings_new == static_cast<int64_t>(ids.size()) - 1);
  BOOST_TEST(e.pipeline.total == static_cast<int>(ids.size()));
  // The rule's transcripts: one call per meeting except the one the webhook brought.
  BOOST_TEST(api_calls(e.sim, "GET /recordings/{id}/transcript") == static_cast<int64_t>(ids.size()) - 1);
  BOOST_TEST(job->api_calls == pages_for(ids.size()) + static_cast<int64_t>(ids.size()) - 1);
}

BOOST_AUTO_TEST_CASE(content_is_fetched_always_only_when_configured_and_cheaply) {
  SyncOptions o;
  o.fetch_transcripts = true;
  Env e({"--meetings", "25"}, o);
  // API key: the transcripts come with the list pages.
  auto job = e.engine().backfill(kAlice);
  BOOST_REQUIRE(job.ok() && job->ok());
  auto ids = visible_ids(e.sim, "alice@example.com");
  BOOST_TEST(api_calls(e.sim, "GET /recordings/{id}/transcript") == 0);
  BOOST_TEST(job->api_calls == pages_for(ids.size()));
  for (int64_t id : ids) BOOST_TEST(e.store().cached_content(kAlice, id, ContentKind::kTranscript)->has_value());

  // OAuth: not allowed on the list, so one transcript call per new meeting, and no summaries.
  test::SimOAuthCredentials oauth(e.sim, "carol@example.com");
  test::TestDirectory dir2;
  dir2.add(kCarol, "oauth");
  test::CountingPipeline p2;
  test::SyncEnv env2(e.sim.api_base(), oauth, dir2, e.dir.store("oauth.db"), &p2, o);
  e.sim.admin("POST", "/_sim/counters/reset");
  auto j2 = env2.engine->backfill(kCarol);
  BOOST_REQUIRE(j2.ok() && j2->ok());
  auto carol = visible_ids(e.sim, "carol@example.com");
  BOOST_TEST(api_calls(e.sim, "GET /recordings/{id}/transcript") == static_cast<int64_t>(carol.size()));
  BOOST_TEST(api_calls(e.sim, "GET /recordings/{id}/summary") == 0);
  BOOST_TEST(j2->content_fetched == static_cast<int64_t>(carol.size()));
  // Running again fetches nothing: everything is cached and unchanged.
  e.sim.admin("POST", "/_sim/counters/reset");
  auto j3 = env2.engine->backfill(kCarol);
  BOOST_TEST(api_calls(e.sim, "GET /recordings/{id}/transcript") == 0);
  BOOST_TEST(j3->api_calls == pages_for(carol.size()));
}

BOOST_AUTO_TEST_CASE(a_token_expiring_mid_sync_is_refreshed_transparently) {
  test::SimProcess sim({"--meetings", "60"});
  test::TempDir dir;
  test::SimOAuthCredentials oauth(sim, "alice@example.com");
  test::TestDirectory directory;
  directory.add(kAlice, "oauth");
  test::CountingPipeline pipeline;
  test::SyncEnv env(sim.api_base(), oauth, directory, dir.store("sync.db"), &pipeline);
  env.engine->set_page_observer([&](int64_t, int64_t page, const Page<Meeting>&) {
    if (page == 2) sim.admin("POST", "/_sim/tokens/expire", {{"user", "alice@example.com"}});
  });
  auto job = env.engine->backfill(kAlice);
  BOOST_REQUIRE(job.ok());
  BOOST_TEST(job->status == "succeeded", job->message);
  auto ids = visible_ids(sim, "alice@example.com");
  BOOST_REQUIRE_GT(ids.size(), 30u);
  BOOST_TEST(stored_ids(*env.store, kAlice) == ids);
  BOOST_TEST(oauth.refreshes.load() == 1);
  json c = sim.counters();
  BOOST_TEST(c["token_requests"]["refresh_token"].get<int>() == 1);
  BOOST_TEST(c["api_statuses"].value("401", 0) == 1);
  // The 401 and its retry are both spent calls.
  BOOST_TEST(job->api_calls == pages_for(ids.size()) + 1);
}

BOOST_AUTO_TEST_CASE(the_next_page_is_fetched_while_the_current_one_is_mapped_and_stored) {
  Env e;
  auto ids = visible_ids(e.sim, "alice@example.com");
  const int64_t pages = pages_for(ids.size());
  BOOST_REQUIRE_GE(pages, 3);
  // The observer runs on the syncing thread after a page committed, before the run takes the next
  // one; the next page is answered meanwhile only when it was asked for ahead.
  std::vector<bool> next_answered;
  e.engine().set_page_observer([&](int64_t, int64_t page, const Page<Meeting>&) {
    if (page < pages) next_answered.push_back(answered_ok(e.sim, static_cast<int>(page) + 1));
  });
  auto job = e.engine().backfill(kAlice);
  BOOST_REQUIRE(job.ok());
  BOOST_TEST(job->status == "succeeded", job->message);
  BOOST_TEST(next_answered == std::vector<bool>(static_cast<size_t>(pages - 1), true));
  // Nothing requested twice or past the last page, and the job log counts every request.
  BOOST_TEST(api_calls(e.sim, "GET /meetings") == pages);
  BOOST_TEST(job->api_calls == pages);
  BOOST_TEST(job->pages == pages);
  BOOST_TEST(stored_ids(e.store(), kAlice) == ids);
  BOOST_TEST(e.pipeline.max_per_version() == 1);
}

BOOST_AUTO_TEST_CASE(a_stop_abandons_the_page_asked_for_ahead_while_it_waits_for_the_rate_limit) {
  // One call a minute, as Fathom's headers say: page 1 goes at once, page 2 (asked for ahead) waits
  // for the window.
  // The stop is the caller's (as the scheduler's is): a flag of a CallScope on the calling thread,
  // which the thread fetching ahead does not see for itself.
  Env e({"--meetings", "47", "--rate-limit", "1"});
  std::atomic<bool> stop{false};
  e.engine().set_page_observer([&](int64_t, int64_t page, const Page<Meeting>&) {
    if (page == 1) stop = true;
  });
  auto t0 = std::chrono::steady_clock::now();
  CallScope caller(&stop);
  auto job = e.engine().backfill(kAlice);
  double took_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  BOOST_REQUIRE(job.ok());
  BOOST_TEST(job->status == "cancelled", job->message);
  BOOST_TEST(job->pages == 1);
  BOOST_TEST(job->api_calls == 1);  // page 2's request never left: it was still waiting
  BOOST_TEST(api_calls(e.sim, "GET /meetings") == 1);
  BOOST_TEST(e.engine().state(kAlice)->checkpoint_pages == 1);
  BOOST_TEST(took_s < 30.0, "the run waited " << took_s << " s for a page it no longer wanted");
}

BOOST_AUTO_TEST_CASE(the_job_log_records_failures_with_details_and_resumes_them) {
  FathomClientOptions co;
  co.max_attempts = 2;
  Env e({"--meetings", "47"}, {}, co);
  auto ids = visible_ids(e.sim, "alice@example.com");
  // Page 3 fails for good: two 503s, and max_attempts is 2. The run fetches a page ahead while it
  // maps the one before (sync_engine.cpp, PageAhead): once page 1 is committed and page 2 answered,
  // the next request is page 3's.
  e.engine().set_page_observer([&](int64_t, int64_t page, const Page<Meeting>&) {
    if (page != 1) return;
    BOOST_REQUIRE(answered_ok(e.sim, 2));
    e.sim.admin("POST", "/_sim/faults", {{"status", 503}, {"count", 2}, {"path_prefix", "/external/v1/meetings"}});
  });
  auto failed = e.engine().backfill(kAlice, "test");
  BOOST_REQUIRE(failed.ok());
  BOOST_TEST(failed->status == "failed");
  BOOST_TEST(failed->error_code == "unavailable");
  BOOST_TEST(failed->message.find("HTTP 503") != std::string::npos);
  BOOST_TEST(failed->api_calls == 4);  // 2 pages + 2 attempts at the third
  BOOST_TEST(failed->pages == 2);
  BOOST_TEST(failed->tenant_id == "tenant-1");
  BOOST_TEST(failed->user_id == "user-1");
  BOOST_TEST(failed->trigger == "test");
  json details = json::parse(failed->error_details);
  BOOST_TEST(details["failed_page"].get<int>() == 3);
  BOOST_TEST(details["checkpoint_kept"].get<bool>());
  BOOST_TEST(failed->ended_at >= failed->started_at);
  auto st = e.engine().state(kAlice).value();
  BOOST_TEST(st.status == "failed");
  BOOST_TEST(st.last_error_code == "unavailable");
  BOOST_TEST(st.consecutive_failures == 1);
  BOOST_TEST(st.checkpoint_pages == 2);
  BOOST_TEST(st.high_water == 0);  // only a completed listing moves it

  e.engine().set_page_observer(nullptr);
  e.sim.admin("POST", "/_sim/counters/reset");
  auto resumed = e.engine().incremental(kAlice, "test");
  BOOST_REQUIRE(resumed.ok());
  BOOST_TEST(resumed->status == "succeeded", resumed->message);
  BOOST_TEST(resumed->resumed_job_id == failed->id);
  BOOST_TEST(resumed->pages == pages_for(ids.size()) - 2);
  BOOST_TEST(api_calls(e.sim, "GET /meetings") == pages_for(ids.size()) - 2);
  BOOST_TEST(stored_ids(e.store(), kAlice) == ids);
  BOOST_TEST(e.pipeline.max_per_version() == 1);
  BOOST_TEST(e.engine().state(kAlice)->consecutive_failures == 0);

  // The questions operators ask, without SQL.
  auto fails = e.engine().recent_jobs({0, "", "failed"}).value();
  BOOST_REQUIRE_EQUAL(fails.size(), 1u);
  BOOST_TEST(fails[0].id == failed->id);
  BOOST_TEST(e.engine().recent_jobs({kCarol, "", "failed"})->empty());
  BOOST_TEST(e.engine().recent_jobs({0, "tenant-1", ""})->size() == 2u);
  BOOST_TEST(e.engine().recent_jobs({0, "tenant-0", ""})->empty());
  BOOST_TEST(e.engine().recent_jobs({0, "", "", "", failed->started_at + 100000})->empty());
  auto all = e.engine().recent_jobs({kAlice}).value();
  BOOST_REQUIRE_EQUAL(all.size(), 2u);
  BOOST_TEST(all[0].id == resumed->id);  // newest first
  BOOST_TEST(e.engine().job(failed->id)->error_code == "unavailable");
  BOOST_TEST(e.engine().job(99999).code() == Code::kNotFound);
}

namespace {

// The sim's /meetings pages, with items broken the way a captured Fathom page was: item 0 of each
// page in break_pages loses its recording_id, item 3 gets a created_at of the wrong type.
class BreakingTransport final : public HttpTransport {
 public:
  Result<HttpResponse> send(const HttpRequest& request) override {
    auto res = real.send(request);
    if (!res.ok() || res->status != 200 || request.url.find("/external/v1/meetings") == std::string::npos) return res;
    std::lock_guard lock(mu);
    if (!break_pages.count(++pages)) return res;
    json page = json::parse(res->body);
    json& items = page["items"];
    broken.insert(items[0]["recording_id"].get<int64_t>());
    items[0].erase("recording_id");
    if (items.size() > 3) {
      broken.insert(items[3]["recording_id"].get<int64_t>());
      items[3]["created_at"] = 5;
    }
    res->body = page.dump();
    return res;
  }
  HttplibTransport real;
  std::mutex mu;
  int pages = 0;
  std::set<int> break_pages;
  std::set<int64_t> broken;
};

}  // namespace

// Issue 10, point 4: one item without recording_id failed its whole page ("malformed:
// meetings.items[0].recording_id: missing"), so nothing on it or after it was stored, and every
// later sync failed at the same place. A bad item is skipped, counted and listed with its reason
// in the job; the rest of the page and the later pages are stored.
BOOST_AUTO_TEST_CASE(a_malformed_list_item_is_skipped_with_its_reason_and_the_sync_goes_on) {
  test::SimProcess sim({"--meetings", "47"});
  test::TempDir dir;
  test::ApiKeyCredentials creds;
  creds.set(kAlice, sim.api_key("alice@example.com"));
  test::TestDirectory directory;
  directory.add(kAlice);
  test::CountingPipeline pipeline;
  BreakingTransport transport;
  transport.break_pages = {1, 2};
  test::SyncEnv env(sim.api_base(), creds, directory, dir.store("sync.db"), &pipeline, {}, {}, {}, &transport);
  auto ids = visible_ids(sim, "alice@example.com");
  BOOST_REQUIRE(ids.size() > 24u);  // three pages at least, the first two full

  auto job = env.engine->backfill(kAlice, "test");
  BOOST_REQUIRE(job.ok());
  BOOST_TEST(job->status == "succeeded", job->message);
  BOOST_TEST(job->pages == pages_for(ids.size()));
  BOOST_TEST(job->items_skipped == 4);
  BOOST_TEST(job->message.find("4 malformed items skipped") != std::string::npos, job->message);
  std::set<int64_t> expected;
  for (int64_t id : ids) {
    if (!transport.broken.count(id)) expected.insert(id);
  }
  BOOST_TEST(transport.broken.size() == 4u);
  BOOST_TEST(stored_ids(*env.store, kAlice) == expected);
  json skipped = json::parse(job->skipped_items);
  BOOST_REQUIRE(skipped.size() == 4u);
  BOOST_TEST(skipped[0]["page"] == 1);
  BOOST_TEST(skipped[0]["index"] == 0);
  BOOST_TEST(skipped[0]["recording_id"] == 0);  // it had none
  BOOST_TEST(skipped[0]["reason"] == "meetings.items[0].recording_id: missing");
  BOOST_TEST(skipped[1]["index"] == 3);
  BOOST_TEST(transport.broken.count(skipped[1]["recording_id"].get<int64_t>()) == 1u);
  BOOST_TEST(skipped[1]["reason"] == "meetings.items[3].created_at: expected string, got integer");
  BOOST_TEST(skipped[3]["page"] == 2);
  // The job log shows the same.
  auto logged = env.engine->job(job->id);
  BOOST_REQUIRE(logged.ok());
  BOOST_TEST(logged->items_skipped == 4);
  BOOST_TEST(logged->skipped_items == job->skipped_items);

  // Later syncs are not stuck there either.
  transport.break_pages = {1};
  {
    std::lock_guard lock(transport.mu);
    transport.pages = 0;
  }
  auto next = env.engine->incremental(kAlice, "test");
  BOOST_REQUIRE(next.ok());
  BOOST_TEST(next->status == "succeeded", next->message);
  BOOST_TEST(next->items_skipped >= 1);
}

// "One bad item never blocks the rest", for a meeting the store refuses by one of its rules (a
// trigger here; in the field a constraint or a trigger an operator added). Before, that meeting
// failed its page's transaction: the job failed on that page, and every later sync resumed there
// and failed again, so nothing after it was ever stored. Now the page is recorded meeting by
// meeting: the refused one is skipped and named in the job, the rest of the page and the pages
// after it are stored, and the job says it did not store everything. A rule that refuses every
// meeting of a page still fails it, its checkpoint kept (the next case).
BOOST_AUTO_TEST_CASE(a_meeting_the_store_refuses_is_skipped_and_named_and_the_rest_are_stored) {
  Env e;
  const std::set<int64_t> listed = visible_ids(e.sim, "alice@example.com");
  const std::vector<int64_t> ids(listed.begin(), listed.end());
  BOOST_REQUIRE(ids.size() > 20u);  // three pages at least
  const std::set<int64_t> refused = {ids[3], ids[14]};
  test::refuse_meetings(*e.env->db, std::to_string(ids[3]) + "," + std::to_string(ids[14]));

  auto job = e.engine().backfill(kAlice, "test");
  BOOST_REQUIRE(job.ok());
  BOOST_TEST(job->status == "succeeded_with_errors", job->message);
  BOOST_TEST(job->pages == pages_for(ids.size()));
  std::set<int64_t> expected(ids.begin(), ids.end());
  for (int64_t id : refused) expected.erase(id);
  BOOST_TEST(stored_ids(e.store(), kAlice) == expected);
  BOOST_TEST(job->meetings_seen == static_cast<int64_t>(ids.size()));
  BOOST_TEST(job->meetings_new == static_cast<int64_t>(expected.size()));
  BOOST_TEST(job->items_skipped == 2);
  BOOST_TEST(job->message.find("2 meeting(s) not stored (first: the store refused meeting ") != std::string::npos,
             job->message);
  BOOST_TEST(job->message.find("malformed") == std::string::npos, job->message);
  json skipped = json::parse(job->skipped_items);
  BOOST_REQUIRE(skipped.size() == 2u);
  std::set<int64_t> named;
  for (const json& s : skipped) {
    const int64_t rec = s["recording_id"].get<int64_t>();
    named.insert(rec);
    const std::string reason = s["reason"].get<std::string>();
    BOOST_TEST(reason.find("the store refused meeting " + std::to_string(rec) + ": ") == 0u, reason);
    BOOST_TEST(reason.find("the store refuses") != std::string::npos, reason);  // the store's own words
    BOOST_TEST(reason.size() <= 1000u);  // not the whole row the store quotes
  }
  BOOST_TEST(named == refused);
  BOOST_TEST(job->error_code.empty());
  json details = json::parse(job->error_details);
  BOOST_TEST(details["meetings_not_stored"] == 2);
  // The mapping ran before the page was recorded: the CRM has every meeting, the refused ones too.
  for (int64_t id : ids) BOOST_TEST(e.pipeline.mapped(id) == 1, "recording " << id);

  // Later syncs are not stuck on it, and map no stored meeting twice (a refused one the overlap
  // lists again is mapped again: it is not stored; the CRM's idempotency keys make that harmless).
  auto next = e.engine().incremental(kAlice, "test");
  BOOST_REQUIRE(next.ok());
  BOOST_TEST(next->ok(), next->message);
  // What it skipped (a refused meeting listed again by the overlap) is only what the store refuses.
  BOOST_TEST(next->status == (next->items_skipped > 0 ? "succeeded_with_errors" : "succeeded"), next->message);
  if (next->items_skipped > 0) {
    for (const json& s : json::parse(next->skipped_items)) BOOST_TEST(refused.count(s["recording_id"].get<int64_t>()));
  }
  BOOST_TEST(stored_ids(e.store(), kAlice) == expected);
  for (int64_t id : expected) BOOST_TEST(e.pipeline.mapped(id) == 1, "recording " << id);

  // A store that takes the meetings again: a manual sync of the whole range stores them (and maps
  // them again: the CRM's idempotency keys make that harmless).
  test::accept_meetings(*e.env->db);
  SyncRequest all;
  all.integration_id = kAlice;
  all.mode = SyncMode::kManual;
  auto manual = e.engine().run(all);
  BOOST_REQUIRE(manual.ok());
  BOOST_TEST(manual->status == "succeeded", manual->message);
  BOOST_TEST(stored_ids(e.store(), kAlice) == std::set<int64_t>(ids.begin(), ids.end()));
}

BOOST_AUTO_TEST_CASE(a_store_that_refuses_every_meeting_fails_the_page_and_keeps_its_checkpoint) {
  Env e;
  std::set<int64_t> ids = visible_ids(e.sim, "alice@example.com");
  BOOST_REQUIRE(ids.size() > 20u);
  test::refuse_meetings(*e.env->db, "");
  auto job = e.engine().backfill(kAlice, "test");
  BOOST_REQUIRE(job.ok());
  BOOST_TEST(job->status == "failed", job->message);
  BOOST_TEST(job->message.find("the store refuses") != std::string::npos, job->message);
  // The store's words quote 4 KB of "the row"; the job keeps 2,000 bytes of them, marked as cut.
  BOOST_TEST(job->message.size() <= 2000u + std::string("... (cut)").size(), job->message.size());
  BOOST_TEST(job->message.ends_with("... (cut)"));
  json details = json::parse(job->error_details);
  BOOST_TEST(details["message"] == job->message);
  BOOST_TEST(e.engine().state(kAlice).value().last_error == job->message);
  BOOST_TEST(details["pages_committed"] == 0);
  BOOST_TEST(details["failed_page"] == 1);
  BOOST_TEST(details["checkpoint_kept"] == true);
  BOOST_TEST(job->items_skipped == 0);
  BOOST_TEST(stored_ids(e.store(), kAlice).empty());

  // Nothing was skipped for it: once the store takes meetings again, the next run stores them all.
  test::accept_meetings(*e.env->db);
  auto next = e.engine().backfill(kAlice, "test");
  BOOST_REQUIRE(next.ok());
  BOOST_TEST(next->status == "succeeded", next->message);
  BOOST_TEST(stored_ids(e.store(), kAlice) == ids);
}

// The review of the change above: a store that fails for reasons of its own (full, read-only, a
// statement timeout) while a page is being recorded one by one must not have its meetings taken
// for refused ones: skipped, with the high-water mark moved past them, they would never be listed
// again. Page 1 holds a meeting the store refuses (a rule) and, after it, one it fails to store
// (disk full): the page fails whole, nothing is skipped, and once the store has room again the
// next run stores the second and skips only the first.
BOOST_AUTO_TEST_CASE(a_store_failing_while_a_page_is_recorded_one_by_one_skips_no_meeting) {
  Env e;
  json listing = e.sim.admin("GET", "/_sim/meetings?visible_to=alice@example.com")["items"];  // newest first, as listed
  BOOST_REQUIRE(listing.size() > 20u);
  std::vector<int64_t> order;
  for (const json& m : listing) order.push_back(m["recording_id"].get<int64_t>());
  const int64_t refused = order[1], failing = order[5];  // both on page 1, the refused one first
  std::vector<int64_t> first_page;
  e.engine().set_page_observer([&](int64_t, int64_t page_no, const Page<Meeting>& page) {
    if (page_no == 1 && first_page.empty()) {
      for (const Meeting& m : page.items) first_page.push_back(m.recording_id);
    }
  });
  test::refuse_meetings(*e.env->db, std::to_string(refused), test::StoreFault::kRefuses);
  test::refuse_meetings(*e.env->db, std::to_string(failing), test::StoreFault::kFails);

  auto job = e.engine().backfill(kAlice, "test");
  BOOST_REQUIRE(job.ok());
  BOOST_TEST(job->status == "failed", job->message);
  BOOST_TEST(job->error_code == "io", job->error_code);
  BOOST_TEST(job->message.find(std::to_string(failing)) != std::string::npos, job->message);  // names the meeting
  BOOST_TEST(job->items_skipped == 0);
  BOOST_TEST(job->skipped_items.empty(), job->skipped_items);
  const std::set<int64_t> stored = stored_ids(e.store(), kAlice);
  BOOST_TEST(!stored.count(failing));
  BOOST_TEST(!stored.count(refused));

  // The store has room again; its rule still refuses the first.
  test::accept_meetings(*e.env->db, test::StoreFault::kFails);
  auto next = e.engine().backfill(kAlice, "test");
  BOOST_REQUIRE(next.ok());
  BOOST_TEST(next->status == "succeeded_with_errors", next->message);
  BOOST_TEST(next->items_skipped == 1);
  json skipped = json::parse(next->skipped_items);
  BOOST_REQUIRE(skipped.size() == 1u);
  BOOST_TEST(skipped[0]["recording_id"] == refused);
  BOOST_TEST(skipped[0]["page"] == 1);
  BOOST_TEST(skipped[0]["index"] == 1);
  std::set<int64_t> expected(order.begin(), order.end());
  expected.erase(refused);
  BOOST_TEST(stored_ids(e.store(), kAlice) == expected);
  // The page the test meant: the observer saw page 1 as the listing's first ten.
  BOOST_REQUIRE(first_page.size() == 10u);
  BOOST_TEST(first_page == std::vector<int64_t>(order.begin(), order.begin() + 10));
}

BOOST_AUTO_TEST_CASE(mapping_failures_stay_unmapped_and_are_retried_next_run) {
  Env e({"--meetings", "25"});
  auto ids = visible_ids(e.sim, "alice@example.com");
  int64_t bad = *ids.begin();
  e.pipeline.fail_ids = {bad};
  auto job = e.engine().backfill(kAlice);
  BOOST_REQUIRE(job.ok());
  BOOST_TEST(job->status == "succeeded_with_errors");  // issue 10 point 16
  BOOST_TEST(job->ok());
  BOOST_TEST(!job->clean());
  BOOST_TEST(job->map_failures == 1);
  BOOST_TEST(job->message.find("failed to map") != std::string::npos);
  BOOST_TEST(json::parse(job->error_details)["first_map_error"].get<std::string>().find("test CRM refused") !=
             std::string::npos);
  auto m = e.store().get(kAlice, bad).value();
  BOOST_TEST(m.mapped_version == 0);
  BOOST_TEST(m.map_error.value_or("").find("test CRM refused") != std::string::npos);
  e.pipeline.fail_ids.clear();
  auto next = e.engine().incremental(kAlice);
  BOOST_REQUIRE(next.ok() && next->ok());
  BOOST_TEST(next->meetings_mapped == 1);
  BOOST_TEST(e.pipeline.mapped(bad) == 1);
  BOOST_TEST(e.pipeline.total == static_cast<int>(ids.size()));
}

BOOST_AUTO_TEST_CASE(reconnect_required_integrations_are_skipped_and_logged) {
  Env e({"--meetings", "5"});
  e.directory.set_status(kAlice, "reconnect_required");
  auto job = e.engine().incremental(kAlice);
  BOOST_REQUIRE(job.ok());
  BOOST_TEST(job->status == "skipped");
  BOOST_TEST(job->error_code == "reconnect_required");
  BOOST_TEST(job->message.find("must connect again") != std::string::npos);
  BOOST_TEST(e.sim.counters()["api_calls_total"].get<int>() == 0);

  // The credential source learns it first (a refresh said invalid_grant).
  e.directory.set_status(kAlice, "active");
  e.creds.set_reconnect_required(kAlice, true);
  auto job2 = e.engine().incremental(kAlice);
  BOOST_REQUIRE(job2.ok());
  BOOST_TEST(job2->status == "skipped");
  BOOST_TEST(job2->error_code == "reconnect_required");
  BOOST_TEST(job2->api_calls == 0);
  BOOST_TEST(e.sim.counters()["api_calls_total"].get<int>() == 0);
  BOOST_TEST(e.engine().recent_jobs({kAlice, "", "skipped"})->size() == 2u);
  BOOST_TEST(e.engine().incremental(999).code() == Code::kNotFound);
}

BOOST_AUTO_TEST_CASE(one_sync_at_a_time_per_integration) {
  Env e({"--meetings", "30"});
  // A second engine on its own connection to the same file, as another worker would have.
  test::CountingPipeline p2;
  test::SyncEnv other(e.sim.api_base(), e.creds, e.directory, e.env->db->path(), &p2);
  Status same_engine, other_engine, other_integration;
  e.engine().set_page_observer([&](int64_t id, int64_t page, const Page<Meeting>&) {
    if (id != kAlice || page != 1) return;
    same_engine = e.engine().incremental(kAlice).status();
    other_engine = other.engine->incremental(kAlice).status();
    auto j = other.engine->incremental(kCarol);
    other_integration = j.ok() && j->ok() ? Status::Ok() : Status::Internal("carol's sync did not run");
  });
  auto job = e.engine().backfill(kAlice);
  BOOST_REQUIRE(job.ok() && job->ok());
  BOOST_TEST(same_engine.code() == Code::kConflict);
  BOOST_TEST(other_engine.code() == Code::kConflict);
  BOOST_TEST(other_engine.message().find("already running") != std::string::npos);
  BOOST_TEST(other_integration.ok());
  // Once it finished, the lease is free again.
  e.engine().set_page_observer(nullptr);
  BOOST_TEST(other.engine->incremental(kAlice)->ok());
}

BOOST_AUTO_TEST_CASE(manual_range_and_single_recording) {
  Env e({"--meetings", "40"});
  json all = e.sim.admin("GET", "/_sim/meetings?visible_to=alice@example.com");
  std::vector<std::pair<int64_t, int64_t>> items;  // created_at, id
  for (auto& m : all["items"]) {
    int64_t t = 0;
    parse_iso8601(m["created_at"].get<std::string>(), &t);
    items.emplace_back(t, m["recording_id"].get<int64_t>());
  }
  std::sort(items.begin(), items.end());
  int64_t from = items[3].first, to = items[items.size() - 4].first;
  std::set<int64_t> expected;
  for (auto& [t, id] : items) {
    if (t > from && t < to) expected.insert(id);
  }
  auto job = e.engine().manual_range(kAlice, from, to);
  BOOST_REQUIRE(job.ok() && job->ok());
  BOOST_TEST(stored_ids(e.store(), kAlice) == expected);
  BOOST_TEST(e.engine().state(kAlice)->high_water == 0);  // a closed range never moves the mark

  e.sim.admin("POST", "/_sim/counters/reset");
  int64_t one = *expected.begin();
  auto single = e.engine().manual_recording(kAlice, one);
  BOOST_REQUIRE(single.ok());
  BOOST_TEST(single->status == "succeeded", single->message);
  BOOST_TEST(single->api_calls == 1);
  BOOST_TEST(single->meetings_seen >= 1);
  auto unknown = e.engine().manual_recording(kAlice, 42);
  BOOST_REQUIRE(unknown.ok());
  BOOST_TEST(unknown->status == "failed");
  BOOST_TEST(unknown->error_code == "not_found");
  BOOST_TEST(unknown->api_calls == 0);
  BOOST_TEST(e.engine().manual_range(kAlice, 10, 5).code() == Code::kInvalidArgument);
}

// The sync lease is granted for lease_ttl_s from when its transaction has the store, not from
// before it waited for it: another writer holding the store (another host's transaction) while the
// clock moves on must not shorten the new lease, or born expired it could be taken over at once.
BOOST_AUTO_TEST_CASE(a_wait_for_the_store_does_not_shorten_the_sync_lease) {
  FakeClock clock(system_clock().now_ms());
  SyncOptions opts;
  opts.lease_ttl_s = 60;
  Env e({"--meetings", "12"}, opts, {}, &clock);
  auto other = Db::open(e.dir.store("sync.db"));  // another writer on the same store
  BOOST_REQUIRE_MESSAGE(other.ok(), other.status());
  std::mutex mu;
  std::condition_variable cv;
  bool holding = false, release = false;
  // Boost.Test's checks are for the main thread: the threads keep their outcomes for it.
  Status held = Status::Ok(), read = Status::Ok(), ran = Status::Ok();
  std::thread writer([&] {
    held = (*other)->transaction([&]() -> Status {
      std::unique_lock lk(mu);
      holding = true;
      cv.notify_all();
      cv.wait(lk, [&] { return release; });
      return Status::Ok();
    });
  });
  {
    std::unique_lock lk(mu);
    if (!cv.wait_for(lk, std::chrono::seconds(30), [&] { return holding; })) {
      release = true;
      lk.unlock();
      writer.join();
      BOOST_FAIL("the other connection did not take the store: " << held);
    }
  }
  int64_t lease_until = 0, now_at_start = 0;
  std::thread sync([&] {
    auto job = e.engine().run({kAlice, SyncMode::kBackfill, 0, 0, 0, "test"}, [&](int64_t) {
      now_at_start = clock.now_s();
      read = (*other)->with([&]() -> Status {
        auto st = (*other)->prepare_uncached("SELECT lease_until FROM sync_state WHERE integration_id=" +
                                             std::to_string(kAlice));
        if (!st.ok()) return st.status();
        FB_ASSIGN(bool row, st->step());
        lease_until = row ? st->int64(0) : -1;
        return Status::Ok();
      });
    });
    if (!job.ok()) ran = job.status();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the sync waits for the store
  clock.advance_ms(100'000);  // longer than the lease's time to live
  {
    std::lock_guard lk(mu);
    release = true;
  }
  cv.notify_all();
  writer.join();
  sync.join();
  BOOST_TEST(held.ok(), held);
  BOOST_TEST(read.ok(), read);
  BOOST_TEST(ran.ok(), ran);
  BOOST_TEST(lease_until >= now_at_start + opts.lease_ttl_s - 1, "lease until " << lease_until << ", sync started at "
                                                                               << now_at_start);
}

BOOST_AUTO_TEST_CASE(scheduler_runs_due_integrations_and_the_keepalive) {
  // One fake clock for the engine (which stamps last_attempt_at) and the ticks: with the system
  // clock a tick that lands one second after the sync's stamp found nothing due an hour later.
  FakeClock clock(system_clock().now_ms());
  Env e({"--meetings", "12"}, {}, {}, &clock);
  int keepalives = 0;
  SchedulerOptions so;
  so.interval_s = 3600;
  so.keepalive_interval_s = 600;
  SyncScheduler sched(e.engine(), e.directory, clock, so, [&] { ++keepalives; });
  const int64_t now = clock.now_s();
  auto r1 = sched.tick(now);
  BOOST_TEST(r1.syncs_run == 2);
  BOOST_TEST(r1.keepalive_ran);
  clock.advance_ms(10'000);
  auto r2 = sched.tick(clock.now_s());
  BOOST_TEST(r2.syncs_run == 0);  // not due yet
  BOOST_TEST(!r2.keepalive_ran);
  clock.set_ms((now + 3600) * 1000);
  auto r3 = sched.tick(clock.now_s());
  BOOST_TEST(r3.syncs_run == 2);
  BOOST_TEST(keepalives == 2);
  auto jobs = e.engine().recent_jobs({kAlice}).value();
  BOOST_REQUIRE_EQUAL(jobs.size(), 2u);
  BOOST_TEST(jobs[0].trigger == "scheduler");
  BOOST_TEST(jobs[0].mode == "incremental");
  BOOST_TEST(jobs[0].api_calls == 1);

  // The thread: it syncs a new integration on its own, and stops cleanly.
  e.creds.set(3, e.sim.api_key("bob@example.com"));
  e.directory.add(3);
  SchedulerOptions fast = so;
  fast.poll_ms = 20;
  SyncScheduler threaded(e.engine(), e.directory, system_clock(), fast);
  threaded.start();
  bool done = false;
  for (int i = 0; i < 3000 && !done; ++i) {  // 30 s: a sanitizer build on a loaded machine
    done = !e.engine().recent_jobs({3}).value().empty() && e.engine().recent_jobs({3}).value()[0].ok();
    if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  threaded.stop();
  BOOST_TEST(done);
  BOOST_TEST(!threaded.running());
}

// The store down: every tick (a second apart) read each integration's sync state, failed, and
// logged one ERROR line per integration per tick. Now one line naming how many, then a line a
// minute with the count (at once for a new reason), and one when the states can be read again.
BOOST_AUTO_TEST_CASE(unreadable_sync_states_are_logged_once_a_minute_not_per_integration_and_tick) {
  FakeClock clock(system_clock().now_ms());
  Env e({"--meetings", "2"}, {}, {}, &clock);
  for (int64_t id = 3; id <= 10; ++id) e.directory.add(id);
  SchedulerOptions so;
  so.interval_s = 3600;
  SyncScheduler sched(e.engine(), e.directory, clock, so);
  test::LogCapture logs;
  auto exec = [&](const char* sql) { return e.env->db->with([&] { return e.env->db->exec(sql); }); };
  auto lines = [&] { return logs.matching("reading the sync state of"); };
  BOOST_REQUIRE(exec("ALTER TABLE sync_state RENAME TO sync_state_away").ok());
  for (int tick = 0; tick < 20; ++tick) BOOST_TEST(sched.tick(clock.now_s()).syncs_run == 0);
  const size_t first = lines().size();
  BOOST_TEST(first >= 1u);
  BOOST_TEST(first <= 2u, logs.all());  // PostgreSQL: running the prepared statement, then preparing it
  BOOST_TEST(lines().at(0).find("of 10 integration(s) failed") != std::string::npos, lines().at(0));
  clock.advance_ms(60'000);
  sched.tick(clock.now_s());
  BOOST_REQUIRE(lines().size() == first + 1);
  BOOST_TEST(lines().back().find("more since the last report") != std::string::npos, lines().back());
  BOOST_REQUIRE(exec("ALTER TABLE sync_state_away RENAME TO sync_state").ok());
  BOOST_TEST(logs.matching("sync states can be read again").empty());
  sched.tick(clock.now_s());
  BOOST_TEST(logs.matching("sync states can be read again after").size() == 1u, logs.all());
}

BOOST_AUTO_TEST_CASE(the_scheduler_syncs_due_integrations_concurrently_up_to_its_limit) {
  // Every API call takes 300 ms at the simulator: whether two accounts' syncs overlap shows in the
  // simulator's count of calls waiting at once.
  Env e({"--meetings", "12", "--latency", "300"});
  e.creds.set(3, e.sim.api_key("bob@example.com"));
  e.directory.add(3);
  SchedulerOptions serial;
  serial.concurrency = 1;
  auto r1 = SyncScheduler(e.engine(), e.directory, system_clock(), serial).tick(system_clock().now_s());
  BOOST_TEST(r1.syncs_run == 3);
  BOOST_TEST(r1.syncs_failed == 0);
  BOOST_TEST(e.sim.counters()["api_concurrent_max"].get<int>() == 1);
  e.sim.admin("POST", "/_sim/counters/reset");
  SchedulerOptions parallel;
  parallel.concurrency = 3;
  // Each incremental sync below is one call: 1.5 s each, so that the three threads' calls overlap
  // even when a loaded machine starts them a second apart.
  e.sim.config({{"latency_ms", 1500}});
  // An hour later all three are due again.
  auto r2 = SyncScheduler(e.engine(), e.directory, system_clock(), parallel).tick(system_clock().now_s() + 3600);
  BOOST_TEST(r2.syncs_run == 3);
  BOOST_TEST(r2.syncs_failed == 0);
  BOOST_TEST(e.sim.counters()["api_concurrent_max"].get<int>() >= 2);
  BOOST_TEST(e.sim.counters()["api_concurrent_max"].get<int>() <= 3);
  for (int64_t id : {kAlice, kCarol, int64_t{3}}) {
    auto jobs = e.engine().recent_jobs({id}).value();
    BOOST_REQUIRE_EQUAL(jobs.size(), 2u);
    BOOST_TEST(jobs[0].ok());
  }
}

BOOST_AUTO_TEST_CASE(stopping_the_scheduler_interrupts_a_sync_waiting_on_the_rate_limit) {
  Env e({"--meetings", "60", "--rate-limit", "2", "--rate-window", "60"});
  e.directory.set_status(kCarol, "disconnected");
  SchedulerOptions so;
  so.poll_ms = 20;
  SyncScheduler sched(e.engine(), e.directory, system_clock(), so);
  sched.start();
  // Two pages go through, then the limiter holds the third for about a minute.
  auto& lim = e.env->limiters.for_account(kAlice);
  for (int i = 0; i < 3000 && lim.snapshot().waits == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  BOOST_REQUIRE(lim.snapshot().waits > 0);
  sched.stop();
  auto jobs = e.engine().recent_jobs({kAlice}).value();
  BOOST_REQUIRE_EQUAL(jobs.size(), 1u);
  BOOST_TEST(jobs[0].status == "cancelled");
  BOOST_TEST(jobs[0].pages == 2);
  BOOST_TEST(e.engine().state(kAlice)->checkpoint_pages == 2);
  BOOST_TEST(e.sim.counters()["rate_limited"].get<int>() == 0);
}
