// FathomClient against fathom-sim over real HTTP: paging, filters, rate limits, retries, auth.
#include <boost/test/unit_test.hpp>

#include <set>
#include <thread>

#include "core/clock.h"
#include "fathom/fathom_client.h"
#include "fathom/sim_credentials.h"
#include "http/http_client.h"
#include "support/sim_process.h"

using namespace fb;
using namespace fb::detail;
using nlohmann::json;

namespace {

constexpr int64_t kAlice = 1;

struct SimClient {
  explicit SimClient(std::vector<std::string> args = {"--meetings", "35"}, FathomClientOptions o = {})
      : sim(std::move(args)), limiters(system_clock()) {
    creds.set(kAlice, sim.api_key("alice@example.com"));
    o.api_base = sim.api_base();
    o.backoff_base_ms = 10;
    o.backoff_max_ms = 50;
    client = std::make_unique<FathomClient>(transport, creds, limiters, system_clock(), o);
  }
  int64_t calls(const std::string& route) {
    auto c = sim.counters();
    return c["api_calls"].value(route, int64_t{0});
  }
  // What the sim says alice can see, optionally only created after `after`.
  std::set<int64_t> visible_ids(int64_t after = 0) {
    std::set<int64_t> out;
    json all = sim.admin("GET", "/_sim/meetings?visible_to=alice@example.com");
    for (auto& m : all["items"]) {
      int64_t t = 0;
      parse_iso8601(m["created_at"].get<std::string>(), &t);
      if (t > after) out.insert(m["recording_id"].get<int64_t>());
    }
    return out;
  }

  test::SimProcess sim;
  HttplibTransport transport;
  test::ApiKeyCredentials creds;
  RateLimiterRegistry limiters;
  std::unique_ptr<FathomClient> client;
};

std::set<int64_t> page_all(FathomClient& c, const MeetingQuery& q, int* pages) {
  std::set<int64_t> ids;
  *pages = 0;
  Status s = c.for_each_meeting_page(kAlice, q, "", [&](const Page<Meeting>& p) {
    ++*pages;
    for (const auto& m : p.items) {
      BOOST_TEST(ids.insert(m.recording_id).second, "duplicate " << m.recording_id);
    }
    return Status::Ok();
  });
  BOOST_REQUIRE_MESSAGE(s.ok(), s);
  return ids;
}

}  // namespace

BOOST_AUTO_TEST_CASE(pages_to_the_end_whatever_the_last_cursor_looks_like) {
  SimClient t;
  auto expected = t.visible_ids();
  BOOST_REQUIRE_GT(expected.size(), 10u);
  for (const char* style : {"null", "empty", "missing"}) {
    t.sim.config({{"next_cursor_style", style}});
    t.sim.admin("POST", "/_sim/counters/reset");
    int pages = 0;
    auto ids = page_all(*t.client, {}, &pages);
    BOOST_TEST(ids == expected, "style " << style);
    int64_t want_pages = static_cast<int64_t>((expected.size() + 9) / 10);
    BOOST_TEST(pages == want_pages);
    BOOST_TEST(t.calls("GET /meetings") == want_pages, "style " << style);
  }
}

BOOST_AUTO_TEST_CASE(filters_are_resent_with_every_cursor) {
  SimClient t({"--meetings", "60"});
  auto all = t.visible_ids();
  // A created_after bound that keeps more than two pages but not everything.
  std::vector<int64_t> times;
  json listing = t.sim.admin("GET", "/_sim/meetings?visible_to=alice@example.com");
  for (auto& m : listing["items"]) {
    int64_t s = 0;
    parse_iso8601(m["created_at"].get<std::string>(), &s);
    times.push_back(s);
  }
  std::sort(times.begin(), times.end());
  int64_t after = times[times.size() / 4];
  auto expected = t.visible_ids(after);
  BOOST_REQUIRE_GT(expected.size(), 20u);
  BOOST_REQUIRE_LT(expected.size(), all.size());
  MeetingQuery q;
  q.created_after = after;
  q.recorded_by = {"alice@example.com", "bob@example.com"};
  int pages = 0;
  auto ids = page_all(*t.client, q, &pages);
  BOOST_TEST(ids == expected);
  BOOST_TEST(pages == static_cast<int>((expected.size() + 9) / 10));
}

BOOST_AUTO_TEST_CASE(typed_results_keep_raw_json) {
  SimClient t;
  auto page = t.client->list_meetings(kAlice, {}, "");
  BOOST_REQUIRE_MESSAGE(page.ok(), page.status());
  BOOST_REQUIRE(!page->items.empty());
  BOOST_TEST(page->limit == 10);
  const Meeting& m = page->items.front();
  BOOST_TEST(m.recording_id > 0);
  BOOST_TEST(m.created_at_s > 0);
  BOOST_TEST(!m.recorded_by.email.empty());
  BOOST_TEST(!m.has_transcript);  // not asked for
  BOOST_TEST(m.raw_json.find("\"recording_id\":" + std::to_string(m.recording_id)) != std::string::npos);

  std::string raw;
  auto tr = t.client->get_transcript(kAlice, m.recording_id, &raw);
  BOOST_REQUIRE_MESSAGE(tr.ok(), tr.status());
  BOOST_TEST(!tr->empty());
  BOOST_TEST(raw.front() == '[');
  BOOST_TEST(parse_transcript_items(raw).value().size() == tr->size());
  auto sum = t.client->get_summary(kAlice, m.recording_id, &raw);
  BOOST_REQUIRE_MESSAGE(sum.ok(), sum.status());
  BOOST_TEST(raw.front() == '{');
  BOOST_TEST(t.client->get_transcript(kAlice, 1, nullptr).code() == Code::kNotFound);

  auto teams = t.client->list_teams(kAlice);
  BOOST_REQUIRE_MESSAGE(teams.ok(), teams.status());
  BOOST_TEST(!teams->items.empty());
  auto members = t.client->list_team_members(kAlice, "Sales");
  BOOST_REQUIRE_MESSAGE(members.ok(), members.status());
  std::set<std::string> emails;
  for (auto& mem : members->items) emails.insert(mem.email);
  BOOST_TEST(emails.count("alice@example.com") == 1u);

  MeetingQuery with_content;
  with_content.include_transcript = with_content.include_summary = with_content.include_action_items = true;
  auto rich = t.client->list_meetings(kAlice, with_content, "");
  BOOST_REQUIRE(rich.ok());
  BOOST_TEST(rich->items.front().has_transcript);  // API keys may ask for content on the list
  BOOST_TEST(rich->items.front().core_hash == m.core_hash);
}

BOOST_AUTO_TEST_CASE(webhooks_are_created_and_deleted) {
  SimClient t;
  WebhookSpec spec{"http://127.0.0.1:9/hooks", {"my_recordings"}, true, true, false, false};
  auto w = t.client->create_webhook(kAlice, spec);
  BOOST_REQUIRE_MESSAGE(w.ok(), w.status());
  BOOST_TEST(!w->id.empty());
  BOOST_TEST(w->url == spec.destination_url);
  BOOST_TEST(w->secret.reveal().rfind("whsec_", 0) == 0u);
  BOOST_TEST(w->include_transcript);
  BOOST_TEST(w->triggered_for == std::vector<std::string>{"my_recordings"});
  bool listed = false;
  json hooks = t.sim.admin("GET", "/_sim/webhooks");
  for (auto& r : hooks) listed = listed || r.value("id", "") == w->id;
  BOOST_TEST(listed);
  BOOST_TEST(t.client->delete_webhook(kAlice, w->id).ok());
  BOOST_TEST(t.client->delete_webhook(kAlice, w->id).code() == Code::kNotFound);
  spec.include_transcript = spec.include_summary = false;
  BOOST_TEST(t.client->create_webhook(kAlice, spec).code() == Code::kInvalidArgument);
}

BOOST_AUTO_TEST_CASE(a_429_is_waited_out_not_retried_into) {
  SimClient t({"--meetings", "5", "--rate-limit", "3", "--rate-window", "2"});
  for (bool retry_after : {true, false}) {
    t.sim.config({{"retry_after", retry_after}});
    t.sim.admin("POST", "/_sim/rate_limits/reset");
    t.sim.admin("POST", "/_sim/counters/reset");
    // Another process spends alice's whole window, so our limiter cannot know.
    for (int i = 0; i < 3; ++i) {
      auto r = test::http_get(t.sim.api_base() + "/teams", {{"X-Api-Key", t.sim.api_key("alice@example.com")}});
      BOOST_REQUIRE_EQUAL(r.status, 200);
    }
    RateLimiterRegistry fresh(system_clock());  // no history: the first call hits the 429
    FathomClientOptions o;
    o.api_base = t.sim.api_base();
    FathomClient c(t.transport, t.creds, fresh, system_clock(), o);
    auto page = c.list_meetings(kAlice, {}, "");
    BOOST_REQUIRE_MESSAGE(page.ok(), page.status());
    auto counters = t.sim.counters();
    // Exactly one 429: after it, nothing was sent until the window had passed.
    BOOST_TEST(counters["rate_limited"].get<int>() == 1, "retry_after=" << retry_after);
    BOOST_TEST(counters["api_calls"]["GET /meetings"].get<int>() == 2);
    BOOST_TEST(fresh.for_account(kAlice).snapshot().rate_limited == 1);
    BOOST_TEST(fresh.for_account(kAlice).snapshot().waits == 1);
  }
}

BOOST_AUTO_TEST_CASE(the_limiter_keeps_a_burst_inside_the_servers_budget) {
  SimClient t({"--meetings", "5", "--rate-limit", "4", "--rate-window", "1"});
  for (int i = 0; i < 12; ++i) BOOST_REQUIRE(t.client->list_teams(kAlice).ok());
  auto c = t.sim.counters();
  BOOST_TEST(c["rate_limited"].get<int>() == 0);  // headers taught it the budget before any 429
  BOOST_TEST(c["api_calls"]["GET /teams"].get<int>() == 12);
}

BOOST_AUTO_TEST_CASE(server_errors_are_retried_with_backoff_and_bounded) {
  FathomClientOptions o;
  o.max_attempts = 3;
  SimClient t({"--meetings", "5"}, o);
  t.sim.admin("POST", "/_sim/faults", {{"status", 503}, {"count", 2}, {"path_prefix", "/external/v1/teams"}});
  auto ok = t.client->list_teams(kAlice);
  BOOST_REQUIRE_MESSAGE(ok.ok(), ok.status());
  BOOST_TEST(t.calls("GET /teams") == 3);

  t.sim.admin("POST", "/_sim/counters/reset");
  t.sim.admin("POST", "/_sim/faults", {{"status", 500}, {"count", 10}, {"path_prefix", "/external/v1/teams"}});
  auto bad = t.client->list_teams(kAlice);
  BOOST_TEST(bad.code() == Code::kUnavailable);
  BOOST_TEST(bad.status().message().find("HTTP 500") != std::string::npos);
  BOOST_TEST(bad.status().message().find("after 3 attempts") != std::string::npos);
  BOOST_TEST(t.calls("GET /teams") == 3);
  t.sim.admin("DELETE", "/_sim/faults");
}

BOOST_AUTO_TEST_CASE(client_errors_are_reported_with_the_body_and_not_retried) {
  SimClient t({"--meetings", "5"});
  auto r = t.client->list_meetings(kAlice, {}, "not-a-cursor");
  BOOST_TEST(r.code() == Code::kInvalidArgument);
  BOOST_TEST_MESSAGE("400 reads: " << r.status());
  BOOST_TEST(r.status().message().find("HTTP 400") != std::string::npos);
  BOOST_TEST(r.status().message().find("cursor") != std::string::npos);  // from the sim's body
  BOOST_TEST(r.status().message().find(t.sim.api_key("alice@example.com")) == std::string::npos);
  BOOST_TEST(t.calls("GET /meetings") == 1);

  MeetingQuery q;
  q.calendar_invitees_domains_type = "bogus";
  BOOST_TEST(t.client->list_meetings(kAlice, q, "").code() == Code::kInvalidArgument);
}

BOOST_AUTO_TEST_CASE(a_401_refreshes_once_then_gives_up) {
  SimClient t({"--meetings", "5"});
  t.creds.set(kAlice, "fk_wrong");
  t.creds.set_replacement(kAlice, t.sim.api_key("alice@example.com"));
  auto ok = t.client->list_teams(kAlice);
  BOOST_REQUIRE_MESSAGE(ok.ok(), ok.status());
  BOOST_TEST(t.creds.refreshes.load() == 1);

  t.creds.set(kAlice, "fk_wrong_again");
  auto bad = t.client->list_teams(kAlice);
  BOOST_TEST(bad.code() == Code::kUnauthenticated);
  BOOST_TEST(t.creds.refreshes.load() == 2);
  BOOST_TEST(bad.status().message().find("fk_wrong_again") == std::string::npos);

  t.creds.set_reconnect_required(kAlice, true);
  BOOST_TEST(t.client->list_teams(kAlice).code() == Code::kReconnectRequired);
}

BOOST_AUTO_TEST_CASE(oauth_callers_never_ask_the_list_for_content) {
  test::SimProcess sim({"--meetings", "5", "--oauth-content", "400"});
  test::SimOAuthCredentials oauth(sim, "alice@example.com");
  HttplibTransport transport;
  RateLimiterRegistry limiters(system_clock());
  FathomClientOptions o;
  o.api_base = sim.api_base();
  FathomClient c(transport, oauth, limiters, system_clock(), o);
  MeetingQuery q;
  q.include_transcript = q.include_summary = true;
  auto page = c.list_meetings(kAlice, q, "");
  BOOST_REQUIRE_MESSAGE(page.ok(), page.status());  // the sim would answer 400 to the flags
  BOOST_TEST(!page->items.front().has_transcript);

  // An expired access token: one real refresh_token grant, then the call goes through.
  sim.admin("POST", "/_sim/tokens/expire", {{"user", "alice@example.com"}});
  auto again = c.list_teams(kAlice);
  BOOST_REQUIRE_MESSAGE(again.ok(), again.status());
  BOOST_TEST(oauth.refreshes.load() == 1);
  BOOST_TEST(sim.counters()["token_requests"]["refresh_token"].get<int>() == 1);

  FathomClientOptions allow = o;
  allow.oauth_include_content_on_list = true;
  FathomClient c2(transport, oauth, limiters, system_clock(), allow);
  BOOST_TEST(c2.list_meetings(kAlice, q, "").code() == Code::kInvalidArgument);
}

BOOST_AUTO_TEST_CASE(call_scopes_count_calls_and_cancel_waits) {
  SimClient t({"--meetings", "5", "--rate-limit", "2", "--rate-window", "30"});
  CallScope outer;
  {
    CallScope inner;
    BOOST_REQUIRE(t.client->list_teams(kAlice).ok());
    BOOST_REQUIRE(t.client->list_teams(kAlice).ok());
    BOOST_TEST(inner.calls() == 2);
  }
  BOOST_TEST(outer.calls() == 2);
  std::atomic<bool> cancel{false};
  std::thread stopper([&] {
    // The third call must wait ~30 s for the window; cancel it once it is waiting.
    auto& lim = t.limiters.for_account(kAlice);
    for (int i = 0; i < 500 && lim.snapshot().waits == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    cancel = true;
  });
  CallScope scoped(&cancel);
  auto r = t.client->list_teams(kAlice);
  stopper.join();
  BOOST_TEST(r.code() == Code::kCancelled);
  BOOST_TEST(scoped.calls() == 0);
  BOOST_TEST(t.sim.counters()["rate_limited"].get<int>() == 0);
}
