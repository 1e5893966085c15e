// The default mapping (scripts/mapping.lua) and the example rule sets (examples/rules) against
// fixture meetings, through a CRM that honours idempotency keys like a real one: the expected
// operations, and no duplicate records when an event is processed again.
#include <boost/test/unit_test.hpp>

#include "scripting_test_util.h"

using namespace fb;
using namespace fb::test;

namespace {

struct MappingFixture {
  ScriptDir dir;
  RecordingCrm crm;
  std::unique_ptr<detail::ScriptHost> host;

  explicit MappingFixture(const std::string& example = "", bool no_company_domains = false) {
    dir.copy_in(source_path("scripts/mapping.lua"), "mapping.lua");
    auto o = host_options(dir);
    if (no_company_domains) o.config.company_domains.clear();  // the default: the recorder's domain
    if (!example.empty()) {
      dir.copy_in(source_path("examples/rules/" + example), example);
      o.config.mapping = example;
    }
    host = open_host(o);
    crm.install(*host);
  }

  Status map(const std::string& raw, int64_t rec, int64_t version = 1) {
    return host->on_meeting(meeting_event(raw, rec, version));
  }
};

using Ops = std::vector<std::string>;

}  // namespace

BOOST_AUTO_TEST_SUITE(default_mapping)

BOOST_AUTO_TEST_CASE(internal_only_meeting_creates_nothing) {
  MappingFixture f;
  std::string raw = fixture("internal_only.json");
  BOOST_REQUIRE(f.map(raw, 1001).ok());
  BOOST_TEST(f.crm.calls.empty());
  BOOST_TEST(f.crm.records() == 0u);
}

BOOST_AUTO_TEST_CASE(mixed_meeting) {
  MappingFixture f;
  std::string raw = fixture("mixed.json");
  Status s = f.map(raw, 123456789);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.to_string());
  BOOST_TEST(f.crm.ops() == (Ops{"find_company_by_domain", "upsert_company", "upsert_contact", "log_activity",
                                 "create_task", "find_deal", "attach_recording"}),
             boost::test_tools::per_element());
  BOOST_TEST(f.crm.calls[0].args == json({{"domain", "acme.test"}}));
  BOOST_TEST(f.crm.calls[1].args == json({{"domain", "acme.test"}, {"name", "Acme"}}));
  json contact = f.crm.calls[2].args;
  BOOST_TEST(contact["email"] == "bob@acme.test");
  BOOST_TEST(contact["name"] == "Bob Client");
  BOOST_TEST(contact["company_id"] == f.crm.companies["acme.test"]["id"]);
  json act = f.crm.calls[3].args;
  BOOST_TEST(act["type"] == "meeting");
  BOOST_TEST(act["title"] == "Acme onboarding call");
  BOOST_TEST(act["started_at"] == "2025-03-01T16:01:12Z");
  BOOST_TEST(act["ended_at"] == "2025-03-01T17:00:55Z");
  BOOST_TEST(act["duration_s"] == 3583);
  BOOST_TEST(act["share_url"] == "https://fathom.video/share/AbCdEf123456");
  BOOST_TEST(act["url"] == "https://fathom.video/calls/123456789");
  BOOST_TEST(act["summary"] == "## Summary\nKickoff done; proposal due Friday.\n");
  BOOST_TEST(act["recording_id"] == 123456789);
  BOOST_TEST(act["owner_email"] == "alice@example.com");
  BOOST_TEST(act["contact_ids"] == json::array({f.crm.contacts["bob@acme.test"]["id"]}));
  BOOST_TEST(act["company_ids"] == json::array({f.crm.companies["acme.test"]["id"]}));
  json task = f.crm.calls[4].args;
  BOOST_TEST(task["title"] == "Send the revised proposal to Acme");
  BOOST_TEST(task["assignee_email"] == "alice@example.com");
  BOOST_TEST(task["playback_url"] == "https://fathom.video/calls/123456789#t=645");
  BOOST_TEST(task["activity_id"] == f.crm.activities["123456789"]["id"]);
  json att = f.crm.calls[6].args;
  BOOST_TEST(att["record_type"] == "contact");  // no deal for Acme yet
  BOOST_TEST(att["record_id"] == f.crm.contacts["bob@acme.test"]["id"]);
}

BOOST_AUTO_TEST_CASE(existing_company_and_deal_are_reused) {
  MappingFixture f;
  f.crm.companies["acme.test"] = {{"id", "co_existing"}, {"name", "Acme Corp"}, {"domain", "acme.test"}};
  f.crm.deals["deal_9"] = {{"id", "deal_9"}, {"company_id", "co_existing"}, {"name", "Acme renewal"}};
  std::string raw = fixture("mixed.json");
  BOOST_REQUIRE(f.map(raw, 123456789).ok());
  BOOST_TEST(f.crm.calls_of("upsert_company").empty());
  BOOST_TEST(f.crm.calls_of("upsert_contact")[0].args["company_id"] == "co_existing");
  json att = f.crm.calls_of("attach_recording").at(0).args;
  BOOST_TEST(att["record_type"] == "deal");
  BOOST_TEST(att["record_id"] == "deal_9");
}

BOOST_AUTO_TEST_CASE(many_invitees) {
  MappingFixture f;
  std::string raw = fixture("many_invitees.json");
  Status s = f.map(raw, 2002);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.to_string());
  // Four company domains (gmail.com is personal), looked up once each.
  BOOST_TEST(f.crm.calls_of("find_company_by_domain").size() == 4u);
  BOOST_TEST(f.crm.companies.size() == 4u);
  // Ten distinct external addresses (case-insensitive, the repeated one once, no null email,
  // carol@eu.example.com is internal through the subdomain).
  auto contacts = f.crm.calls_of("upsert_contact");
  BOOST_REQUIRE_EQUAL(contacts.size(), 10u);
  BOOST_TEST(contacts[1].args["email"] == "ben@acme.test");
  json personal;
  for (const auto& c : contacts) {
    if (c.args["email"] == "jo.personal@gmail.com") personal = c.args;
  }
  BOOST_TEST(!personal.contains("company_id"));
  json act = f.crm.calls_of("log_activity").at(0).args;
  BOOST_TEST(act["contact_ids"].size() == 10u);
  BOOST_TEST(act["company_ids"].size() == 4u);
  // Two open action items: one for an internal assignee, one for an external one (goes to the
  // recorder); the completed one is skipped.
  auto tasks = f.crm.calls_of("create_task");
  BOOST_REQUIRE_EQUAL(tasks.size(), 2u);
  BOOST_TEST(tasks[0].args["assignee_email"] == "carol@eu.example.com");
  BOOST_TEST(tasks[1].args["assignee_email"] == "alice@example.com");
  BOOST_TEST(f.crm.calls_of("attach_recording").size() == 1u);
}

// Found with a real-sized Fathom meeting: the summary was cut at 20,000 bytes inside an em dash,
// the CRM call refused the string ("not valid UTF-8"), and the meeting was dead-lettered after the
// company and contacts were written. The cut now falls on a character.
BOOST_AUTO_TEST_CASE(a_long_summary_is_cut_on_a_character) {
  for (int shift : {0, 1, 2}) {
    BOOST_TEST_CONTEXT("em dash starting " << shift << " byte(s) before the cut") {
      MappingFixture f;
      json m = json::parse(fixture("mixed.json"));
      std::string md = std::string(20000 - shift, 'a') + "\xE2\x80\x94" + std::string(100, 'b');
      m["default_summary"] = {{"template_name", "general"}, {"markdown_formatted", md}};
      Status s = f.map(m.dump(), 2101 + shift);
      BOOST_REQUIRE_MESSAGE(s.ok(), s.to_string());
      std::string summary = f.crm.calls_of("log_activity").at(0).args["summary"];
      BOOST_TEST(summary.size() <= 20000u + 4u);
      BOOST_TEST(summary.substr(summary.size() - 4) == "\n...");
      const std::string body = summary.substr(0, summary.size() - 4);
      BOOST_TEST((body == std::string(20000 - shift, 'a') || body == md.substr(0, 20003 - shift)));
    }
  }
}

// A webinar's 400 external invitees: every contact costs CRM calls, and past
// scripts.crm_calls_per_event the meeting failed on every attempt (after ~1,000 CRM writes) and was
// dead-lettered. The first 200 become contacts, and the activity is logged.
BOOST_AUTO_TEST_CASE(a_meeting_with_hundreds_of_external_invitees_is_mapped) {
  MappingFixture f;
  json m = json::parse(fixture("mixed.json"));
  m["calendar_invitees"] = json::array();
  for (int i = 0; i < 400; ++i) {
    m["calendar_invitees"].push_back({{"name", "Guest " + std::to_string(i)},
                                      {"email", "guest" + std::to_string(i) + "@c" + std::to_string(i) + ".test"},
                                      {"email_domain", "c" + std::to_string(i) + ".test"},
                                      {"is_external", true}});
  }
  Status s = f.map(m.dump(), 2200);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.to_string());
  BOOST_TEST(f.crm.calls_of("upsert_contact").size() == 200u);
  BOOST_REQUIRE_EQUAL(f.crm.calls_of("log_activity").size(), 1u);
  BOOST_TEST(f.crm.calls_of("log_activity").at(0).args["contact_ids"].size() == 200u);
}

// No company domains configured, so the recorder's domain is taken as ours: it used to override
// Fathom's is_external flag, and a gmail.com recorder's gmail.com client (external: true) got no
// contact. The flag now decides where Fathom gives it.
BOOST_AUTO_TEST_CASE(fathoms_is_external_flag_wins_over_the_recorders_domain) {
  MappingFixture f("", /*no_company_domains=*/true);
  json m = json::parse(fixture("mixed.json"));
  m["recorded_by"] = {{"name", "Zoe"}, {"email", "zoe@gmail.com"}, {"email_domain", "gmail.com"}};
  m["calendar_invitees"] = json::array({
      {{"name", "Zoe"}, {"email", "zoe@gmail.com"}, {"email_domain", "gmail.com"}, {"is_external", false}},
      {{"name", "Client"}, {"email", "client@gmail.com"}, {"email_domain", "gmail.com"}, {"is_external", true}},
  });
  Status s = f.map(m.dump(), 2300);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.to_string());
  auto contacts = f.crm.calls_of("upsert_contact");
  BOOST_REQUIRE_EQUAL(contacts.size(), 1u);
  BOOST_TEST(contacts[0].args["email"] == "client@gmail.com");
  // Without the flag, the recorder's domain still decides: a gmail.com address is ours.
  MappingFixture g("", true);
  m["calendar_invitees"][1].erase("is_external");
  BOOST_REQUIRE(g.map(m.dump(), 2301).ok());
  BOOST_TEST(g.crm.calls_of("upsert_contact").empty());
}

// An internationalised domain reaches Fathom in either form: as typed ("bücher.example", any case)
// or in its ASCII form ("xn--bcher-kva.example"). It was two companies, "Bücher" and
// "Xn--bcher-kva". Now one, by its Unicode form; a name IDNA refuses is kept as given.
BOOST_AUTO_TEST_CASE(an_internationalised_domain_is_one_company_in_either_form) {
  MappingFixture f;
  json m = json::parse(fixture("mixed.json"));
  m["calendar_invitees"] = json::array({
      {{"name", "Jürgen"}, {"email", "jurgen@BÜCHER.example"}, {"is_external", true}},
      {{"name", "J"}, {"email", "j@xn--bcher-kva.example"}, {"is_external", true}},
      {{"name", "K"}, {"email", "k@bücher.example"}, {"is_external", true}},
      // An ideographic full stop at the end, which IDNA maps to ".": no trailing dot.
      {{"name", "F"}, {"email", "f@BÜCHER.example\u3002"}, {"is_external", true}},
      // Not valid punycode: kept, lowercased.
      {{"name", "Odd"}, {"email", "odd@XN--ZZ-.example"}, {"is_external", true}},
      // IDNA2008 refuses an emoji label; its ASCII form is still the same company.
      {{"name", "E1"}, {"email", "e1@xn--ls8h.la"}, {"is_external", true}},
      {{"name", "E2"}, {"email", "e2@\U0001F4A9.la"}, {"is_external", true}},
  });
  Status s = f.map(m.dump(), 2500);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.to_string());
  std::set<std::string> domains;
  for (const auto& c : f.crm.calls_of("upsert_company")) domains.insert(c.args["domain"].get<std::string>());
  BOOST_TEST(domains == (std::set<std::string>{"bücher.example", "xn--zz-.example", "\U0001F4A9.la"}));
  BOOST_TEST(f.crm.calls_of("upsert_contact").size() == 7u);
}

// Our own domain in ASCII form in the settings still recognises its colleagues typed in Unicode.
BOOST_AUTO_TEST_CASE(company_domains_match_an_internationalised_domain_in_either_form) {
  ScriptDir dir;
  dir.write("probe.lua", R"(
    function on_meeting(meeting, ctx)
      local out = {}
      for _, e in ipairs({"a@MÜNCHEN.example", "b@xn--mnchen-3ya.example", "c@sub.münchen.example",
                          "d@muenchen.example"}) do
        out[#out + 1] = e .. "=" .. tostring(util.is_internal(e, {"xn--mnchen-3ya.example"})) .. "/" ..
                        util.email_domain(e)
      end
      crm.log_activity({ recording_id = meeting.recording_id, title = table.concat(out, " ") })
    end
  )");
  auto o = host_options(dir);
  o.config.mapping = "probe.lua";
  auto host = open_host(o);
  RecordingCrm crm;
  crm.install(*host);
  Status s = host->on_meeting(meeting_event(fixture("mixed.json"), 2600, 1));
  BOOST_REQUIRE_MESSAGE(s.ok(), s.to_string());
  BOOST_TEST(crm.calls_of("log_activity").at(0).args["title"] ==
             "a@MÜNCHEN.example=true/münchen.example b@xn--mnchen-3ya.example=true/münchen.example "
             "c@sub.münchen.example=true/sub.münchen.example d@muenchen.example=false/muenchen.example");
}

// The configured domains and the recorder's are normalised once, when set (they were lowercased
// there and normalised again on every util.is_internal check): either form of an IDN, any case.
BOOST_AUTO_TEST_CASE(configured_and_recorder_domains_are_spelt_as_util_email_domain_spells_them) {
  ScriptDir dir;
  dir.write("probe.lua", R"(
    function on_meeting(meeting, ctx)
      local out = { table.concat(ctx.company_domains, ",") }
      for _, e in ipairs({"a@MÜNCHEN.example", "b@sub.xn--mnchen-3ya.example", "c@muenchen.example"}) do
        out[#out + 1] = e .. "=" .. tostring(util.is_internal(e))
      end
      crm.log_activity({ recording_id = meeting.recording_id, title = table.concat(out, " ") })
    end
  )");
  const std::string expected = "münchen.example a@MÜNCHEN.example=true b@sub.xn--mnchen-3ya.example=true "
                               "c@muenchen.example=false";
  // The probe's title with these company domains, for a meeting recorded by `recorder`.
  auto probe = [&](std::vector<std::string> domains, const json& recorder, int64_t rec) {
    json m = json::parse(fixture("mixed.json"));
    m["recorded_by"] = recorder;
    auto o = host_options(dir);
    o.config.mapping = "probe.lua";
    o.config.company_domains = std::move(domains);
    auto host = open_host(o);
    RecordingCrm crm;
    crm.install(*host);
    Status s = host->on_meeting(meeting_event(m.dump(), rec, 1));
    BOOST_REQUIRE_MESSAGE(s.ok(), s.to_string());
    return crm.calls_of("log_activity").at(0).args["title"].get<std::string>();
  };
  const json outsider = {{"name", "Zoe"}, {"email", "zoe@example.org"}, {"email_domain", "example.org"}};
  BOOST_TEST(probe({"XN--MNCHEN-3YA.Example", ""}, outsider, 2700) == expected);
  // None configured: the recorder's domain is ours.
  const json recorder = {{"name", "Jürgen"}, {"email", "j@xn--mnchen-3ya.example"}, {"email_domain", "XN--MNCHEN-3YA.example"}};
  BOOST_TEST(probe({}, recorder, 2701) == expected);
}

// Contacts' emails were lowercased, the recorder's and the assignees' sent as Fathom gave them
// ("Zoe+rec@Example.COM"): one person could be two CRM users. All are lowercase now.
BOOST_AUTO_TEST_CASE(owner_and_assignee_emails_are_lowercase_like_the_contacts) {
  MappingFixture f;
  json m = json::parse(fixture("mixed.json"));
  m["recorded_by"]["email"] = "Alice@Example.COM";
  m["action_items"] = json::array({{{"description", "Send the deck"}, {"completed", false},
                                    {"assignee", {{"name", "Carol"}, {"email", "Carol@EU.Example.com"}}}},
                                   {{"description", "Call back"}, {"completed", false}, {"assignee", nullptr}}});
  Status s = f.map(m.dump(), 2400);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.to_string());
  BOOST_TEST(f.crm.calls_of("log_activity").at(0).args["owner_email"] == "alice@example.com");
  auto tasks = f.crm.calls_of("create_task");
  BOOST_REQUIRE_EQUAL(tasks.size(), 2u);
  BOOST_TEST(tasks[0].args["assignee_email"] == "carol@eu.example.com");
  BOOST_TEST(tasks[1].args["assignee_email"] == "alice@example.com");
}

BOOST_AUTO_TEST_CASE(missing_fields) {
  MappingFixture f;
  std::string raw = fixture("missing_fields.json");
  Status s = f.map(raw, 3003);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.to_string());
  BOOST_TEST(f.crm.ops() == (Ops{"find_company_by_domain", "upsert_company", "upsert_contact", "log_activity",
                                 "find_deal", "attach_recording"}),
             boost::test_tools::per_element());
  json contact = f.crm.calls_of("upsert_contact")[0].args;
  BOOST_TEST(contact["email"] == "pat@newco.test");
  BOOST_TEST(!contact.contains("name"));
  json act = f.crm.calls_of("log_activity")[0].args;
  BOOST_TEST(act["title"] == "Intro call");
  for (const char* absent : {"started_at", "ended_at", "duration_s", "summary", "owner_email", "url"}) {
    BOOST_TEST(!act.contains(absent), absent);
  }
  BOOST_TEST(act["share_url"] == "https://fathom.video/share/Missing3003");
}

BOOST_AUTO_TEST_CASE(reprocessing_creates_no_duplicates) {
  for (const char* name : {"mixed.json", "many_invitees.json", "missing_fields.json"}) {
    BOOST_TEST_CONTEXT(name) {
      MappingFixture f;
      std::string raw = fixture(name);
      int64_t rec = json::parse(raw)["recording_id"];
      BOOST_REQUIRE(f.map(raw, rec).ok());
      size_t records = f.crm.records();
      size_t first_calls = f.crm.calls.size();
      BOOST_TEST(records > 0u);
      // The same event again (a retry, a re-sync): every call carries the same key.
      BOOST_REQUIRE(f.map(raw, rec).ok());
      BOOST_TEST(f.crm.records() == records);
      BOOST_REQUIRE_EQUAL(f.crm.calls.size(), 2 * first_calls);
      for (size_t i = first_calls; i < f.crm.calls.size(); ++i) {
        BOOST_TEST(f.crm.calls[i].replayed, "call " << i << " " << f.crm.calls[i].op << " was not a replay");
        BOOST_TEST(f.crm.calls[i].key == f.crm.calls[i - first_calls].key);
      }
      // A new content version: new keys, but the records are matched, not duplicated.
      BOOST_REQUIRE(f.map(raw, rec, 2).ok());
      BOOST_TEST(f.crm.records() == records);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_failed_crm_call_is_retried_without_duplicates) {
  MappingFixture f;
  f.crm.fail_next["log_activity"] = "CRM timeout";
  std::string raw = fixture("mixed.json");
  Status s = f.map(raw, 123456789);
  BOOST_TEST(s.code() == Code::kScript);
  BOOST_TEST(s.message().find("crm.log_activity failed: CRM timeout (unavailable) [on_meeting, recording 123456789]") !=
                 std::string::npos,
             s.message());
  BOOST_TEST(s.message().find("scripts/mapping.lua:") == 0u, s.message());
  // The caller retries the event: the company and contact calls replay, the rest runs once.
  BOOST_REQUIRE(f.map(raw, 123456789).ok());
  BOOST_TEST(f.crm.companies.size() == 1u);
  BOOST_TEST(f.crm.contacts.size() == 1u);
  BOOST_TEST(f.crm.activities.size() == 1u);
  BOOST_TEST(f.crm.tasks.size() == 1u);
  BOOST_TEST(f.crm.calls_of("upsert_company")[1].replayed);
}

BOOST_AUTO_TEST_CASE(hosts_without_attach_recording) {
  ScriptDir dir;
  dir.copy_in(source_path("scripts/mapping.lua"), "mapping.lua");
  auto host = open_host(host_options(dir));
  RecordingCrm crm;
  crm.install(*host, {"find_company_by_domain", "upsert_company", "upsert_contact", "log_activity", "create_task"});
  std::string raw = fixture("mixed.json");
  BOOST_REQUIRE(host->on_meeting(meeting_event(raw, 123456789)).ok());
  BOOST_TEST(crm.ops() == (Ops{"find_company_by_domain", "upsert_company", "upsert_contact", "log_activity", "create_task"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(example_rules)

BOOST_AUTO_TEST_CASE(route_by_domain_gives_key_accounts_to_their_owner) {
  MappingFixture f("route_by_domain.lua");
  std::string raw = fixture("mixed.json");
  Status s = f.map(raw, 123456789);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.to_string());
  BOOST_TEST(f.crm.calls_of("log_activity")[0].args["owner_email"] == "bob@example.com");
  // A meeting with no key account keeps the recorder as owner.
  json m = json::parse(raw);
  m["calendar_invitees"][1]["email"] = "zed@other.test";
  std::string other = m.dump();
  BOOST_REQUIRE(f.map(other, 5).ok());
  BOOST_TEST(f.crm.calls_of("log_activity")[1].args["owner_email"] == "alice@example.com");
}

BOOST_AUTO_TEST_CASE(long_meetings_only_skips_short_calls) {
  MappingFixture f("long_meetings_only.lua");
  std::string raw = fixture("mixed.json");
  BOOST_REQUIRE(f.map(raw, 123456789).ok());
  BOOST_TEST(f.crm.calls_of("log_activity").size() == 1u);
  json m = json::parse(raw);
  m["recording_end_time"] = "2025-03-01T16:05:00Z";  // under 4 minutes
  std::string short_call = m.dump();
  BOOST_REQUIRE(f.map(short_call, 6).ok());
  BOOST_TEST(f.crm.calls_of("log_activity").size() == 1u);
}

BOOST_AUTO_TEST_CASE(deal_from_title_opens_a_deal_for_matching_titles) {
  MappingFixture f("deal_from_title.lua");
  std::string raw = fixture("mixed.json");
  BOOST_REQUIRE(f.map(raw, 123456789).ok());
  BOOST_TEST(f.crm.calls_of("create_deal").empty());  // "onboarding" is not a deal title
  json m = json::parse(raw);
  m["title"] = "Acme pricing review";
  std::string pricing = m.dump();
  BOOST_REQUIRE(f.map(pricing, 7).ok());
  auto deals = f.crm.calls_of("create_deal");
  BOOST_REQUIRE_EQUAL(deals.size(), 1u);
  BOOST_TEST(deals[0].args["name"] == "Acme pricing review");
  BOOST_TEST(deals[0].args["source"] == "fathom:pricing");
  BOOST_TEST(deals[0].args["owner_email"] == "alice@example.com");
  BOOST_TEST(f.crm.calls_of("attach_recording").back().args["record_type"] == "deal");
  // The deal exists now: the next matching meeting does not open another.
  m["title"] = "Acme demo";
  std::string demo = m.dump();
  BOOST_REQUIRE(f.map(demo, 8).ok());
  BOOST_TEST(f.crm.calls_of("create_deal").size() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
