// Every CRM operation is attributed to the script version that made it (issue 15): the sync job
// log and the webhook event records say which stored versions their CRM operations ran on, and
// they follow an activation.
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/clock.h"
#include "e2e/host_fixture.h"
#include "fathom_bridge/bridge.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using nlohmann::json;
using namespace fb::test;

namespace {

// The host's CRM, remembering the script version of every call it gets.
struct VersionedCrm {
  explicit VersionedCrm(Host& h) : host(h) {
    for (const char* op : kCrmOps) {
      BOOST_REQUIRE(h.bridge->register_crm_operation(op, [this](const fb::CrmCall& c) -> fb::Result<std::string> {
        std::lock_guard lock(mu);
        versions.push_back(c.script_version);
        return c.operation.rfind("find_", 0) == 0 ? std::string("null") : std::string(R"({"id":"x"})");
      }).ok());
    }
  }
  // The versions of the calls since the last take().
  std::vector<int64_t> take() {
    std::lock_guard lock(mu);
    return std::exchange(versions, {});
  }
  // Declared after the host, so destroyed first: the host's workers must be gone before mu is.
  ~VersionedCrm() { host.shutdown(); }
  Host& host;
  std::mutex mu;
  std::vector<int64_t> versions;
};

// Imports folder as a version of tenant's scripts and activates it; its id.
int64_t activate_folder(Host& h, const std::string& tenant, const std::string& folder, const std::string& note) {
  auto v = h.bridge->script_import(tenant, folder, "admin", note);
  BOOST_REQUIRE_MESSAGE(v.ok(), v.status().to_string());
  const int64_t id = json::parse(*v)["id"];
  auto a = h.bridge->script_activate(tenant, id, "admin");
  BOOST_REQUIRE_MESSAGE(a.ok(), a.status().to_string());
  return id;
}

int64_t add_meeting(Host& h, bool with_webhook) {
  json made = h.sim.admin("POST", "/_sim/meetings",
                          {{"count", 1}, {"recorded_by", "alice@example.com"}, {"complete", with_webhook}});
  return made["recording_ids"][0];
}

// A sync of the integration; the job's row as the job log lists it.
json sync_job(Host& h, const fb::Caller& caller, int64_t integration) {
  auto summary = h.bridge->sync(caller, integration, {});
  BOOST_REQUIRE_MESSAGE(summary.ok(), summary.status().to_string());
  const int64_t job = json::parse(*summary)["id"];
  auto jobs = h.bridge->sync_jobs_json(integration, "", 20);
  BOOST_REQUIRE(jobs.ok());
  for (const json& j : json::parse(*jobs)) {
    if (j["id"] == job) return j;
  }
  BOOST_FAIL("job " << job << " is not in the job log: " << *jobs);
  return {};
}

// The done webhook event of recording_id, as the webhook event listing shows it (null until done).
json webhook_event(Host& h, int64_t integration, int64_t recording_id) {
  auto events = h.bridge->webhook_events_json("done", integration, 50);
  BOOST_REQUIRE(events.ok());
  for (const json& e : json::parse(*events)) {
    if (e["recording_id"] == recording_id) return e;
  }
  return nullptr;
}

}  // namespace

BOOST_AUTO_TEST_CASE(each_crm_operation_s_script_version_is_in_the_job_log_and_the_webhook_record) {
  Host h(json::object(), {"--meetings", "2", "--seed", "9"});
  VersionedCrm crm(h);
  const fb::Caller alice{"acme", "alice", ""};
  const int64_t id = h.connect("acme", "alice", "alice@example.com");

  // A second version: the default scripts with one comment more (another content hash).
  const std::string v2_dir = h.dir.file("scripts-v2");
  BOOST_REQUIRE(std::system(("cp -r '" + std::string(FB_SOURCE_DIR) + "/scripts' '" + v2_dir + "'").c_str()) == 0);
  std::ofstream(v2_dir + "/mapping.lua", std::ios::app) << "\n-- v2: the same rules, a new version\n";

  std::vector<int64_t> seen;
  for (const auto& [folder, note] : {std::pair{std::string(FB_SOURCE_DIR) + "/scripts", "v1"}, std::pair{v2_dir, "v2"}}) {
    const int64_t version = activate_folder(h, "acme", folder, note);
    seen.push_back(version);
    const json expected = json::array({version});

    // A sync that maps a new meeting (no webhook for it): its job says which version made its calls.
    add_meeting(h, false);
    (void)crm.take();
    json job = sync_job(h, alice, id);
    std::vector<int64_t> calls = crm.take();
    BOOST_TEST_REQUIRE(!calls.empty(), "the " << note << " sync made no CRM call: " << job.dump());
    for (int64_t v : calls) BOOST_TEST(v == version);
    BOOST_TEST(job["script_versions"] == expected, note << " job: " << job.dump());

    // A webhook for another new meeting: its event record says the same.
    const int64_t recording = add_meeting(h, true);
    BOOST_REQUIRE_MESSAGE(eventually([&] { return !webhook_event(h, id, recording).is_null(); }),
                          "the " << note << " webhook was not processed");
    calls = crm.take();
    BOOST_TEST_REQUIRE(!calls.empty(), "the " << note << " webhook made no CRM call");
    for (int64_t v : calls) BOOST_TEST(v == version);
    const json event = webhook_event(h, id, recording);
    BOOST_TEST(event["script_versions"] == expected, note << " event: " << event.dump());
  }
  BOOST_TEST(seen[0] != seen[1]);

  // The CLI's / sidecar's listings are the same JSON: the job log over HTTP shows the attribution.
  HttpReply jobs = h.get("/v1/sync/jobs?integration_id=" + std::to_string(id));
  BOOST_TEST_REQUIRE(jobs.status == 200, jobs.body);
  BOOST_TEST(jobs.body.find("\"script_versions\":[" + std::to_string(seen[1]) + "]") != std::string::npos, jobs.body);
}

// Validation over a period (issue 15: "validate against last week's meetings"): only the stored
// meetings created in [since, until) are dry-run, through the C++ API and the sidecar.
BOOST_AUTO_TEST_CASE(validation_over_a_period_dry_runs_only_the_meetings_created_in_it) {
  Host h(json::object(), {"--meetings", "1", "--seed", "9"});
  const fb::Caller alice{"acme", "alice", ""};
  const int64_t id = h.connect("acme", "alice", "alice@example.com");
  auto made = [&](const char* created_at) -> int64_t {
    json m = h.sim.admin("POST", "/_sim/meetings",
                         {{"count", 1}, {"recorded_by", "alice@example.com"}, {"created_at", created_at}});
    return m["recording_ids"][0];
  };
  const int64_t january = made("2024-01-10T10:00:00Z");
  const int64_t march = made("2024-03-10T10:00:00Z");
  int64_t jan1 = 0, feb1 = 0, mar1 = 0, apr1 = 0;
  BOOST_REQUIRE(fb::detail::parse_iso8601("2024-01-01T00:00:00Z", &jan1) &&
                fb::detail::parse_iso8601("2024-02-01T00:00:00Z", &feb1) &&
                fb::detail::parse_iso8601("2024-03-01T00:00:00Z", &mar1) &&
                fb::detail::parse_iso8601("2024-04-01T00:00:00Z", &apr1));
  auto synced = h.bridge->sync(alice, id, {"manual", jan1, apr1, 0});
  BOOST_REQUIRE_MESSAGE(synced.ok(), synced.status().to_string());
  auto v = h.bridge->script_import("acme", std::string(FB_SOURCE_DIR) + "/scripts", "admin", "candidate");
  BOOST_REQUIRE_MESSAGE(v.ok(), v.status().to_string());
  const int64_t version = json::parse(*v)["id"];

  auto recordings = [&](int64_t since, int64_t until) {
    auto r = h.bridge->script_validate("acme", version, 50, since, until);
    BOOST_REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    const json report = json::parse(*r);
    std::vector<int64_t> ids;
    for (const json& m : report["meetings"]) ids.push_back(m["recording_id"]);
    return ids;
  };
  BOOST_TEST(recordings(mar1, apr1) == std::vector<int64_t>{march});
  BOOST_TEST(recordings(jan1, feb1) == std::vector<int64_t>{january});
  BOOST_TEST(recordings(feb1, mar1).empty());
  const std::vector<int64_t> all = recordings(0, 0);
  BOOST_TEST(std::count(all.begin(), all.end(), january) == 1);
  BOOST_TEST(std::count(all.begin(), all.end(), march) == 1);
  BOOST_TEST(h.bridge->script_validate("acme", version, 50, apr1, mar1).status().code() == fb::Code::kInvalidArgument);

  HttpReply http = h.post("/v1/scripts/validate", {{"tenant_id", "acme"}, {"version_id", version}, {"since", mar1}, {"until", apr1}});
  BOOST_TEST_REQUIRE(http.status == 200, http.body);
  json out = http.json();
  BOOST_TEST(out["meetings"].size() == 1u);
  BOOST_TEST(out["meetings"][0]["recording_id"] == march);
  BOOST_TEST(out["since"] == mar1);

  // The command-line tool, another process on the same store: `script validate --since --until`.
  const std::string cfg = h.dir.file("cli-config.json");
  std::ofstream(cfg) << h.config_json.dump();
  auto cli = [&](const std::string& args) {
    CommandResult r = run_command(std::string(FB_BINARY_DIR) + "/plugin/cli/fathom-bridge script " + args +
                                  " --tenant acme --config " + cfg + " 2>&1");
    BOOST_REQUIRE(r.ran);
    return r;
  };
  const std::string version_arg = std::to_string(version);
  CommandResult march_only = cli("validate " + version_arg + " --since 2024-03-01T00:00:00Z --until 2024-04-01T00:00:00Z --json");
  BOOST_TEST_REQUIRE(march_only.exit_code == 0, march_only.output);
  const json cli_report = json::parse(march_only.output);
  BOOST_TEST_REQUIRE(cli_report["meetings"].size() == 1u, march_only.output);
  BOOST_TEST(cli_report["meetings"][0]["recording_id"] == march);
  CommandResult february = cli("validate " + version_arg + " --since 2024-02-01T00:00:00Z --until 2024-03-01T00:00:00Z --json");
  BOOST_TEST_REQUIRE(february.exit_code == 0, february.output);
  BOOST_TEST(json::parse(february.output)["meetings"].empty(), february.output);
  CommandResult not_a_time = cli("validate " + version_arg + " --since last-week");
  BOOST_TEST(not_a_time.exit_code == 2);
  BOOST_TEST(not_a_time.output.find("--since is not an ISO 8601 time") != std::string::npos, not_a_time.output);
  CommandResult reversed = cli("validate " + version_arg + " --since 2024-04-01T00:00:00Z --until 2024-03-01T00:00:00Z");
  BOOST_TEST(reversed.exit_code != 0);
  BOOST_TEST(reversed.output.find("until") != std::string::npos, reversed.output);
}
