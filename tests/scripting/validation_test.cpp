// Validation of a candidate script version (issue 15): the shipped mapping and a copy with one
// changed rule, both run in dry-run mode over the same meetings through real Lua, and the
// difference of their CRM operations per meeting.
#include <boost/test/unit_test.hpp>

#include "scripting/script_validation.h"
#include "scripting_test_util.h"

namespace fb::test {
namespace {

std::vector<detail::ValidationMeeting> meetings() {
  std::vector<detail::ValidationMeeting> out;
  int64_t rec = 100;
  for (const char* name : {"mixed.json", "internal_only.json", "many_invitees.json"}) {
    json m = json::parse(fixture(name));
    m["recording_id"] = ++rec;
    out.push_back({7, "acme", "u42", rec, 1, m.value("title", ""), m.dump()});
  }
  return out;
}

ScriptConfig config() {
  ScriptConfig c;
  c.company_domains = {"example.com"};
  return c;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(script_validation)

BOOST_AUTO_TEST_CASE(a_changed_rule_shows_as_changed_added_and_removed_operations) {
  std::string shipped = ScriptDir::read_file(source_path("scripts/mapping.lua"));
  // The changed rule: activities get a prefixed title, and no tasks are made from action items.
  std::string candidate = shipped;
  const std::string title = "title = text(meeting.title) or text(meeting.meeting_title) or \"Fathom meeting\",";
  const std::string tasks = "crm.create_task({";
  BOOST_REQUIRE(candidate.find(title) != std::string::npos);
  BOOST_REQUIRE(candidate.find(tasks) != std::string::npos);
  candidate.replace(candidate.find(title), title.size(),
                    "title = \"[Fathom] \" .. (text(meeting.title) or \"meeting\"),");
  candidate.replace(candidate.find(tasks), tasks.size(), "local _ = ({");
  // A rule that only the candidate has: one more CRM operation per meeting.
  // (before the script's final `return`, which ends a chunk)
  size_t last_return = candidate.rfind("\nreturn");
  BOOST_REQUIRE(last_return != std::string::npos);
  candidate.insert(last_return + 1,
                   "local base_on_meeting = on_meeting\nfunction on_meeting(meeting, ctx)\n"
                   "  base_on_meeting(meeting, ctx)\n  crm.upsert_company({ domain = 'audit.example.org' })\nend\n");

  auto ms = meetings();
  auto before = detail::dry_run_meetings(config(), {{"mapping.lua", shipped}}, "v1", "on_meeting", ms);
  auto after = detail::dry_run_meetings(config(), {{"mapping.lua", candidate}}, "v2", "on_meeting", ms);
  BOOST_REQUIRE_MESSAGE(before.ok(), before.status().to_string());
  BOOST_REQUIRE_MESSAGE(after.ok(), after.status().to_string());
  json diff = detail::diff_dry_runs(ms, *after, *before);
  BOOST_TEST_MESSAGE(diff["summary"].dump());

  const json& first = diff["meetings"][0];  // mixed.json: external invitees and action items
  BOOST_TEST(first["recording_id"].get<int64_t>() == 101);
  bool title_changed = false;
  for (const auto& c : first["changed"]) {
    if (c["operation"] == "log_activity") {
      title_changed = c["after"]["title"].get<std::string>().rfind("[Fathom] ", 0) == 0 &&
                      c["before"]["title"].get<std::string>().rfind("[Fathom] ", 0) != 0;
    }
  }
  BOOST_TEST(title_changed);
  int removed_tasks = 0, added_companies = 0;
  for (const auto& r : first["removed"]) removed_tasks += r["operation"] == "create_task";
  for (const auto& a : first["added"]) {
    added_companies += a["operation"] == "upsert_company" && a["args"]["domain"] == "audit.example.org";
  }
  BOOST_TEST(removed_tasks > 0);
  BOOST_TEST(added_companies == 1);
  BOOST_TEST(first["unchanged"].get<int64_t>() > 0);  // the contacts are the same
  BOOST_TEST(diff["summary"]["meetings"].get<int64_t>() == 3);
  BOOST_TEST(diff["summary"]["meetings_changed"].get<int64_t>() == 3);
  BOOST_TEST(diff["summary"]["errors"].get<int64_t>() == 0);

  // The same version against itself: nothing to report.
  json same = detail::diff_dry_runs(ms, *before, *before);
  BOOST_TEST(same["summary"]["meetings_changed"].get<int64_t>() == 0);
  BOOST_TEST(same["summary"]["added"].get<int64_t>() == 0);
}

BOOST_AUTO_TEST_CASE(a_candidate_that_raises_is_reported_per_meeting_with_file_and_line) {
  std::string bad = "function on_meeting(meeting, ctx)\n  if meeting.recording_id == 102 then error('bad rule') end\n"
                    "  crm.upsert_company({ domain = 'x.example.org' })\nend\n";
  auto ms = meetings();
  auto r = detail::dry_run_meetings(config(), {{"mapping.lua", bad}}, "v9", "on_meeting", ms);
  BOOST_REQUIRE(r.ok());
  BOOST_TEST((*r)[0]["ok"].get<bool>());
  BOOST_TEST(!(*r)[1]["ok"].get<bool>());
  BOOST_TEST((*r)[1]["error"].get<std::string>().find("v9/mapping.lua:2:") != std::string::npos);
  BOOST_TEST((*r)[2]["operations"].size() == 1u);  // a fresh state after the failure
  auto broken = detail::dry_run_meetings(config(), {{"mapping.lua", "x = = 1\n"}}, "v9", "on_meeting", ms);
  BOOST_TEST(!broken.ok());
  BOOST_TEST(broken.status().message().find("v9/mapping.lua:1:") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace fb::test
