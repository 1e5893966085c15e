// REST behaviour of fathom-sim (fathom-api.md 2-4 and 7 items 7-9, 11-15, 19), over real HTTP.
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <regex>

#include "crypto/encoding.h"
#include "sim/sim_test_util.h"
#include "support/webhook_receiver.h"

using namespace fb::simtest;
using fb::test::http_post_json;
using fb::test::query_string;
using nlohmann::json;

namespace {

const std::regex kIso(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$)");
const std::regex kIsoMicros(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$)");
const std::regex kHms(R"(^\d{2}:\d{2}:\d{2}$)");

bool is_iso(const json& v) { return v.is_string() && std::regex_match(v.get<std::string>(), kIso); }

HttpReply api_delete(const SimProcess& sim, const std::string& path, const HeaderMap& auth) {
  fb::test::HttpCall call;
  call.method = "DELETE";
  call.url = sim.api_base() + path;
  call.headers = auth;
  return fb::test::http_request(call);
}

json good_webhook(const std::string& url) {
  return {{"destination_url", url}, {"triggered_for", {"my_recordings"}}, {"include_summary", true}};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(api)

BOOST_AUTO_TEST_CASE(meeting_schema_without_and_with_includes) {
  SimProcess sim({"--meetings", "40", "--seed", "8"});
  auto auth = key_auth(sim, "alice@example.com");
  json plain = api_get(sim, "/meetings", auth).json();
  BOOST_REQUIRE(!plain["items"].empty());
  for (const auto& m : plain["items"]) {
    for (const char* k : {"transcript", "default_summary", "action_items", "crm_matches"}) BOOST_TEST(!m.contains(k), k);
    for (const auto& i : m["calendar_invitees"]) BOOST_TEST(!i.contains("matched_speaker_display_name"));
  }

  json full = api_get(sim, "/meetings?" + query_string({{"include_transcript", "true"}, {"include_summary", "true"},
                                                         {"include_action_items", "true"}, {"include_crm_matches", "true"}}),
                      auth)
                  .json();
  BOOST_TEST(full["limit"] == 10);
  bool saw_external = false, saw_internal = false, saw_action = false, saw_unmatched_speaker = false;
  for (const auto& m : full["items"]) {
    BOOST_TEST(m["title"].is_string());
    BOOST_TEST((m["meeting_title"].is_string() || m["meeting_title"].is_null()));
    BOOST_TEST(m["recording_id"].is_number_integer());
    std::string id = std::to_string(m["recording_id"].get<int64_t>());
    BOOST_TEST(m["url"] == "https://fathom.video/calls/" + id);
    BOOST_TEST(m["share_url"].get<std::string>().rfind("https://fathom.video/share/", 0) == 0);
    for (const char* k : {"created_at", "scheduled_start_time", "scheduled_end_time", "recording_start_time",
                          "recording_end_time"}) {
      BOOST_TEST(is_iso(m[k]), k);
    }
    BOOST_TEST(m["recording_start_time"].get<std::string>() < m["recording_end_time"].get<std::string>());
    BOOST_TEST(m["recording_end_time"].get<std::string>() < m["created_at"].get<std::string>());
    BOOST_TEST(m["transcript_language"].is_string());
    const auto& rb = m["recorded_by"];
    BOOST_TEST(rb.size() == 4u);
    BOOST_TEST(rb["email_domain"] == "example.com");
    BOOST_TEST(rb["team"] == (rb["email"] == "carol@example.com" ? "Engineering" : "Sales"));
    bool any_external = false, recorder_invited = false;
    for (const auto& i : m["calendar_invitees"]) {
      std::string email = i["email"];
      BOOST_TEST(i["email_domain"] == email.substr(email.find('@') + 1));
      BOOST_TEST(i["is_external"] == (i["email_domain"] != "example.com"));
      any_external |= i["is_external"].get<bool>();
      recorder_invited |= i["email"] == rb["email"];
      BOOST_TEST(i.contains("matched_speaker_display_name"));
    }
    BOOST_TEST(recorder_invited);
    BOOST_TEST(m["calendar_invitees_domains_type"] == (any_external ? "one_or_more_external" : "only_internal"));
    saw_external |= any_external;
    saw_internal |= !any_external;
    BOOST_TEST(!m["transcript"].empty());
    for (const auto& t : m["transcript"]) {
      BOOST_TEST(std::regex_match(t["timestamp"].get<std::string>(), kHms));
      BOOST_TEST(t["speaker"]["display_name"].is_string());
      BOOST_TEST(!t["text"].get<std::string>().empty());
      const auto& who = t["speaker"]["matched_calendar_invitee_email"];
      if (who.is_null()) {
        saw_unmatched_speaker = true;
        continue;
      }
      bool found = false;
      for (const auto& i : m["calendar_invitees"]) found |= i["email"] == who && i["matched_speaker_display_name"] == t["speaker"]["display_name"];
      BOOST_TEST(found);
    }
    BOOST_TEST(m["default_summary"]["template_name"] == "general");
    BOOST_TEST(m["default_summary"]["markdown_formatted"].get<std::string>().find("## ") == 0);
    for (const auto& a : m["action_items"]) {
      saw_action = true;
      BOOST_TEST(a["description"].is_string());
      BOOST_TEST(a["user_generated"].is_boolean());
      BOOST_TEST(a["completed"].is_boolean());
      BOOST_TEST(std::regex_match(a["recording_timestamp"].get<std::string>(), kHms));
      BOOST_TEST(a["recording_playback_url"].get<std::string>().rfind(m["url"].get<std::string>() + "#t=", 0) == 0);
      BOOST_TEST(a["assignee"].contains("name"));
      BOOST_TEST(a["assignee"].contains("email"));
      BOOST_TEST(a["assignee"].contains("team"));
    }
    const auto& crm = m["crm_matches"];
    BOOST_TEST(crm["contacts"].is_array());
    BOOST_TEST(crm["companies"].is_array());
    BOOST_TEST(crm["deals"].is_array());
    BOOST_TEST(crm.contains("error"));
  }
  BOOST_TEST(saw_external);
  BOOST_TEST(saw_internal);
  BOOST_TEST(saw_action);
  BOOST_TEST(saw_unmatched_speaker);
}

BOOST_AUTO_TEST_CASE(generator_is_deterministic_per_seed) {
  SimProcess a({"--meetings", "15", "--seed", "77", "--anchor", "2025-03-01T17:00:00Z"});
  SimProcess b({"--meetings", "15", "--seed", "77", "--anchor", "1740848400"});
  SimProcess c({"--meetings", "15", "--seed", "78", "--anchor", "2025-03-01T17:00:00Z"});
  Fields all = {{"include_action_items", "true"}, {"include_transcript", "true"}, {"include_summary", "true"}};
  std::string pa = api_get(a, "/meetings?" + query_string(all), key_auth(a, "bob@example.com")).body;
  std::string pb = api_get(b, "/meetings?" + query_string(all), key_auth(b, "bob@example.com")).body;
  std::string pc = api_get(c, "/meetings?" + query_string(all), key_auth(c, "bob@example.com")).body;
  BOOST_TEST(pa == pb);
  BOOST_TEST(pa != pc);
  BOOST_TEST(json::parse(pa)["items"][0]["created_at"] == "2025-03-01T17:00:00Z");
}

BOOST_AUTO_TEST_CASE(oauth_callers_and_transcript_or_summary_flags) {
  SimProcess sim({"--meetings", "20"});
  std::string token = login(sim)["access_token"];
  Fields q = {{"include_transcript", "true"}, {"include_summary", "true"}, {"include_action_items", "true"}};
  HttpReply omit = api_get(sim, "/meetings?" + query_string(q), bearer(token));
  BOOST_REQUIRE_EQUAL(omit.status, 200);
  json omitted = omit.json();
  for (const auto& m : omitted["items"]) {
    BOOST_TEST(!m.contains("transcript"));
    BOOST_TEST(!m.contains("default_summary"));
    BOOST_TEST(m.contains("action_items"));  // still allowed
  }
  sim.config({{"oauth_content", "400"}});
  HttpReply refused = api_get(sim, "/meetings?" + query_string(q), bearer(token));
  BOOST_TEST(refused.status == 400);
  BOOST_TEST(refused.json()["message"].get<std::string>().find("OAuth") != std::string::npos);
  BOOST_TEST(api_get(sim, "/meetings?include_action_items=true", bearer(token)).status == 200);
  // API keys are unaffected.
  HttpReply key = api_get(sim, "/meetings?" + query_string(q), key_auth(sim, "alice@example.com"));
  BOOST_TEST(key.status == 200);
  BOOST_TEST(key.json()["items"][0].contains("transcript"));
}

BOOST_AUTO_TEST_CASE(recording_transcript_and_summary_endpoints) {
  SimProcess sim({"--meetings", "30", "--seed", "5"});
  auto auth = key_auth(sim, "alice@example.com");
  json first = api_get(sim, "/meetings?include_transcript=true&include_summary=true", auth).json()["items"][0];
  std::string id = std::to_string(first["recording_id"].get<int64_t>());
  HttpReply t = api_get(sim, "/recordings/" + id + "/transcript", auth);
  BOOST_REQUIRE_EQUAL(t.status, 200);
  BOOST_TEST(t.json()["transcript"] == first["transcript"]);
  HttpReply s = api_get(sim, "/recordings/" + id + "/summary", auth);
  BOOST_TEST(s.json()["summary"] == first["default_summary"]);
  // OAuth callers use these endpoints for the content they cannot include.
  std::string token = login(sim)["access_token"];
  BOOST_TEST(api_get(sim, "/recordings/" + id + "/transcript", bearer(token)).json() == t.json());

  BOOST_TEST(api_get(sim, "/recordings/1/transcript", auth).status == 404);
  BOOST_TEST(api_get(sim, "/recordings/abc/summary", auth).status == 400);
  // A recording of another team is not visible to alice.
  json carol = api_get(sim, "/meetings", key_auth(sim, "carol@example.com")).json()["items"][0];
  BOOST_TEST(api_get(sim, "/recordings/" + std::to_string(carol["recording_id"].get<int64_t>()) + "/summary", auth).status == 404);
  sim.config({{"unknown_recording_status", 400}});
  BOOST_TEST(api_get(sim, "/recordings/1/transcript", auth).status == 400);
}

BOOST_AUTO_TEST_CASE(destination_url_mode_posts_the_content_later) {
  SimProcess sim({"--meetings", "10", "--seed", "5"});
  fb::test::WebhookReceiver rx;
  auto auth = key_auth(sim, "alice@example.com");
  std::string id = std::to_string(api_get(sim, "/meetings", auth).json()["items"][0]["recording_id"].get<int64_t>());
  HttpReply r = api_get(sim, "/recordings/" + id + "/transcript?" + query_string({{"destination_url", rx.url("/t")}}), auth);
  BOOST_REQUIRE_EQUAL(r.status, 200);
  BOOST_TEST(r.json() == json({{"destination_url", rx.url("/t")}}));
  HttpReply s = api_get(sim, "/recordings/" + id + "/summary?" + query_string({{"destination_url", rx.url("/s")}}), auth);
  BOOST_TEST(s.status == 200);
  BOOST_REQUIRE(rx.wait_for(2, 10));
  json expected_t = api_get(sim, "/recordings/" + id + "/transcript", auth).json();
  json expected_s = api_get(sim, "/recordings/" + id + "/summary", auth).json();
  for (const auto& req : rx.requests()) {
    BOOST_TEST(req.method == "POST");
    BOOST_TEST(req.header("Content-Type") == "application/json");
    BOOST_TEST(json::parse(req.body) == (req.path == "/t" ? expected_t : expected_s));
  }
  // Never outside loopback: answered, but refused and counted.
  BOOST_TEST(api_get(sim, "/recordings/" + id + "/summary?destination_url=https%3A%2F%2Fcrm.example.test%2Fx", auth).status == 200);
  BOOST_TEST(wait_until([&] { return sim.counters()["webhook_refused"] == 1; }));
  BOOST_TEST(api_get(sim, "/recordings/" + id + "/summary?destination_url=ftp%3A%2F%2Fx", auth).status == 400);
  auto c = sim.counters();
  BOOST_TEST(c["callback_deliveries"].size() == 3u);
}

BOOST_AUTO_TEST_CASE(teams_and_team_members_are_paginated) {
  SimProcess sim({"--page-size", "1"});
  auto auth = key_auth(sim, "carol@example.com");
  json p1 = api_get(sim, "/teams", auth).json();
  BOOST_TEST(p1["items"][0]["name"] == "Engineering");
  BOOST_TEST(std::regex_match(p1["items"][0]["created_at"].get<std::string>(), kIsoMicros));
  json p2 = api_get(sim, "/teams?" + query_string({{"cursor", p1["next_cursor"]}}), auth).json();
  BOOST_TEST(p2["items"][0]["name"] == "Sales");
  BOOST_TEST(p2["next_cursor"].is_null());

  json m1 = api_get(sim, "/team_members?team=Sales", auth).json();
  BOOST_TEST(m1["items"][0]["email"] == "alice@example.com");
  json m2 = api_get(sim, "/team_members?" + query_string({{"team", "Sales"}, {"cursor", m1["next_cursor"]}}), auth).json();
  BOOST_TEST(m2["items"][0]["email"] == "bob@example.com");
  BOOST_TEST(m2["items"][0]["name"] == "Bob Brown");
  BOOST_TEST(is_iso(m2["items"][0]["created_at"]));
  BOOST_TEST(m2["next_cursor"].is_null());
  BOOST_TEST(api_get(sim, "/team_members?team=Nobody", auth).json()["items"].empty());
  sim.admin("POST", "/_sim/users", {{"email", "dave@example.com"}, {"name", "Dave Diaz"}, {"team", "Support"}});
  sim.config({{"page_size", 10}});
  BOOST_TEST(api_get(sim, "/teams", auth).json()["items"].size() == 3u);
}

BOOST_AUTO_TEST_CASE(authentication_is_required) {
  SimProcess sim;
  for (const HeaderMap& h : {HeaderMap{}, HeaderMap{{"X-Api-Key", "fk_wrong"}}, HeaderMap{{"Authorization", "Bearer nope"}},
                             HeaderMap{{"Authorization", "Basic abc"}}}) {
    HttpReply r = api_get(sim, "/meetings", h);
    BOOST_TEST(r.status == 401);
    BOOST_TEST(r.json()["error"] == "unauthorized");
    BOOST_TEST(!r.has_header("RateLimit-Limit"));
  }
  BOOST_TEST(api_get(sim, "/me", key_auth(sim, "alice@example.com")).status == 404);  // not an endpoint
  auto c = sim.counters();
  BOOST_TEST(c["api_calls"]["GET /meetings"] == 4);
  BOOST_TEST(c["api_statuses"]["401"] == 4);
}

BOOST_AUTO_TEST_CASE(rate_limit_429_with_headers_then_reset) {
  SimProcess sim({"--rate-limit", "5", "--rate-window", "2"});
  auto alice = key_auth(sim, "alice@example.com");
  for (int i = 0; i < 5; ++i) {
    HttpReply r = api_get(sim, "/meetings", alice);
    BOOST_TEST(r.status == 200);
    BOOST_TEST(r.header("RateLimit-Limit") == "5");
    BOOST_TEST(r.header("RateLimit-Remaining") == std::to_string(4 - i));
    int reset = std::stoi(r.header("RateLimit-Reset"));
    BOOST_TEST((reset >= 1 && reset <= 2));
  }
  HttpReply limited = api_get(sim, "/teams", alice);
  BOOST_TEST(limited.status == 429);
  BOOST_TEST(limited.json()["error"] == "rate_limited");
  BOOST_TEST(limited.header("RateLimit-Remaining") == "0");
  BOOST_TEST(!limited.has_header("Retry-After"));
  // Per account: bob has his own budget; the API key and OAuth token of alice share one.
  BOOST_TEST(api_get(sim, "/meetings", key_auth(sim, "bob@example.com")).status == 200);
  BOOST_TEST(api_get(sim, "/meetings", bearer(login(sim)["access_token"])).status == 429);
  // The window resets.
  BOOST_TEST(wait_until([&] { return api_get(sim, "/meetings", alice).status == 200; }, 10));

  sim.config({{"retry_after", true}, {"rate_limit", 1}, {"rate_window_s", 30}});
  sim.admin("POST", "/_sim/rate_limits/reset");
  BOOST_TEST(api_get(sim, "/meetings", alice).status == 200);
  HttpReply again = api_get(sim, "/meetings", alice);
  BOOST_TEST(again.status == 429);
  BOOST_TEST(again.header("Retry-After") == again.header("RateLimit-Reset"));
  BOOST_TEST(std::stoi(again.header("Retry-After")) > 1);
  auto c = sim.counters();
  BOOST_TEST(c["rate_limited"].get<int>() >= 3);
}

BOOST_AUTO_TEST_CASE(sliding_window_frees_budget_as_requests_age) {
  SimProcess sim({"--rate-limit", "3", "--rate-window", "1", "--rate-window-mode", "sliding"});
  auto auth = key_auth(sim, "alice@example.com");
  for (int i = 0; i < 3; ++i) BOOST_TEST(api_get(sim, "/teams", auth).status == 200);
  HttpReply r = api_get(sim, "/teams", auth);
  BOOST_TEST(r.status == 429);
  BOOST_TEST(r.header("RateLimit-Reset") == "1");
  BOOST_TEST(wait_until([&] { return api_get(sim, "/teams", auth).status == 200; }, 10));
}

BOOST_AUTO_TEST_CASE(injected_faults_hit_the_next_n_matching_calls) {
  SimProcess sim;
  auto auth = key_auth(sim, "alice@example.com");
  sim.admin("POST", "/_sim/faults", {{"status", 503}, {"count", 2}, {"path_prefix", "/external/v1/meetings"}});
  BOOST_TEST(api_get(sim, "/teams", auth).status == 200);  // other path: untouched
  BOOST_TEST(api_get(sim, "/meetings", auth).status == 503);
  BOOST_TEST(api_get(sim, "/meetings", auth).status == 503);
  BOOST_TEST(api_get(sim, "/meetings", auth).status == 200);

  sim.admin("POST", "/_sim/faults", {{"status", 429}, {"count", 1}, {"reset_s", 3}});
  HttpReply r = api_get(sim, "/teams", auth);
  BOOST_TEST(r.status == 429);
  BOOST_TEST(r.header("RateLimit-Remaining") == "0");
  BOOST_TEST(r.header("RateLimit-Reset") == "3");

  sim.admin("POST", "/_sim/faults", {{"status", 500}, {"count", 1}, {"path_prefix", "/external/v1/oauth2/token"}});
  HttpReply tok = refresh(sim, "whatever");
  BOOST_TEST(tok.status == 500);

  sim.config({{"fault_rate", 1.0}, {"fault_rate_status", 502}});
  BOOST_TEST(api_get(sim, "/meetings", auth).status == 502);
  sim.config({{"fault_rate", 0}});
  BOOST_TEST(api_get(sim, "/meetings", auth).status == 200);
  BOOST_TEST(sim.counters()["faults_injected"] == 5);
  BOOST_CHECK_THROW(sim.admin("POST", "/_sim/faults", {{"status", 200}}), std::runtime_error);
}

BOOST_AUTO_TEST_CASE(latency_knob_delays_api_calls) {
  SimProcess sim({"--latency", "300"});
  auto auth = key_auth(sim, "alice@example.com");
  auto start = std::chrono::steady_clock::now();
  BOOST_TEST(api_get(sim, "/teams", auth).status == 200);
  auto elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  BOOST_TEST(elapsed_ms >= 300);  // a lower bound only: the knob must add at least its delay
}

BOOST_AUTO_TEST_CASE(error_body_shape_is_configurable) {
  SimProcess sim({"--error-body", "text"});
  HttpReply t = api_get(sim, "/meetings", {});
  BOOST_TEST(t.status == 401);
  BOOST_TEST(t.header("Content-Type") == "text/plain");
  BOOST_TEST(t.body.rfind("unauthorized: ", 0) == 0);
  sim.config({{"error_body", "empty"}});
  HttpReply e = api_get(sim, "/meetings", {});
  BOOST_TEST(e.status == 401);
  BOOST_TEST(e.body.empty());
  BOOST_CHECK_THROW(sim.config({{"error_body", "xml"}}), std::runtime_error);
}

BOOST_AUTO_TEST_CASE(create_webhook_validates_the_body) {
  SimProcess sim;
  auto auth = key_auth(sim, "alice@example.com");
  std::string url = "http://127.0.0.1:9/hook";
  std::vector<json> bad = {
      json::array(),
      {{"triggered_for", {"my_recordings"}}, {"include_summary", true}},                       // no destination_url
      {{"destination_url", "not a url"}, {"triggered_for", {"my_recordings"}}, {"include_summary", true}},
      {{"destination_url", url}, {"include_summary", true}},                                   // no triggered_for
      {{"destination_url", url}, {"triggered_for", json::array()}, {"include_summary", true}},  // empty
      {{"destination_url", url}, {"triggered_for", {"everything"}}, {"include_summary", true}},
      {{"destination_url", url}, {"triggered_for", {"my_recordings"}}},                         // no include_* true
      {{"destination_url", url}, {"triggered_for", {"my_recordings"}}, {"include_summary", false}},
      {{"destination_url", url}, {"triggered_for", {"my_recordings"}}, {"include_summary", "true"}},
      {{"destination_url", url}, {"triggered_for", {"my_recordings"}}, {"include_summary", true}, {"secret", "x"}},
  };
  for (const auto& body : bad) {
    HttpReply r = http_post_json(sim.api_base() + "/webhooks", body, auth);
    BOOST_TEST(r.status == 400, body.dump());
  }
  BOOST_TEST(http_post_json(sim.api_base() + "/webhooks", good_webhook(url), {}).status == 401);

  json req = {{"destination_url", url},
              {"triggered_for", {"my_recordings", "shared_team_recordings"}},
              {"include_transcript", true},
              {"include_crm_matches", false}};
  HttpReply ok = http_post_json(sim.api_base() + "/webhooks", req, auth);
  BOOST_REQUIRE_EQUAL(ok.status, 201);
  json w = ok.json();
  BOOST_TEST(w["url"] == url);
  BOOST_TEST(!w.contains("destination_url"));
  BOOST_TEST(w["id"].get<std::string>().size() >= 8u);
  BOOST_TEST(is_iso(w["created_at"]));
  BOOST_TEST(w["include_transcript"] == true);
  BOOST_TEST(w["include_summary"] == false);
  BOOST_TEST(w["include_action_items"] == false);
  BOOST_TEST(w["include_crm_matches"] == false);
  BOOST_TEST(w["triggered_for"] == req["triggered_for"]);
  std::string secret = w["secret"];
  BOOST_REQUIRE(secret.rfind("whsec_", 0) == 0);
  auto key = fb::detail::base64_decode(secret.substr(6));
  BOOST_REQUIRE(key.has_value());
  BOOST_TEST(key->size() == 24u);
  json listed = sim.admin("GET", "/_sim/webhooks");
  BOOST_TEST(listed.size() == 1u);
  BOOST_TEST(listed[0]["secret"] == secret);
  BOOST_TEST(listed[0]["owner"] == "alice@example.com");
  // Each webhook gets its own secret.
  BOOST_TEST(http_post_json(sim.api_base() + "/webhooks", req, auth).json()["secret"] != secret);
}

BOOST_AUTO_TEST_CASE(delete_webhook_204_then_404) {
  SimProcess sim;
  auto alice = key_auth(sim, "alice@example.com");
  std::string id = http_post_json(sim.api_base() + "/webhooks", good_webhook("http://127.0.0.1:9/h"), alice).json()["id"];
  BOOST_TEST(api_delete(sim, "/webhooks/" + id, key_auth(sim, "bob@example.com")).status == 404);  // not bob's
  HttpReply del = api_delete(sim, "/webhooks/" + id, alice);
  BOOST_TEST(del.status == 204);
  BOOST_TEST(del.body.empty());
  BOOST_TEST(api_delete(sim, "/webhooks/" + id, alice).status == 404);
  BOOST_TEST(sim.admin("GET", "/_sim/webhooks").empty());
  auto c = sim.counters();
  BOOST_TEST(c["api_calls"]["DELETE /webhooks/{id}"] == 3);
  BOOST_TEST(c["api_calls"]["POST /webhooks"] == 1);
  BOOST_TEST(c["api_calls_total"] == 4);
}

BOOST_AUTO_TEST_CASE(config_round_trips_and_rejects_bad_knobs) {
  SimProcess sim({"--token-ttl", "7", "--oauth-content", "400", "--webhook-retry-scale", "0.01"});
  json cfg = sim.admin("GET", "/_sim/config");
  BOOST_TEST(cfg["token_ttl_s"] == 7);
  BOOST_TEST(cfg["oauth_content"] == "400");
  BOOST_TEST(cfg["webhook_retry_scale"] == 0.01);
  BOOST_TEST(cfg["rate_limit"] == 60);
  BOOST_TEST(cfg["page_size"] == 10);
  json after = sim.config({{"page_size", 3}, {"next_cursor_style", "empty"}});
  BOOST_TEST(after["page_size"] == 3);
  // All-or-nothing: one bad knob changes nothing.
  BOOST_CHECK_THROW(sim.config({{"page_size", 4}, {"rate_limit", -1}}), std::runtime_error);
  BOOST_TEST(sim.admin("GET", "/_sim/config")["page_size"] == 3);
  BOOST_CHECK_THROW(sim.config({{"page_size", "4"}}), std::runtime_error);
  BOOST_CHECK_THROW(sim.config({{"retry_after", 1}}), std::runtime_error);
  BOOST_CHECK_THROW(sim.config({{"next_cursor_style", "zero"}}), std::runtime_error);
}

BOOST_AUTO_TEST_SUITE_END()
