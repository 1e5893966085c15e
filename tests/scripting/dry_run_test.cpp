// `fathom-bridge script test`: output and exit codes, in process and through the fb-script-test
// program.
#define BOOST_TEST_MODULE fb_script_dry_run_test
#include <boost/test/unit_test.hpp>

#include <sys/wait.h>

#include <cstdio>

#include "core/log.h"
#include "scripting/dry_run.h"
#include "scripting_test_util.h"

using namespace fb;
using namespace fb::test;

namespace {

struct Run {
  int code = -1;
  std::string out;
  std::string err;
};

Run dry_run(std::vector<std::string> args) {
  args.insert(args.begin(), "script-test");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  std::ostringstream out, err;
  Run r;
  r.code = detail::run_script_test(static_cast<int>(argv.size()), argv.data(), out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

struct DryFixture {
  ScriptDir dir;
  std::string meeting;
  DryFixture() {
    dir.copy_in(source_path("scripts/mapping.lua"), "mapping.lua");
    meeting = dir.root() + "/meeting.json";
    std::ofstream(meeting) << fixture("mixed.json");
  }
  std::string script(const std::string& rel = "mapping.lua") const { return dir.dir() + "/" + rel; }
};

bool has(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

}  // namespace

BOOST_AUTO_TEST_CASE(prints_the_operations_and_exits_0) {
  DryFixture f;
  Run r = dry_run({f.script(), "--meeting", f.meeting});
  BOOST_TEST(r.code == 0, r.err);
  BOOST_TEST(has(r.out, "script test: scripts/mapping.lua, hook on_meeting, 1 meeting"), r.out);
  BOOST_TEST(has(r.out, "meeting 123456789 \"Acme onboarding call\": 7 CRM operations"), r.out);
  BOOST_TEST(has(r.out, "1. crm.find_company_by_domain {\"domain\":\"acme.test\"}"), r.out);
  BOOST_TEST(has(r.out, "2. crm.upsert_company {\"domain\":\"acme.test\",\"name\":\"Acme\"}"), r.out);
  BOOST_TEST(has(r.out, "-> {\"id\":\"dry-upsert_company-1\"}"), r.out);
  BOOST_TEST(has(r.out, "7. crm.attach_recording"), r.out);
  BOOST_TEST(r.out.substr(r.out.size() - 3) == "ok\n", r.out);
  BOOST_TEST(r.err.empty(), r.err);
}

BOOST_AUTO_TEST_CASE(json_output) {
  DryFixture f;
  Run r = dry_run({f.script(), "--meeting", f.meeting, "--json"});
  BOOST_TEST(r.code == 0, r.err);
  json j = json::parse(r.out);
  BOOST_TEST(j["ok"] == true);
  BOOST_TEST(j["script"] == "scripts/mapping.lua");
  BOOST_REQUIRE_EQUAL(j["meetings"].size(), 1u);
  const json& m = j["meetings"][0];
  BOOST_TEST(m["recording_id"] == 123456789);
  BOOST_REQUIRE_EQUAL(m["operations"].size(), 7u);
  BOOST_TEST(m["operations"][2]["operation"] == "upsert_contact");
  BOOST_TEST(m["operations"][2]["args"]["email"] == "bob@acme.test");
  BOOST_TEST(m["operations"][0]["result"].is_null());
  BOOST_TEST(m["operations"][2]["idempotency_key"] == "fb1:0:rec123456789.v1:on_meeting:upsert_contact:1");
}

BOOST_AUTO_TEST_CASE(logs_several_meetings_and_canned_results) {
  DryFixture f;
  json doc = {{"items", json::array({json::parse(fixture("internal_only.json")), json::parse(fixture("mixed.json"))})}};
  std::string file = f.dir.root() + "/page.json";
  std::ofstream(file) << doc.dump();
  std::string canned = f.dir.root() + "/answers.json";
  std::ofstream(canned) << R"({"find_company_by_domain": {"id": "co_9", "name": "Acme"}, "find_deal": {"id": "deal_3"}})";
  Run r = dry_run({f.script(), "--meeting", file, "--crm-results", canned});
  BOOST_TEST(r.code == 0, r.err);
  BOOST_TEST(has(r.out, "2 meetings"), r.out);
  BOOST_TEST(has(r.out, "meeting 1001 \"Weekly sales sync\": 0 CRM operations"), r.out);
  BOOST_TEST(has(r.out, "log INFO [scripts/mapping.lua] skipping internal-only meeting 1001"), r.out);
  BOOST_TEST(!has(r.out, "crm.upsert_company"), r.out);  // the canned find answered
  BOOST_TEST(has(r.out, "\"record_id\":\"deal_3\",\"record_type\":\"deal\""), r.out);
}

BOOST_AUTO_TEST_CASE(a_script_error_exits_1_with_file_and_line) {
  DryFixture f;
  f.dir.write("broken.lua", "function on_meeting(m)\n  local x = m.recorded_by\n  return x.missing.name\nend\n");
  Run r = dry_run({f.script("broken.lua"), "--meeting", f.meeting});
  BOOST_TEST(r.code == 1);
  std::string want = "scripts/broken.lua:3: attempt to index a nil value (field 'missing') [on_meeting, recording 123456789]";
  BOOST_TEST(has(r.out, "error: " + want), r.out);
  BOOST_TEST(has(r.err, want), r.err);
  BOOST_TEST(has(r.out, "FAILED"), r.out);
  r = dry_run({f.script("broken.lua"), "--meeting", f.meeting, "--json"});
  BOOST_TEST(r.code == 1);
  json j = json::parse(r.out);
  BOOST_TEST(j["ok"] == false);
  BOOST_TEST(j["meetings"][0]["error"] == want);
}

BOOST_AUTO_TEST_CASE(a_load_error_exits_1_with_file_and_line) {
  DryFixture f;
  f.dir.write("syntax.lua", "function on_meeting(m)\n  if m then\nend\n");
  Run r = dry_run({f.script("syntax.lua"), "--meeting", f.meeting});
  BOOST_TEST(r.code == 1);
  BOOST_TEST(has(r.out, "scripts/syntax.lua failed to load"), r.out);
  BOOST_TEST(has(r.err, "scripts/syntax.lua:4:"), r.err);
  BOOST_TEST(has(r.err, "[load]"), r.err);
}

BOOST_AUTO_TEST_CASE(an_undocumented_operation_fails_unless_allowed) {
  DryFixture f;
  f.dir.write("typo.lua", "function on_meeting(m)\n  crm.upsert_contcat({ email = 'x@y.test' })\nend\n");
  Run r = dry_run({f.script("typo.lua"), "--meeting", f.meeting});
  BOOST_TEST(r.code == 1);
  BOOST_TEST(has(r.err, "scripts/typo.lua:2: crm.upsert_contcat: no such CRM operation"), r.err);
  r = dry_run({f.script("typo.lua"), "--meeting", f.meeting, "--allow-op", "upsert_contcat"});
  BOOST_TEST(r.code == 0, r.err);
  BOOST_TEST(has(r.out, "1. crm.upsert_contcat {\"email\":\"x@y.test\"}"), r.out);
}

BOOST_AUTO_TEST_CASE(the_webhook_hook_and_scripts_dir) {
  DryFixture f;
  f.dir.copy_in(source_path("scripts/reactions.lua"), "reactions.lua");
  json m = json::parse(fixture("mixed.json"));
  m["action_items"] = json::array();
  std::ofstream(f.meeting) << m.dump();
  Run r = dry_run({f.script("reactions.lua"), "--meeting", f.meeting, "--hook", "on_webhook", "--scripts-dir", f.dir.dir()});
  BOOST_TEST(r.code == 0, r.err);
  BOOST_TEST(has(r.out, "crm.create_task"), r.out);
  BOOST_TEST(has(r.out, "\"kind\":\"follow_up\""), r.out);
}

BOOST_AUTO_TEST_CASE(usage_errors_exit_2) {
  DryFixture f;
  std::string bad_json = f.dir.root() + "/bad.json";
  std::ofstream(bad_json) << "{ not json";
  ScriptDir other;
  struct Case {
    std::vector<std::string> args;
    const char* says;
    bool usage;  // argument errors print the usage line too
  } cases[] = {
      {{}, "missing <script>", true},
      {{f.script()}, "missing --meeting", true},
      {{f.script(), "--meeting"}, "--meeting needs a value", true},
      {{f.script(), "--meeting", f.meeting, "--hook", "on_nothing"}, "--hook must be on_meeting, on_webhook", true},
      {{f.script(), "--meeting", f.meeting, "--frobnicate"}, "unknown option --frobnicate", true},
      {{f.script("nope.lua"), "--meeting", f.meeting}, "is not a readable file", false},
      {{f.script(), "--meeting", f.dir.root() + "/absent.json"}, "cannot read meeting file", false},
      {{f.script(), "--meeting", bad_json}, "is not valid JSON", false},
      {{f.script(), "--meeting", f.meeting, "--scripts-dir", other.dir()}, "is not inside the scripts directory", false},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.says) {
      Run r = dry_run(c.args);
      BOOST_TEST(r.code == 2);
      BOOST_TEST(has(r.err, c.says), r.err);
      BOOST_TEST(has(r.err, "usage:") == c.usage, r.err);
    }
  }
}

BOOST_AUTO_TEST_CASE(the_program_exit_codes) {
  DryFixture f;
  f.dir.write("broken.lua", "function on_meeting(m) error('nope') end\n");
  std::string prog = std::string(FB_BINARY_DIR) + "/plugin/scripting/fb-script-test";
  auto status_of = [&](const std::string& args) {
    int st = std::system((prog + " " + args + " >/dev/null 2>&1").c_str());
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  };
  BOOST_TEST(status_of(f.script() + " --meeting " + f.meeting) == 0);
  BOOST_TEST(status_of(f.script("broken.lua") + " --meeting " + f.meeting) == 1);
  BOOST_TEST(status_of(f.script()) == 2);
}

BOOST_AUTO_TEST_CASE(the_documented_operations_are_the_ones_the_guide_documents) {
  std::string guide = ScriptDir::read_file(source_path("scripts/README.md"));
  for (const auto& op : detail::documented_crm_operations()) {
    BOOST_TEST(has(guide, "### `" + op + "`"), op);
  }
  size_t headings = 0;
  for (size_t at = guide.find("### `"); at != std::string::npos; at = guide.find("### `", at + 1)) ++headings;
  BOOST_TEST(headings == detail::documented_crm_operations().size());
}

// Golden tests (issue 15): --expect names the CRM operations a meeting must produce.
BOOST_AUTO_TEST_CASE(golden_test_passes_and_fails_with_a_readable_diff) {
  DryFixture f;
  Run once = dry_run({f.script(), "--meeting", f.meeting, "--json"});
  BOOST_REQUIRE(once.code == 0);
  json report = json::parse(once.out);
  json expected = json::array();
  for (const auto& op : report["meetings"][0]["operations"]) {
    expected.push_back({{"operation", op["operation"]}, {"args", op["args"]}});
  }
  std::string golden = f.dir.root() + "/expected.json";
  std::ofstream(golden) << expected.dump(2);
  Run pass = dry_run({f.script(), "--meeting", f.meeting, "--expect", golden});
  BOOST_TEST(pass.code == 0, pass.out);
  BOOST_TEST(has(pass.out, "golden: as expected"), pass.out);

  // The rule changes: the activity's title, and one operation fewer.
  std::string mapping = ScriptDir::read_file(f.script());
  const std::string title = "title = text(meeting.title) or text(meeting.meeting_title) or \"Fathom meeting\",";
  BOOST_REQUIRE(mapping.find(title) != std::string::npos);
  mapping.replace(mapping.find(title), title.size(), "title = \"[Fathom] \" .. text(meeting.title),");
  f.dir.write("mapping.lua", mapping);
  expected.push_back({{"operation", "create_deal"}, {"args", {{"name", "Acme"}}}});
  std::ofstream(golden) << expected.dump(2);
  Run fail = dry_run({f.script(), "--meeting", f.meeting, "--expect", golden});
  BOOST_TEST(fail.code == 1);
  BOOST_TEST(has(fail.out, "golden: the CRM operations differ from " + golden), fail.out);
  BOOST_TEST(has(fail.out, "crm.log_activity: args.title: expected \"Acme onboarding call\", got \"[Fathom] Acme onboarding call\""),
             fail.out);
  BOOST_TEST(has(fail.out, "missing: crm.create_deal {\"name\":\"Acme\"}"), fail.out);
  BOOST_TEST(has(fail.out, "FAILED"), fail.out);

  std::ofstream(golden) << "{ not json";
  Run bad = dry_run({f.script(), "--meeting", f.meeting, "--expect", golden});
  BOOST_TEST(bad.code == 2);
  BOOST_TEST(has(bad.err, "--expect"), bad.err);
}

// The reaction hooks run in dry-run mode too, on a fabricated event or one from a file.
BOOST_AUTO_TEST_CASE(reaction_hooks_dry_run_on_a_fabricated_or_given_event) {
  DryFixture f;
  f.dir.copy_in(source_path("scripts/reactions.lua"), "reactions.lua");
  Run fabricated = dry_run({f.script("reactions.lua"), "--hook", "on_token_failure", "--json"});
  BOOST_TEST(fabricated.code == 0, fabricated.err + fabricated.out);
  json r = json::parse(fabricated.out);
  const json& ops = r["meetings"][0]["operations"];
  BOOST_REQUIRE(ops.size() == 1u);
  BOOST_TEST(ops[0]["operation"] == "create_task");
  BOOST_TEST(ops[0]["args"].dump().find("invalid_grant") != std::string::npos, ops[0]["args"].dump());

  std::string event = f.dir.root() + "/event.json";
  std::ofstream(event) << R"({"integration": {"id": 42, "tenant_id": "acme", "user_id": "u7"}, "reason": "revoked_by_user"})";
  Run given = dry_run({f.script("reactions.lua"), "--hook", "on_token_failure", "--event", event, "--json"});
  BOOST_TEST(given.code == 0, given.err + given.out);
  json g = json::parse(given.out);
  BOOST_TEST(g["meetings"][0]["operations"][0]["args"].dump().find("revoked_by_user") != std::string::npos);
  BOOST_TEST(g["meetings"][0]["operations"][0]["idempotency_key"].get<std::string>().rfind("fb1:42:", 0) == 0);

  Run sync = dry_run({f.script("reactions.lua"), "--hook", "on_sync_complete"});
  BOOST_TEST(sync.code == 0, sync.err + sync.out);
}
