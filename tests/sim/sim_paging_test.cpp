// Keyset paging and filters of GET /meetings (fathom-api.md 2, 3.1, 7 items 10-11), over real HTTP.
#include <boost/test/unit_test.hpp>

#include <set>

#include "crypto/encoding.h"
#include "sim/sim_test_util.h"

using namespace fb::simtest;
using fb::test::query_string;
using nlohmann::json;

namespace {

// Walks every page of `query` (re-sending it with each cursor); returns the items.
std::vector<json> walk(const SimProcess& sim, const HeaderMap& auth, const Fields& query, int* pages = nullptr) {
  std::vector<json> out;
  std::string cursor;
  int n = 0;
  while (true) {
    Fields q = query;
    if (!cursor.empty()) q.emplace_back("cursor", cursor);
    HttpReply r = api_get(sim, "/meetings?" + query_string(q), auth);
    BOOST_REQUIRE_MESSAGE(r.status == 200, r.body);
    json page = r.json();
    ++n;
    for (auto& m : page["items"]) out.push_back(m);
    if (page["next_cursor"].is_null()) break;
    cursor = page["next_cursor"];
    BOOST_REQUIRE(n < 10000);
  }
  if (pages) *pages = n;
  return out;
}

std::vector<int64_t> ids_of(const std::vector<json>& items) {
  std::vector<int64_t> ids;
  for (const auto& m : items) ids.push_back(m["recording_id"]);
  return ids;
}

// Strictly newest first by (created_at, recording_id).
bool newest_first(const std::vector<json>& items) {
  for (size_t i = 1; i < items.size(); ++i) {
    auto a = std::make_pair(items[i - 1]["created_at"].get<std::string>(), items[i - 1]["recording_id"].get<int64_t>());
    auto b = std::make_pair(items[i]["created_at"].get<std::string>(), items[i]["recording_id"].get<int64_t>());
    if (!(a > b)) return false;
  }
  return true;
}

std::vector<int64_t> admin_visible_ids(const SimProcess& sim, const std::string& user) {
  std::vector<int64_t> ids;
  json listing = sim.admin("GET", "/_sim/meetings?visible_to=" + user);
  for (const auto& m : listing["items"]) ids.push_back(m["recording_id"]);
  return ids;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(paging)

BOOST_AUTO_TEST_CASE(pages_while_meetings_are_inserted_miss_nothing_and_repeat_nothing) {
  SimProcess sim({"--meetings", "60", "--seed", "11"});
  auto alice = key_auth(sim, "alice@example.com");
  std::vector<int64_t> expected = admin_visible_ids(sim, "alice@example.com");
  BOOST_REQUIRE_GT(expected.size(), 25u);  // several pages of 10

  std::vector<json> seen;
  std::string cursor;
  std::vector<std::string> cursors;
  int pages = 0;
  std::vector<int64_t> inserted;
  while (true) {
    std::string q = cursor.empty() ? "" : "?" + query_string({{"cursor", cursor}});
    HttpReply r = api_get(sim, "/meetings" + q, alice);
    BOOST_REQUIRE_EQUAL(r.status, 200);
    json page = r.json();
    BOOST_TEST(page["limit"] == 10);
    BOOST_TEST(page["items"].size() <= 10u);
    for (auto& m : page["items"]) seen.push_back(m);
    ++pages;
    if (page["next_cursor"].is_null()) break;
    cursor = page["next_cursor"];
    cursors.push_back(cursor);
    // New meetings arrive at the head between pages (some alice's, some her teammate bob's).
    json by_alice = sim.admin("POST", "/_sim/meetings", {{"count", 2}, {"recorded_by", "alice@example.com"}});
    json by_bob = sim.admin("POST", "/_sim/meetings", {{"count", 1}, {"recorded_by", "bob@example.com"}});
    for (const auto& id : by_alice["recording_ids"]) inserted.push_back(id);
    for (const auto& id : by_bob["recording_ids"]) inserted.push_back(id);
  }
  BOOST_TEST(pages >= 3);
  std::vector<int64_t> got = ids_of(seen);
  BOOST_TEST(got == expected, boost::test_tools::per_element());
  BOOST_TEST(std::set<int64_t>(got.begin(), got.end()).size() == got.size());
  BOOST_TEST(newest_first(seen));

  // A cursor is stable: replaying the first one after all the inserts gives the same second page.
  HttpReply replay = api_get(sim, "/meetings?" + query_string({{"cursor", cursors.front()}}), alice);
  std::vector<int64_t> second(expected.begin() + 10, expected.begin() + std::min<size_t>(20, expected.size()));
  BOOST_TEST(ids_of(replay.json()["items"].get<std::vector<json>>()) == second, boost::test_tools::per_element());

  // A fresh walk sees the inserted meetings first, newest first.
  auto fresh = walk(sim, alice, {});
  BOOST_TEST(fresh.size() == expected.size() + inserted.size());
  std::vector<int64_t> head = ids_of(std::vector<json>(fresh.begin(), fresh.begin() + static_cast<long>(inserted.size())));
  std::vector<int64_t> newest(inserted.rbegin(), inserted.rend());
  BOOST_TEST(head == newest, boost::test_tools::per_element());
  BOOST_TEST(newest_first(fresh));
}

BOOST_AUTO_TEST_CASE(cursor_is_opaque_base64_of_keyset_json) {
  SimProcess sim({"--meetings", "30"});
  auto page = api_get(sim, "/meetings", key_auth(sim, "alice@example.com")).json();
  std::string cursor = page["next_cursor"];
  auto decoded = fb::detail::base64_decode(cursor);
  BOOST_REQUIRE(decoded.has_value());
  json keyset = json::parse(*decoded);
  BOOST_TEST(keyset["recording_id"] == page["items"].back()["recording_id"]);
  BOOST_TEST(keyset["created_at"] == page["items"].back()["created_at"]);
}

BOOST_AUTO_TEST_CASE(invalid_cursors_get_400) {
  SimProcess sim({"--meetings", "5"});
  auto auth = key_auth(sim, "alice@example.com");
  for (const std::string& bad : {std::string("not base64!"), fb::detail::base64_encode("not json"),
                                 fb::detail::base64_encode("{\"page_num\":2}"), std::string("eyJwYWdlX251bSI6Mn0="),
                                 fb::detail::base64_encode("{\"created_at\":\"yesterday\",\"recording_id\":1}")}) {
    HttpReply r = api_get(sim, "/meetings?" + query_string({{"cursor", bad}}), auth);
    BOOST_TEST(r.status == 400, bad);
    BOOST_TEST(r.json()["error"] == "invalid_cursor");
  }
  BOOST_TEST(api_get(sim, "/teams?" + query_string({{"cursor", "%%%"}}), auth).status == 400);
}

BOOST_AUTO_TEST_CASE(last_page_next_cursor_null_empty_or_missing) {
  SimProcess sim({"--meetings", "30", "--seed", "4"});
  auto auth = key_auth(sim, "carol@example.com");
  size_t total = admin_visible_ids(sim, "carol@example.com").size();
  BOOST_REQUIRE_GT(total, 1u);
  // A page size that divides the total exactly: the last full page must still say "no more".
  sim.config({{"page_size", static_cast<int64_t>(total)}});
  json only = api_get(sim, "/meetings", auth).json();
  BOOST_TEST(only["items"].size() == total);
  BOOST_TEST(only["next_cursor"].is_null());
  BOOST_TEST(only["limit"] == total);

  sim.config({{"next_cursor_style", "empty"}});
  json empty = api_get(sim, "/meetings", auth).json();
  BOOST_TEST(empty["next_cursor"] == "");
  sim.config({{"next_cursor_style", "missing"}});
  json missing = api_get(sim, "/meetings", auth).json();
  BOOST_TEST(!missing.contains("next_cursor"));
  BOOST_TEST(missing.contains("items"));
  // Intermediate pages still carry a real cursor in every style.
  sim.config({{"page_size", 1}});
  BOOST_TEST(api_get(sim, "/meetings", auth).json()["next_cursor"].get<std::string>().size() > 10u);
  BOOST_TEST(api_get(sim, "/teams", auth).json()["next_cursor"].get<std::string>().size() > 5u);
}

BOOST_AUTO_TEST_CASE(filters_must_be_resent_with_the_cursor) {
  SimProcess sim({"--meetings", "80", "--seed", "9", "--page-size", "5"});
  auto auth = key_auth(sim, "alice@example.com");
  Fields bob = {{"recorded_by[]", "bob@example.com"}};
  auto all_bob = walk(sim, auth, bob);
  BOOST_REQUIRE_GT(all_bob.size(), 5u);
  for (const auto& m : all_bob) BOOST_TEST(m["recorded_by"]["email"] == "bob@example.com");

  json first = api_get(sim, "/meetings?" + query_string(bob), auth).json();
  Fields with_cursor = bob;
  with_cursor.emplace_back("cursor", first["next_cursor"]);
  json resent = api_get(sim, "/meetings?" + query_string(with_cursor), auth).json();
  for (const auto& m : resent["items"]) BOOST_TEST(m["recorded_by"]["email"] == "bob@example.com");
  // The cursor carries no filter: without re-sending it, other recorders show up again.
  json dropped = api_get(sim, "/meetings?" + query_string({{"cursor", first["next_cursor"]}}), auth).json();
  bool other = false;
  for (const auto& m : dropped["items"]) other |= m["recorded_by"]["email"] != "bob@example.com";
  BOOST_TEST(other);
}

BOOST_AUTO_TEST_CASE(filters_match_an_independent_computation) {
  SimProcess sim({"--meetings", "120", "--seed", "21", "--page-size", "25"});
  auto auth = key_auth(sim, "bob@example.com");
  auto all = walk(sim, auth, {});
  BOOST_REQUIRE_GT(all.size(), 40u);
  auto expect = [&](const std::function<bool(const json&)>& keep) {
    std::vector<int64_t> ids;
    for (const auto& m : all) {
      if (keep(m)) ids.push_back(m["recording_id"]);
    }
    return ids;
  };
  auto check = [&](const Fields& q, const std::function<bool(const json&)>& keep) {
    auto got = ids_of(walk(sim, auth, q));
    auto want = expect(keep);
    BOOST_TEST(got == want, boost::test_tools::per_element());
    BOOST_TEST(!want.empty());
    return want.size();
  };
  // created_after / created_before are strict by default.
  std::string mid = all[all.size() / 2]["created_at"];
  std::string late = all[all.size() / 4]["created_at"];
  check({{"created_after", mid}}, [&](const json& m) { return m["created_at"].get<std::string>() > mid; });
  check({{"created_before", mid}}, [&](const json& m) { return m["created_at"].get<std::string>() < mid; });
  check({{"created_after", mid}, {"created_before", late}}, [&](const json& m) {
    return m["created_at"].get<std::string>() > mid && m["created_at"].get<std::string>() < late;
  });
  check({{"recorded_by[]", "alice@example.com"}}, [](const json& m) { return m["recorded_by"]["email"] == "alice@example.com"; });
  check({{"recorded_by[]", "alice@example.com"}, {"recorded_by[]", "bob@example.com"}}, [](const json&) { return true; });
  check({{"teams[]", "Sales"}}, [](const json& m) { return m["recorded_by"]["team"] == "Sales"; });
  auto has_domain = [](const json& m, const std::string& d) {
    for (const auto& i : m["calendar_invitees"]) {
      if (i["email_domain"] == d) return true;
    }
    return false;
  };
  check({{"calendar_invitees_domains[]", "acme.test"}}, [&](const json& m) { return has_domain(m, "acme.test"); });
  check({{"calendar_invitees_domains[]", "acme.test"}, {"calendar_invitees_domains[]", "globex.test"}},
        [&](const json& m) { return has_domain(m, "acme.test") || has_domain(m, "globex.test"); });
  size_t internal = check({{"calendar_invitees_domains_type", "only_internal"}},
                          [](const json& m) { return m["calendar_invitees_domains_type"] == "only_internal"; });
  size_t external = check({{"calendar_invitees_domains_type", "one_or_more_external"}},
                          [](const json& m) { return m["calendar_invitees_domains_type"] == "one_or_more_external"; });
  BOOST_TEST(internal + external == all.size());
  check({{"calendar_invitees_domains_type", "all"}, {"meeting_type", "whatever"}, {"recorded_by", "nobody@x.test"}},
        [](const json&) { return true; });  // unknown params (and the non-bracket form) are ignored

  // The inclusive switch includes the bound itself.
  sim.config({{"created_filter_inclusive", true}});
  check({{"created_after", mid}}, [&](const json& m) { return m["created_at"].get<std::string>() >= mid; });
}

BOOST_AUTO_TEST_CASE(bad_parameters_get_400_naming_the_parameter) {
  SimProcess sim({"--meetings", "30"});
  auto auth = key_auth(sim, "alice@example.com");
  for (const auto& [q, name] : std::vector<std::pair<Fields, std::string>>{
           {{{"calendar_invitees_domains_type", "external"}}, "calendar_invitees_domains_type"},
           {{{"include_transcript", "yes"}}, "include_transcript"},
           {{{"include_crm_matches", "1"}}, "include_crm_matches"},
           {{{"created_after", "last week"}}, "created_after"},
           {{{"created_before", "2025-13-45"}}, "created_before"}}) {
    HttpReply r = api_get(sim, "/meetings?" + query_string(q), auth);
    BOOST_TEST(r.status == 400);
    BOOST_TEST(r.json()["message"].get<std::string>().find(name) != std::string::npos, r.body);
  }
  BOOST_TEST(api_get(sim, "/meetings?limit=3", auth).json()["items"].size() == 10u);  // `limit` is not honoured by default
  SimProcess more({"--meetings", "30", "--honor-limit-param"});
  auto a2 = key_auth(more, "alice@example.com");
  BOOST_TEST(api_get(more, "/meetings?limit=2", a2).json()["items"].size() == 2u);
  BOOST_TEST(api_get(more, "/meetings?limit=0", a2).status == 400);
}

BOOST_AUTO_TEST_CASE(visibility_is_own_and_team_recordings) {
  SimProcess sim({"--meetings", "60", "--seed", "2"});
  auto carol = walk(sim, key_auth(sim, "carol@example.com"), {});
  for (const auto& m : carol) BOOST_TEST(m["recorded_by"]["team"] == "Engineering");
  auto alice = walk(sim, key_auth(sim, "alice@example.com"), {});
  std::set<std::string> recorders;
  for (const auto& m : alice) recorders.insert(m["recorded_by"]["email"]);
  BOOST_TEST((recorders == std::set<std::string>{"alice@example.com", "bob@example.com"}));
  BOOST_TEST(alice.size() + carol.size() == 60u);
}

BOOST_AUTO_TEST_CASE(ten_thousand_meetings_page_through) {
  SimProcess sim({"--meetings", "10000", "--seed", "1", "--rate-limit", "100000"});
  auto auth = key_auth(sim, "alice@example.com");
  int pages = 0;
  auto items = walk(sim, auth, {}, &pages);
  BOOST_TEST(items.size() == admin_visible_ids(sim, "alice@example.com").size());
  BOOST_TEST(pages == static_cast<int>((items.size() + 9) / 10));
  BOOST_TEST(newest_first(items));
}

BOOST_AUTO_TEST_SUITE_END()
