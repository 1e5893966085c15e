// MeetingStore and MeetingDispatcher over a real SQLite file: versions, the content cache, and
// exactly-once mapping under concurrency.
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "core/clock.h"
#include "store/db.h"
#include "store/stmt_runs.h"
#include "support/temp_dir.h"
#include "sync/meeting_dispatcher.h"
#include "sync/meeting_store.h"
#include "sync/scheduler.h"

using namespace fb;
using namespace fb::detail;
using nlohmann::json;

namespace {

json meeting_json(int64_t id, const std::string& title = "Acme call") {
  return {{"title", title},
          {"meeting_title", "Acme x Example"},
          {"recording_id", id},
          {"url", "https://fathom.video/calls/" + std::to_string(id)},
          {"share_url", "https://fathom.video/share/x" + std::to_string(id)},
          {"created_at", "2025-03-01T17:01:30Z"},
          {"scheduled_start_time", "2025-03-01T16:00:00Z"},
          {"scheduled_end_time", "2025-03-01T17:00:00Z"},
          {"recording_start_time", "2025-03-01T16:01:12Z"},
          {"recording_end_time", "2025-03-01T17:00:55Z"},
          {"calendar_invitees_domains_type", "one_or_more_external"},
          {"transcript_language", "en"},
          {"calendar_invitees",
           {{{"name", "Alice"}, {"email", "alice@example.com"}, {"email_domain", "example.com"}, {"is_external", false}},
            {{"name", "Bob"}, {"email", "bob@acme.test"}, {"email_domain", "acme.test"}, {"is_external", true}}}},
          {"recorded_by", {{"name", "Alice"}, {"email", "alice@example.com"}, {"email_domain", "example.com"},
                           {"team", "Sales"}}},
          {"future_field", {{"nested", 1}}}};
}

// What a webhook with every include_* flag carries on top of the list item.
json with_content(json m) {
  m["transcript"] = {{{"speaker", {{"display_name", "Alice"}, {"matched_calendar_invitee_email", "alice@example.com"}}},
                      {"text", "Hello"},
                      {"timestamp", "00:00:04"}}};
  m["default_summary"] = {{"template_name", "general"}, {"markdown_formatted", "## Summary"}};
  m["action_items"] = json::array();
  m["crm_matches"] = nullptr;
  m["calendar_invitees"][0]["matched_speaker_display_name"] = "Alice";
  return m;
}

class CountingPipeline : public MeetingPipeline {
 public:
  Status on_meeting(const MeetingEvent& e) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    std::lock_guard lock(mu);
    calls.emplace_back(e.recording_id, e.content_version);
    if (fail) return Status::Unavailable("CRM is down");
    return Status::Ok();
  }
  std::mutex mu;
  std::vector<std::pair<int64_t, int64_t>> calls;
  bool fail = false;
  int delay_ms = 0;
};

struct Fixture {
  test::TempDir dir;
  FakeClock clock;
  std::unique_ptr<Db> db = Db::open(dir.store("sync.db")).value();
  std::unique_ptr<MeetingStore> store = MeetingStore::open(*db, clock).value();
  std::unique_ptr<MeetingDispatcher> dispatcher = MeetingDispatcher::open(*db, clock).value();
  IntegrationInfo integration{7, "tenant-a", "user-1", "", "api_key", "active", true, 0};
};

// Statements record_batch runs, in the caller's transaction, as the webhook path calls it.
uint64_t record_batch_statements(Fixture& f, const std::vector<BatchItem>& items, const BatchLease& lease) {
  uint64_t runs = 0;
  BOOST_REQUIRE(f.db->transaction([&]() -> Status {
                    const uint64_t before = stmt_runs_on_this_thread();
                    Status s = f.dispatcher->record_batch(items, *f.store, &lease);
                    runs = stmt_runs_on_this_thread() - before;
                    return s;
                  }).ok());
  return runs;
}

// The misses recorded for a recording of integration 7 (MeetingStore::note_missed).
int64_t missed_rows(Db& db, int64_t recording_id) {
  int64_t n = 0;
  BOOST_REQUIRE(db.with([&]() -> Status {
                    Stmt& q = db.prepare(
                        "SELECT COUNT(*) FROM sync_meeting_content WHERE integration_id=7 AND recording_id=? "
                        "AND source='missed'");
                    q.bind_all(recording_id);
                    return each_row(q, [&](const Stmt& r) { n = r.int64(0); });
                  }).ok());
  return n;
}

}  // namespace

BOOST_AUTO_TEST_CASE(parse_errors_name_the_field) {
  json m = meeting_json(1);
  m["recording_id"] = "1";
  auto r = parse_meeting(m.dump());
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST(r.status().message() == "meeting.recording_id: expected integer, got string");
  m = meeting_json(1);
  m["calendar_invitees"][1]["is_external"] = "yes";
  r = parse_meeting(m.dump());
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST(r.status().message() == "meeting.calendar_invitees[1].is_external: expected boolean, got string");
  BOOST_TEST(r.code() == Code::kMalformed);
  m = meeting_json(1);
  m.erase("recording_id");
  BOOST_TEST(parse_meeting(m.dump()).status().message() == "meeting.recording_id: missing");
  BOOST_TEST(parse_meeting("{not json").code() == Code::kMalformed);
}

BOOST_AUTO_TEST_CASE(missing_optional_fields_are_tolerated_and_unknown_fields_kept) {
  json m = meeting_json(5);
  m.erase("meeting_title");
  m.erase("share_url");
  m["recorded_by"].erase("email_domain");
  m["recorded_by"].erase("team");
  auto r = parse_meeting(m.dump());
  BOOST_REQUIRE_MESSAGE(r.ok(), r.status());
  BOOST_TEST(!r->meeting_title.has_value());
  BOOST_TEST(r->recorded_by.email_domain == "example.com");  // derived from the email
  BOOST_TEST(r->raw_json.find("future_field") != std::string::npos);
  BOOST_TEST(r->created_at_s == 1740848490);
}

BOOST_AUTO_TEST_CASE(core_hash_ignores_include_parts_and_key_order) {
  auto a = parse_meeting(meeting_json(9).dump()).value();
  auto b = parse_meeting(with_content(meeting_json(9)).dump()).value();
  BOOST_TEST(a.core_hash == b.core_hash);
  BOOST_TEST(b.has_transcript);
  BOOST_TEST(b.has_crm_matches);
  BOOST_TEST(b.crm_matches_json.empty());  // null: present but nothing to cache
  // Key order does not matter.
  std::string reordered = R"({"recording_id":9,)" + meeting_json(9).dump().substr(1);
  json j = meeting_json(9);
  j.erase("recording_id");
  reordered = R"({"recording_id":9,)" + j.dump().substr(1);
  BOOST_TEST(parse_meeting(reordered).value().core_hash == a.core_hash);
  // A real change does.
  BOOST_TEST(parse_meeting(meeting_json(9, "Renamed").dump()).value().core_hash != a.core_hash);
}

// The webhook worker's path (issue 11) parses a body once and reads the meeting out of that parse
// without copying the text: every field, the hash, the parts and every error must be what the
// text parser gives.
BOOST_AUTO_TEST_CASE(a_meeting_read_from_a_kept_parse_is_the_meeting_the_text_parser_reads) {
  auto same_fields = [](const Meeting& a, const Meeting& b) {
    BOOST_TEST(a.recording_id == b.recording_id);
    BOOST_TEST(a.title == b.title);
    BOOST_TEST((a.meeting_title == b.meeting_title));
    BOOST_TEST(a.url == b.url);
    BOOST_TEST(a.share_url == b.share_url);
    BOOST_TEST(a.created_at_s == b.created_at_s);
    BOOST_TEST(a.recording_end_s == b.recording_end_s);
    BOOST_TEST(a.calendar_invitees_domains_type == b.calendar_invitees_domains_type);
    BOOST_REQUIRE_EQUAL(a.calendar_invitees.size(), b.calendar_invitees.size());
    for (size_t i = 0; i < a.calendar_invitees.size(); ++i) {
      BOOST_TEST((a.calendar_invitees[i].email == b.calendar_invitees[i].email));
      BOOST_TEST(a.calendar_invitees[i].is_external == b.calendar_invitees[i].is_external);
    }
    BOOST_TEST(a.recorded_by.email_domain == b.recorded_by.email_domain);
    BOOST_TEST((a.recorded_by.team == b.recorded_by.team));
    BOOST_TEST(a.has_transcript == b.has_transcript);
    BOOST_TEST(a.has_default_summary == b.has_default_summary);
    BOOST_TEST(a.has_action_items == b.has_action_items);
    BOOST_TEST(a.has_crm_matches == b.has_crm_matches);
    BOOST_TEST(a.core_hash == b.core_hash);
    BOOST_TEST(content_parts_of(a) == content_parts_of(b));
  };
  json full = with_content(meeting_json(42));
  json no_summary = with_content(meeting_json(43));
  no_summary.erase("default_summary");
  json null_speaker = with_content(meeting_json(44));
  null_speaker["transcript"].push_back({{"speaker", nullptr}, {"text", nullptr}});
  for (const json& m : {meeting_json(41), full, no_summary, null_speaker}) {
    std::string text = m.dump();
    Meeting by_text = parse_meeting(text).value();
    ParsedJson doc;
    BOOST_REQUIRE(doc.parse(text).ok());
    Meeting all = parse_meeting(doc, MeetingCopy::kAll).value();
    Meeting none = parse_meeting(doc, MeetingCopy::kNone).value();
    same_fields(by_text, all);
    same_fields(by_text, none);
    BOOST_TEST(all.raw_json == by_text.raw_json);
    BOOST_TEST(all.transcript_json == by_text.transcript_json);
    BOOST_TEST(all.default_summary_json == by_text.default_summary_json);
    BOOST_TEST(all.action_items_json == by_text.action_items_json);
    BOOST_TEST(none.raw_json.empty());
    BOOST_TEST(none.transcript_json.empty());
  }
  BOOST_TEST(content_parts_of(parse_meeting(full.dump()).value()) == 1 + 2 + 4);  // crm_matches null: not sent

  // Every way a transcript line can be malformed: the same message from both parsers.
  std::vector<json> bad_lines = {
      "a line",
      {{"speaker", "Alice"}, {"text", "hi"}},
      {{"speaker", {{"display_name", 7}}}, {"text", "hi"}},
      {{"speaker", {{"display_name", "A"}, {"matched_calendar_invitee_email", false}}}},
      {{"speaker", {{"display_name", "A"}}}, {"text", 1}},
      {{"text", "hi"}, {"timestamp", json::array()}},
  };
  // A duplicate member: only the first of a name is checked, by both parsers.
  for (const std::string& line : {std::string(R"({"text":"ok","text":7})"), std::string(R"({"text":7,"text":"ok"})")}) {
    std::string text = with_content(meeting_json(46)).dump();
    text.insert(text.find(R"("transcript":[)") + 14, line + ",");
    auto by_text = parse_meeting(text);
    ParsedJson doc;
    BOOST_REQUIRE(doc.parse(text).ok());
    auto kept = parse_meeting(doc, MeetingCopy::kNone);
    BOOST_TEST(kept.ok() == by_text.ok(), line);
    if (!by_text.ok()) BOOST_TEST(kept.status().message() == by_text.status().message());
  }
  for (const json& line : bad_lines) {
    json m = with_content(meeting_json(45));
    m["transcript"].push_back(line);
    std::string text = m.dump();
    auto by_text = parse_meeting(text);
    BOOST_REQUIRE(!by_text.ok());
    ParsedJson doc;
    BOOST_REQUIRE(doc.parse(text).ok());
    auto kept = parse_meeting(doc, MeetingCopy::kNone);
    BOOST_REQUIRE(!kept.ok());
    BOOST_TEST(kept.status().message() == by_text.status().message());
    BOOST_TEST(kept.code() == Code::kMalformed);
  }
  ParsedJson broken;
  Status s = broken.parse("{not json");
  BOOST_TEST(s.code() == Code::kMalformed);
  BOOST_TEST(s.message() == parse_meeting("{not json").status().message());
}

BOOST_FIXTURE_TEST_CASE(upsert_versions_only_on_core_change, Fixture) {
  auto r1 = store->upsert(7, meeting_json(100).dump(), "sync");
  BOOST_REQUIRE_MESSAGE(r1.ok(), r1.status());
  BOOST_TEST(r1->created);
  BOOST_TEST(r1->changed);
  BOOST_TEST(r1->content_version == 1);
  auto r2 = store->upsert(7, meeting_json(100).dump(), "sync");
  BOOST_TEST(!r2->changed);
  BOOST_TEST(r2->content_version == 1);
  auto r3 = store->upsert(7, meeting_json(100, "New title").dump(), "sync");
  BOOST_TEST(r3->changed);
  BOOST_TEST(!r3->created);
  BOOST_TEST(r3->content_version == 2);
  auto m = store->get(7, 100).value();
  BOOST_TEST(m.title == "New title");
  BOOST_TEST(m.recorded_by_email == "alice@example.com");
  BOOST_TEST(m.external_domains == "acme.test");
  BOOST_TEST(m.invitees_domains_type == "one_or_more_external");
  BOOST_TEST(m.invitee_count == 2);
  BOOST_TEST(m.mapped_version == 0);
  // Same recording id under another integration is another row.
  BOOST_TEST(store->upsert(8, meeting_json(100).dump(), "sync")->created);
  BOOST_TEST(store->count(7).value() == 1);
  BOOST_TEST(store->get(7, 999).code() == Code::kNotFound);
}

BOOST_FIXTURE_TEST_CASE(webhook_then_sync_is_one_version_and_fills_the_cache, Fixture) {
  auto w = store->upsert(7, with_content(meeting_json(200)).dump(), "webhook");
  BOOST_REQUIRE_MESSAGE(w.ok(), w.status());
  auto s = store->upsert(7, meeting_json(200).dump(), "sync");
  BOOST_TEST(!s->changed);
  BOOST_TEST(s->content_version == 1);
  auto t = store->cached_content(7, 200, ContentKind::kTranscript).value();
  BOOST_REQUIRE(t.has_value());
  BOOST_TEST(parse_transcript_items(*t).value().at(0).text == "Hello");
  BOOST_TEST(store->cached_content(7, 200, ContentKind::kSummary).value().has_value());
  BOOST_TEST(store->cached_content(7, 200, ContentKind::kActionItems).value().value() == "[]");
  BOOST_TEST(!store->cached_content(7, 200, ContentKind::kCrmMatches).value().has_value());
  // The richer webhook copy stays the stored raw JSON.
  BOOST_TEST(store->get(7, 200)->raw_json.find("\"transcript\"") != std::string::npos);
  BOOST_TEST(store->get(7, 200)->last_source == "sync");
}

// The same core content in a copy carrying strictly more include_* parts is the next version,
// mapped again, only when it brings what the mapping of the stored copy could not have had: a part
// no endpoint serves (action items), or a transcript or summary the mapping asked the API for and
// did not get (a summary not written yet when a sync mapped the meeting). A richer copy that brings
// only parts the mapping could fetch is stored but maps nothing. In a batch, a poorer copy does not
// map (nor mark mapped) a richer stored version that is still unmapped: that version is left to its
// own event, or to the next sync's pending pass, which maps the stored copy.
BOOST_FIXTURE_TEST_CASE(a_richer_copy_is_a_new_version_when_it_brings_what_the_mapping_could_not_have, Fixture) {
  auto with = [](json m, std::initializer_list<const char*> parts) {
    json full = with_content(m);
    for (const char* p : parts) m[p] = full[p];
    return m.dump();
  };
  CountingPipeline p;
  BOOST_REQUIRE(store->upsert(7, meeting_json(250).dump(), "sync").ok());  // an OAuth listing: no parts
  BOOST_REQUIRE(dispatcher->dispatch(integration, 250, p, "sync").ok());
  // The transcript and summary the mapping could have fetched: stored, not a new version.
  auto fetchable = store->upsert(7, with(meeting_json(250), {"transcript", "default_summary"}), "webhook").value();
  BOOST_TEST(fetchable.content_version == 1);
  BOOST_TEST(!fetchable.changed);
  BOOST_TEST(!fetchable.needs_mapping);
  BOOST_TEST(store->cached_content(7, 250, ContentKind::kSummary)->has_value());

  // Another meeting, whose mapping asked for the summary and did not get it.
  BOOST_REQUIRE(store->upsert(7, meeting_json(251).dump(), "sync").ok());
  BOOST_REQUIRE(dispatcher->dispatch(integration, 251, p, "sync").ok());
  BOOST_REQUIRE(store->note_missed(7, 251, ContentKind::kSummary).ok());
  BOOST_TEST(!store->cached_content(7, 251, ContentKind::kSummary)->has_value());  // a miss is no content
  auto transcript_only = store->upsert(7, with(meeting_json(251), {"transcript"}), "webhook").value();
  BOOST_TEST(transcript_only.content_version == 1);  // brings nothing the mapping missed
  BOOST_TEST(missed_rows(*db, 251) == 1);
  auto summary = store->upsert(7, with(meeting_json(251), {"transcript", "default_summary"}), "webhook").value();
  BOOST_TEST(missed_rows(*db, 251) == 0);  // answered by the copy that is now stored
  BOOST_TEST(summary.content_version == 2);
  BOOST_TEST(summary.changed);
  BOOST_TEST(summary.needs_mapping);
  BOOST_TEST(store->unmapped(7).value() == std::vector<int64_t>{251});
  BOOST_TEST(store->upsert(7, with(meeting_json(251), {"transcript", "default_summary"}), "webhook")->content_version == 2);

  // Action items come only in copies: a copy that brings them is a new version.
  auto items = store->upsert(7, with_content(meeting_json(250)).dump(), "webhook").value();
  BOOST_TEST(items.content_version == 2);
  BOOST_TEST(items.needs_mapping);
  BOOST_TEST(store->upsert(7, with_content(meeting_json(250)).dump(), "webhook")->content_version == 2);
  auto poorer = store->upsert(7, meeting_json(250).dump(), "sync").value();
  BOOST_TEST(poorer.content_version == 2);
  BOOST_TEST(!poorer.changed);

  // A batch with the poorer copy: stored (seen), not mapped, version 2 still unmapped.
  std::vector<BatchItem> batch(1);
  batch[0].integration = integration;
  batch[0].meeting = parse_meeting(meeting_json(250).dump()).value();
  batch[0].source = "sync";
  BatchLease lease = dispatcher->map_batch(batch, *store, p).value();
  BOOST_TEST(!batch[0].upsert.needs_mapping);
  BOOST_REQUIRE(dispatcher->record_batch(batch, *store, &lease).ok());
  BOOST_TEST(p.calls.size() == 2u);
  BOOST_TEST(store->get(7, 250)->mapped_version == 1);
  // The pending pass maps the stored (richer) copies: each new version, once.
  BOOST_TEST(dispatcher->dispatch_pending(integration, p, "sync")->mapped == 2);
  BOOST_TEST(p.calls.size() == 4u);
  for (int64_t id : {250, 251}) {
    auto m = store->get(7, id).value();
    BOOST_TEST(m.mapped_version == 2);
    BOOST_TEST(m.raw_json.find("\"default_summary\"") != std::string::npos);
  }
  BOOST_TEST(store->unmapped(7).value().empty());
}

BOOST_FIXTURE_TEST_CASE(dispatch_maps_each_version_once_and_records_failures, Fixture) {
  CountingPipeline p;
  BOOST_REQUIRE(store->upsert(7, meeting_json(300).dump(), "sync").ok());
  auto d1 = dispatcher->dispatch(integration, 300, p, "sync").value();
  BOOST_TEST(dispatch_outcome_name(d1.outcome) == std::string("mapped"));
  auto d2 = dispatcher->dispatch(integration, 300, p, "webhook").value();
  BOOST_TEST(dispatch_outcome_name(d2.outcome) == std::string("already_mapped"));
  BOOST_TEST(p.calls.size() == 1u);

  BOOST_REQUIRE(store->upsert(7, meeting_json(300, "v2").dump(), "sync").ok());
  p.fail = true;
  auto d3 = dispatcher->dispatch(integration, 300, p, "sync").value();
  BOOST_TEST(dispatch_outcome_name(d3.outcome) == std::string("failed"));
  BOOST_TEST(d3.error.code() == Code::kUnavailable);
  auto m = store->get(7, 300).value();
  BOOST_TEST(m.mapped_version == 1);
  BOOST_TEST(m.content_version == 2);
  BOOST_TEST(m.map_attempts == 1);
  BOOST_REQUIRE(m.map_error.has_value());
  BOOST_TEST(m.map_error->find("CRM is down") != std::string::npos);
  BOOST_TEST(store->unmapped(7).value() == std::vector<int64_t>{300});

  p.fail = false;
  auto sum = dispatcher->dispatch_pending(integration, p, "sync").value();
  BOOST_TEST(sum.mapped == 1);
  m = store->get(7, 300).value();
  BOOST_TEST(m.mapped_version == 2);
  BOOST_TEST(!m.map_error.has_value());
  BOOST_TEST(p.calls.size() == 3u);
  BOOST_TEST(p.calls.back().second == 2);
  BOOST_TEST(dispatcher->dispatch(integration, 999, p, "sync").code() == Code::kNotFound);
}

BOOST_FIXTURE_TEST_CASE(concurrent_dispatchers_on_separate_connections_map_once, Fixture) {
  SystemClock real;
  auto db2 = Db::open(db->path()).value();
  auto d_a = MeetingDispatcher::open(*db, real).value();
  auto d_b = MeetingDispatcher::open(*db2, real).value();
  CountingPipeline p;
  p.delay_ms = 5;
  for (int i = 1; i <= 20; ++i) BOOST_REQUIRE(store->upsert(7, meeting_json(1000 + i).dump(), "sync").ok());
  std::atomic<int> busy{0};
  auto worker = [&](MeetingDispatcher* d, const char* src) {
    for (int i = 1; i <= 20; ++i) {
      auto r = d->dispatch(integration, 1000 + i, p, src);
      if (r.ok() && r->outcome == DispatchOutcome::kBusy) ++busy;
    }
  };
  std::thread a(worker, d_a.get(), "sync"), b(worker, d_b.get(), "webhook");
  a.join();
  b.join();
  BOOST_TEST(p.calls.size() == 20u);
  std::set<int64_t> ids;
  for (auto& c : p.calls) ids.insert(c.first);
  BOOST_TEST(ids.size() == 20u);
  BOOST_TEST(store->unmapped(7).value().empty());
  BOOST_TEST_MESSAGE("busy answers: " << busy.load());
}

BOOST_AUTO_TEST_CASE(options_follow_the_config) {
  auto cfg = fb::parse_config(R"({"tokens": {"key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},
      "fathom": {"api_base": "http://127.0.0.1:9/external/v1", "oauth_include_content_on_list": true},
      "sync": {"backfill_days": 7, "overlap_s": 60, "fetch_transcripts": true, "rate_limit_per_minute": 30,
               "max_attempts": 3, "backoff_base_ms": 100, "interval_s": 600}})",
                              false, fb::ConfigRequirements{false});
  BOOST_REQUIRE_MESSAGE(cfg.ok(), cfg.status());
  auto co = FathomClientOptions::from_config(*cfg);
  BOOST_TEST(co.api_base == "http://127.0.0.1:9/external/v1");
  BOOST_TEST(co.oauth_include_content_on_list);
  BOOST_TEST(co.max_attempts == 3);
  BOOST_TEST(co.backoff_base_ms == 100);
  BOOST_TEST(RateLimitOptions::from_config(*cfg).limit == 30);
  auto so = SyncOptions::from_config(*cfg);
  BOOST_TEST(so.backfill_days == 7);
  BOOST_TEST(so.overlap_s == 60);
  BOOST_TEST(so.fetch_transcripts);
  BOOST_TEST(!so.fetch_summaries);
  auto sched = SchedulerOptions::from_config(*cfg);
  BOOST_TEST(sched.interval_s == 600);
  BOOST_TEST(sched.keepalive_interval_s == 600);
}

// Chaos finding (issue 16): a host killed while mapping left its meetings claimed for a fixed 600 s.
// The claim's lifetime is sync.mapping_claim_ttl_s; a claim whose holder stopped is taken over
// once it expires, and not before.
BOOST_FIXTURE_TEST_CASE(a_stalled_mappers_claim_is_taken_over_after_mapping_claim_ttl_s, Fixture) {
  auto cfg = fb::parse_config(R"({"tokens": {"key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},
      "sync": {"mapping_claim_ttl_s": 5}})",
                              false, fb::ConfigRequirements{false});
  BOOST_REQUIRE_MESSAGE(cfg.ok(), cfg.status());
  BOOST_TEST(fb::parse_config(R"({"tokens": {"key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},
      "sync": {"mapping_claim_ttl_s": 0}})",
                              false, fb::ConfigRequirements{false})
                 .status()
                 .message()
                 .find("sync.mapping_claim_ttl_s") != std::string::npos);
  DispatcherOptions options = DispatcherOptions::from_config(*cfg);
  BOOST_TEST(options.claim_ttl_s == 5);

  auto db2 = Db::open(db->path()).value();
  auto stalled = MeetingDispatcher::open(*db, clock, options).value();
  auto other = MeetingDispatcher::open(*db2, clock, options).value();
  BOOST_REQUIRE(store->upsert(7, meeting_json(400).dump(), "sync").ok());

  // The stalled holder's pipeline call is where the host "dies": while it holds the claim, the
  // other dispatcher (another process) finds the meeting busy until the claim expires.
  CountingPipeline taker;
  struct Stalling : MeetingPipeline {
    std::function<void()> during;
    Status on_meeting(const MeetingEvent&) override {
      during();
      return Status::Ok();
    }
  } stalling;
  std::vector<std::string> outcomes;
  stalling.during = [&] {
    outcomes.push_back(dispatch_outcome_name(other->dispatch(integration, 400, taker, "sync")->outcome));
    clock.advance_ms(4000);
    outcomes.push_back(dispatch_outcome_name(other->dispatch(integration, 400, taker, "sync")->outcome));
    clock.advance_ms(2000);
    outcomes.push_back(dispatch_outcome_name(other->dispatch(integration, 400, taker, "sync")->outcome));
  };
  BOOST_REQUIRE(stalled->dispatch(integration, 400, stalling, "sync").ok());
  BOOST_TEST(outcomes == (std::vector<std::string>{"busy", "busy", "mapped"}), boost::test_tools::per_element());
  BOOST_TEST(taker.calls.size() == 1u);
  BOOST_TEST(store->get(7, 400)->mapped_version == 1);
}

// Issue 11: record_batch stores a mapped meeting and marks it mapped with one statement (it was an
// upsert and then an UPDATE each), for a new meeting and for one already stored unmapped.
// One statement per item, reading nothing first: prepare_batch has just read the stored state
// (under the recording locks), so record_batch writes on that (guarded), also for a recording
// that comes twice in the batch (a richer copy of the same content, then a new version).
// The richer copy is the next version and is mapped again (its summary and transcript reach the CRM).
BOOST_FIXTURE_TEST_CASE(record_batch_stores_and_marks_a_mapped_meeting_in_one_statement, Fixture) {
  BOOST_REQUIRE(store->upsert(7, meeting_json(402).dump(), "sync").ok());  // stored, not mapped yet
  CountingPipeline p;
  std::vector<BatchItem> items;
  for (const json& m : {meeting_json(401), meeting_json(402), meeting_json(403), with_content(meeting_json(401)),
                        meeting_json(402, "New title")}) {
    BatchItem it;
    it.integration = integration;
    it.meeting = parse_meeting(m.dump()).value();
    it.source = "webhook";
    items.push_back(std::move(it));
  }
  BatchLease lease = dispatcher->map_batch(items, *store, p).value();
  BOOST_TEST(p.calls.size() == 5u);  // 401, 402 and 403 at v1, then 401 (richer) and 402 at v2
  const uint64_t runs = record_batch_statements(*this, items, lease);
  // PostgreSQL: the batch's meetings not stored yet (401, 403) are one statement together.
  BOOST_TEST(runs == (test::store_engine_is_postgres() ? 1 + 3 : items.size()));
  for (int64_t id : {401, 402, 403}) {
    auto m = store->get(7, id).value();
    BOOST_TEST(m.content_version == (id == 403 ? 1 : 2));
    BOOST_TEST(m.mapped_version == m.content_version);
    BOOST_TEST(m.mapped_at == clock.now_s());
  }
  BOOST_TEST(store->get(7, 401)->raw_json.find("\"transcript\"") != std::string::npos);  // the richer copy
  BOOST_TEST(store->get(7, 402)->title == "New title");
  BOOST_TEST(store->unmapped(7).value().empty());
}

// prepare_batch reads what is stored of a batch's meetings with one statement per integration of
// the batch (a round trip each on PostgreSQL), not one per meeting, and each item gets its own
// meeting's state: stored ones their versions, new ones none, a recording that comes twice what
// its first copy leaves.
BOOST_FIXTURE_TEST_CASE(prepare_batch_reads_a_batchs_meetings_with_one_statement_per_integration, Fixture) {
  BOOST_REQUIRE(store->upsert(7, meeting_json(411).dump(), "sync").ok());
  BOOST_REQUIRE(store->upsert(7, meeting_json(412).dump(), "sync").ok());
  BOOST_REQUIRE(store->upsert(7, meeting_json(412, "Renamed").dump(), "sync").ok());  // 412 at v2
  BOOST_REQUIRE(store->upsert(8, meeting_json(411).dump(), "sync").ok());             // another integration's 411
  IntegrationInfo other = integration;
  other.id = 8;
  std::vector<BatchItem> items;
  auto add = [&](const IntegrationInfo& info, const json& m) {
    BatchItem it;
    it.integration = info;
    it.meeting = parse_meeting(m.dump()).value();
    it.source = "webhook";
    items.push_back(std::move(it));
  };
  add(integration, meeting_json(411));
  add(integration, meeting_json(412, "Renamed"));
  add(integration, meeting_json(413));
  add(integration, meeting_json(413));
  add(integration, meeting_json(414));

  {
    const uint64_t before = stmt_runs_on_this_thread();
    auto lease = dispatcher->prepare_batch(items, *store);  // its recording locks go with this block
    const uint64_t runs = stmt_runs_on_this_thread() - before;
    BOOST_REQUIRE_MESSAGE(lease.ok(), lease.status());
    BOOST_TEST(runs == 1u);
  }
  BOOST_TEST(items[0].stored.found);
  BOOST_TEST(items[0].stored.content_version == 1);
  BOOST_TEST(items[1].stored.found);
  BOOST_TEST(items[1].stored.content_version == 2);
  BOOST_TEST(items[1].upsert.content_version == 2);  // the stored copy again: no new version
  BOOST_TEST(!items[2].stored.found);
  BOOST_TEST(items[2].upsert.needs_mapping);
  BOOST_TEST(items[3].stored.found);                  // what the first 413 of the batch leaves
  BOOST_TEST(!items[3].upsert.needs_mapping);         // mapped by the first
  BOOST_TEST(!items[4].stored.found);

  // A batch of two integrations: one statement each, and integration 8's 411 is its own.
  std::vector<BatchItem> mixed;
  items.swap(mixed);
  add(integration, meeting_json(413));
  add(other, meeting_json(411));
  add(other, meeting_json(415));
  const uint64_t again = stmt_runs_on_this_thread();
  auto lease2 = dispatcher->prepare_batch(items, *store);
  BOOST_REQUIRE_MESSAGE(lease2.ok(), lease2.status());
  BOOST_TEST(stmt_runs_on_this_thread() - again == 2u);
  BOOST_TEST(!items[0].stored.found);
  BOOST_TEST(items[1].stored.found);
  BOOST_TEST(items[1].stored.content_version == 1);
  BOOST_TEST(!items[2].stored.found);
}

// A batch's meetings not stored yet are stored as upsert() stores each (on PostgreSQL by one
// statement for the batch: MeetingStore::insert_new), mapped or with the mapping's error, by
// pointer or with their JSON: every column the same as the same meetings upserted one by one.
BOOST_FIXTURE_TEST_CASE(record_batch_stores_new_meetings_as_upsert_stores_each, Fixture) {
  std::vector<json> meetings = {meeting_json(601), meeting_json(602, "Second"), with_content(meeting_json(603)),
                                meeting_json(604)};
  meetings[1].erase("meeting_title");
  meetings[1]["recorded_by"].erase("team");
  meetings[3]["title"] = "Fails";
  std::vector<BatchItem> items;
  for (size_t i = 0; i < meetings.size(); ++i) {
    BatchItem it;
    it.integration = integration;
    it.meeting = parse_meeting(meetings[i].dump()).value();
    it.source = i == 2 ? "sync" : "webhook";
    it.content_event_id = i == 0 ? 9001 : 0;  // 601 by pointer: no JSON in the row
    items.push_back(std::move(it));
  }
  BatchLease lease = dispatcher->prepare_batch(items, *store).value();
  for (BatchItem& it : items) {
    it.mapped = it.meeting.recording_id != 604;
    if (!it.mapped) it.map_error = Status::Unavailable("CRM is down");
  }
  const uint64_t runs = record_batch_statements(*this, items, lease);
  // The four in one statement on PostgreSQL, and 604's error; one statement each on SQLite.
  BOOST_TEST(runs == (test::store_engine_is_postgres() ? 1u : 4u) + 1u);

  // The same meetings upserted one by one, for integration 8.
  for (size_t i = 0; i < items.size(); ++i) {
    const BatchItem& it = items[i];
    BOOST_REQUIRE(store->upsert(8, it.meeting, it.source, it.content_event_id,
                                it.mapped ? std::optional<int64_t>(clock.now_s()) : std::nullopt)
                      .ok());
  }
  BOOST_REQUIRE(db->transaction([&] {
                    Stmt& u = db->prepare(
                        "UPDATE sync_meetings SET map_error='unavailable: CRM is down', map_attempts=map_attempts+1 "
                        "WHERE integration_id=8 AND recording_id=604");
                    return u.run();
                  }).ok());
  auto row = [&](int64_t integration_id, int64_t recording_id) {
    std::vector<std::string> cols;
    BOOST_REQUIRE(db->with([&]() -> Status {
                      // Every column as text, so that one loop reads them all.
                      std::string select;
                      for (const char* c : {"title", "meeting_title", "url", "share_url", "created_at",
                                            "scheduled_start", "scheduled_end", "recording_start", "recording_end",
                                            "recorded_by_email", "recorded_by_name", "recorded_by_team",
                                            "invitees_domains_type", "transcript_language", "invitee_count",
                                            "external_domains", "raw_json", "content_hash", "content_version",
                                            "mapped_version", "mapped_at", "map_attempts", "first_source",
                                            "last_source", "first_seen_at", "last_seen_at", "updated_at",
                                            "content_event_id", "content_parts", "claim_token", "claim_version",
                                            "claim_until"}) {
                        select += std::string(select.empty() ? "" : ", ") + "CAST(" + c + " AS TEXT)";
                      }
                      Stmt& q = db->prepare("SELECT " + select +
                                            " FROM sync_meetings WHERE integration_id=? AND recording_id=?");
                      q.bind_all(integration_id, recording_id);
                      return each_row(q, [&](const Stmt& r) {
                        for (int c = 0; c < 32; ++c) cols.push_back(r.is_null(c) ? "<null>" : r.text(c));
                      });
                    }).ok());
    return cols;
  };
  for (int64_t id : {601, 602, 603, 604}) {
    const auto batch = row(7, id);
    BOOST_REQUIRE_EQUAL(batch.size(), 32u);
    BOOST_TEST(batch == row(8, id), boost::test_tools::per_element());
  }
  BOOST_TEST(row(7, 601)[27] == "9001");  // by pointer: no JSON in the row
  BOOST_TEST(row(7, 601)[16] == "");
  BOOST_TEST(row(7, 602)[1] == "<null>");
  BOOST_TEST(row(7, 602)[11] == "<null>");
  BOOST_TEST(store->get(7, 603)->raw_json.find("\"transcript\"") != std::string::npos);
  BOOST_TEST(store->get(7, 603)->mapped_version == 1);
  BOOST_TEST(store->get(7, 604)->mapped_version == 0);
  BOOST_TEST(store->get(7, 604)->map_error.value_or("").find("CRM is down") != std::string::npos);
  BOOST_TEST(store->unmapped(7).value() == (std::vector<int64_t>{604}));
}

// A meeting's text with a NUL (JSON's \u0000) or bytes that are not UTF-8 is stored on both
// engines, by both writers: its query columns hold U+FFFD for them (PostgreSQL text can hold
// neither), and its content keeps every byte. Before, PostgreSQL refused such a meeting (its event
// retried, then was a dead letter) where SQLite stored it.
BOOST_FIXTURE_TEST_CASE(text_postgresql_cannot_hold_is_stored_on_both_engines_its_content_whole, Fixture) {
  const std::string nul("Nul\0inside", 10);
  std::vector<Meeting> meetings;
  for (int64_t id : {801, 802, 803, 804, 805}) {
    meetings.push_back(parse_meeting(meeting_json(id, id == 802 || id == 805 ? nul : "Clean").dump()).value());
  }
  meetings[2].title = "Not \xff UTF-8";  // no JSON parses to this: a caller's own Meeting
  BOOST_REQUIRE(meetings[1].title == nul);  // the parser keeps the NUL: the mapping sees it
  std::vector<MeetingStore::NewMeeting> rows;
  for (size_t i = 0; i < 4; ++i) rows.push_back({7, &meetings[i], "webhook", 0, std::nullopt});
  std::vector<bool> inserted;
  BOOST_REQUIRE(db->transaction([&]() -> Status {
                    auto r = store->insert_new(rows);
                    if (!r.ok()) return r.status();
                    inserted = *r;
                    return Status::Ok();
                  }).ok());
  const bool pg = test::store_engine_is_postgres();
  BOOST_TEST(inserted == std::vector<bool>(4, pg), boost::test_tools::per_element());
  for (size_t i = 0; i < meetings.size(); ++i) {
    if (i < inserted.size() && inserted[i]) continue;
    Status st = store->upsert(7, meetings[i], "webhook", 0, std::nullopt).status();
    BOOST_TEST(st.ok(), meetings[i].recording_id << ": " << st.to_string());
  }
  const std::map<int64_t, std::string> titles = {{801, "Clean"},
                                                 {802, "Nul\xEF\xBF\xBDinside"},
                                                 {803, "Not \xEF\xBF\xBD UTF-8"},
                                                 {804, "Clean"},
                                                 {805, "Nul\xEF\xBF\xBDinside"}};
  for (const auto& [id, title] : titles) {
    auto got = store->get(7, id);
    BOOST_REQUIRE_MESSAGE(got.ok(), id << ": " << got.status().to_string());
    BOOST_TEST(got->title == title, "recording " << id);
  }
  for (int64_t id : {802, 805}) {  // the content is whole: the NUL is there for the mapping
    auto raw = store->content_json(7, id);
    BOOST_REQUIRE(raw.ok());
    BOOST_TEST(raw->find("Nul\\u0000inside") != std::string::npos);
    BOOST_TEST(parse_meeting(*raw).value().title == nul);
  }
}

// record_batch writes on the state prepare_batch read; another process may have written the
// meeting in between (the recording locks are per process). Then it stores what it would have
// stored had it read the row at commit time (the mapped content as a new version, and never a
// poorer copy over a richer one), but records nothing mapped: the mapping ran under the keys of
// the version prepare_batch predicted, which the other process's content may hold or have used
// (the CRM would answer its calls from the first ones). The row is left unmapped at a version
// above those keys, and the next sync's pending pass maps what is stored under keys of its own.
BOOST_FIXTURE_TEST_CASE(record_batch_stores_right_when_another_connection_wrote_the_meeting_meanwhile, Fixture) {
  BOOST_REQUIRE(store->upsert(7, meeting_json(501).dump(), "sync").ok());
  CountingPipeline p;
  std::vector<BatchItem> items;
  for (int64_t id : {501, 502}) {
    BatchItem it;
    it.integration = integration;
    it.meeting = parse_meeting(meeting_json(id).dump()).value();
    it.source = "webhook";
    items.push_back(std::move(it));
  }
  BatchLease lease = dispatcher->map_batch(items, *store, p).value();
  BOOST_TEST(p.calls.size() == 2u);
  {
    auto db2 = Db::open(db->path()).value();
    auto store2 = MeetingStore::open(*db2, clock).value();
    BOOST_REQUIRE(store2->upsert(7, meeting_json(501, "Changed elsewhere").dump(), "sync").ok());  // v2, unmapped
    BOOST_REQUIRE(store2->upsert(7, with_content(meeting_json(502)).dump(), "webhook").ok());  // richer, v1
  }
  const uint64_t runs = record_batch_statements(*this, items, lease);
  // Each: the conditional write (no row), a read, the write; 502 also lifts its version above v1.
  // PostgreSQL tries 502 first with the batch's new meetings (one statement, which leaves it alone).
  BOOST_TEST(runs == 3 * items.size() + 1 + (test::store_engine_is_postgres() ? 1 : 0));
  auto m501 = store->get(7, 501).value();
  BOOST_TEST(m501.title == "Acme call");  // what was mapped, stored as the newest version
  BOOST_TEST(m501.content_version == 3);
  BOOST_TEST(m501.mapped_version == 0);
  auto m502 = store->get(7, 502).value();
  BOOST_TEST(m502.content_version == 2);  // the keys of v1 named the poorer copy
  BOOST_TEST(m502.mapped_version == 0);
  BOOST_TEST(m502.raw_json.find("\"transcript\"") != std::string::npos);  // the richer copy is kept
  BOOST_TEST(store->unmapped(7).value() == (std::vector<int64_t>{501, 502}));
  // The pending pass maps each stored copy once, under the keys of its new version.
  BOOST_TEST(dispatcher->dispatch_pending(integration, p, "sync")->mapped == 2);
  BOOST_TEST((p.calls[2] == std::pair<int64_t, int64_t>{501, 3}));
  BOOST_TEST((p.calls[3] == std::pair<int64_t, int64_t>{502, 2}));
  BOOST_TEST(store->unmapped(7).value().empty());

  // When the other process wrote this very copy at the predicted version, the mapping is recorded.
  std::vector<BatchItem> again(1);
  again[0].integration = integration;
  again[0].meeting = parse_meeting(meeting_json(503).dump()).value();
  again[0].source = "webhook";
  BatchLease lease2 = dispatcher->map_batch(again, *store, p).value();
  {
    auto db2 = Db::open(db->path()).value();
    auto store2 = MeetingStore::open(*db2, clock).value();
    BOOST_REQUIRE(store2->upsert(7, meeting_json(503).dump(), "sync").ok());  // v1, the same copy
  }
  record_batch_statements(*this, again, lease2);
  BOOST_TEST(store->get(7, 503)->content_version == 1);
  BOOST_TEST(store->get(7, 503)->mapped_version == 1);
}
