// mapping_bench: realistic meetings through the default mapping script (scripts/mapping.lua),
// one worker per thread, through the real ScriptHost (pool, sandbox, limits, bindings).
//
//   fb_mapping_bench [--meetings N] [--threads N] [--transcript-lines N]
//
// Prints meetings/s per worker without and with a long transcript, the share of time building
// Lua tables from JSON versus running the script, memory per Lua state, and the two design
// measurements behind plugin/scripting/README.md: hook armed by the watchdog vs always, and
// read-only proxies vs a fresh environment per event. CRM handlers answer a constant without
// parsing, so the figures are the scripting layer's own cost.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/log.h"
#include "scripting/script_host.h"

using nlohmann::json;
namespace fs = std::filesystem;
using fb::detail::ScriptHost;
using fb::detail::ScriptHostOptions;

namespace {

struct Args {
  int meetings = 20000;
  int threads = 1;
  int transcript_lines = 1200;  // about a one-hour call
};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A meeting shaped like Fathom's (fathom-api.md 6.1): 8 invitees (3 external companies, one
// personal address), 3 action items, a summary, CRM matches.
json make_meeting(int64_t rec, int transcript_lines) {
  json inv = json::array();
  const char* people[][2] = {{"Alice Example", "alice@example.com"}, {"Bob Example", "bob@example.com"},
                             {"Ann Client", "ann@acme.test"},       {"Ben Client", "ben@acme.test"},
                             {"Dee Partner", "dee@globex.test"},    {"Eve Partner", "eve@globex.test"},
                             {"Fay Vendor", "fay@initech.test"},    {"Jo Personal", "jo@gmail.com"}};
  for (auto& p : people) {
    std::string email = p[1];
    std::string domain = email.substr(email.find('@') + 1);
    inv.push_back({{"name", p[0]}, {"matched_speaker_display_name", p[0]}, {"email", email},
                   {"email_domain", domain}, {"is_external", domain != "example.com"}});
  }
  json items = json::array();
  for (int i = 0; i < 3; ++i) {
    items.push_back({{"description", "Follow up on item " + std::to_string(i) + " discussed with the client team"},
                     {"user_generated", false}, {"completed", false},
                     {"recording_timestamp", "00:1" + std::to_string(i) + ":45"},
                     {"recording_playback_url", "https://fathom.video/calls/" + std::to_string(rec) + "#t=645"},
                     {"assignee", {{"name", i == 1 ? "Ann Client" : "Alice Example"},
                                   {"email", i == 1 ? "ann@acme.test" : "alice@example.com"}, {"team", "Sales"}}}});
  }
  std::string summary = "## Summary\n";
  for (int i = 0; i < 12; ++i) summary += "- Point " + std::to_string(i) + ": the client asked about pricing, rollout and support.\n";
  json m = {{"title", "Acme quarterly review"}, {"meeting_title", "Acme x Example QBR"}, {"recording_id", rec},
            {"url", "https://fathom.video/calls/" + std::to_string(rec)},
            {"share_url", "https://fathom.video/share/S" + std::to_string(rec)},
            {"created_at", "2025-03-01T17:01:30Z"}, {"scheduled_start_time", "2025-03-01T16:00:00Z"},
            {"scheduled_end_time", "2025-03-01T17:00:00Z"}, {"recording_start_time", "2025-03-01T16:01:12Z"},
            {"recording_end_time", "2025-03-01T17:00:55Z"},
            {"calendar_invitees_domains_type", "one_or_more_external"}, {"transcript_language", "en"},
            {"calendar_invitees", inv},
            {"recorded_by", {{"name", "Alice Example"}, {"email", "alice@example.com"},
                             {"email_domain", "example.com"}, {"team", "Sales"}}},
            {"default_summary", {{"template_name", "general"}, {"markdown_formatted", summary}}},
            {"action_items", items},
            {"crm_matches", {{"contacts", json::array({{{"name", "Ann Client"}, {"email", "ann@acme.test"},
                                                        {"record_url", "https://crm.example.test/contacts/1"}}})},
                             {"companies", json::array({{{"name", "Acme"}, {"record_url", "https://crm.example.test/companies/2"}}})},
                             {"deals", json::array()}, {"error", nullptr}}}};
  if (transcript_lines > 0) {
    json tr = json::array();
    for (int i = 0; i < transcript_lines; ++i) {
      char ts[16];
      std::snprintf(ts, sizeof ts, "%02d:%02d:%02d", i / 1200, (i / 20) % 60, (i * 3) % 60);
      tr.push_back({{"speaker", {{"display_name", i % 2 ? "Ann Client" : "Alice Example"},
                                 {"matched_calendar_invitee_email", i % 2 ? json(nullptr) : json("alice@example.com")}}},
                    {"text", "So the next step on our side is to confirm the rollout plan and the pricing tiers."},
                    {"timestamp", ts}});
    }
    m["transcript"] = tr;
  }
  return m;
}

struct Result {
  double per_sec = 0;       // meetings per second per worker
  double convert_share = 0;  // of the time inside the host
  double convert_us = 0, script_us = 0;
  uint64_t memory_peak = 0;
  size_t json_bytes = 0;
};

fs::path g_dir;

std::unique_ptr<ScriptHost> make_host(const std::string& hook_mode, fb::detail::SandboxMode mode, int pool) {
  ScriptHostOptions o;
  o.config.dir = g_dir.string();
  o.config.hook_mode = hook_mode;
  o.config.pool_size = pool;
  o.config.company_domains = {"example.com"};
  o.sandbox = mode;
  auto h = ScriptHost::open(o);
  if (!h.ok()) {
    std::fprintf(stderr, "open: %s\n", h.status().to_string().c_str());
    std::exit(1);
  }
  for (const char* op : {"find_company_by_domain", "upsert_company", "upsert_contact", "log_activity", "create_task",
                         "find_deal", "attach_recording"}) {
    std::string answer = std::string(op).rfind("find_", 0) == 0 ? "null" : R"({"id":"rec_1"})";
    (void)h.value()->register_crm_operation(op, [answer](const fb::CrmCall&) -> fb::Result<std::string> { return answer; });
  }
  return std::move(h).value();
}

Result run(const std::string& hook_mode, fb::detail::SandboxMode mode, int meetings, int threads, int transcript_lines) {
  auto host = make_host(hook_mode, mode, threads);
  std::string raw = make_meeting(123456789, transcript_lines).dump();
  auto worker = [&](int t, int n) {
    for (int i = 0; i < n; ++i) {
      fb::detail::MeetingEvent e;
      e.integration_id = 1 + t;
      e.recording_id = 123456789;
      e.content_version = i + 1;
      e.raw_json = raw;
      e.source = "sync";
      fb::Status s = host->on_meeting(e);
      if (!s.ok()) {
        std::fprintf(stderr, "mapping failed: %s\n", s.to_string().c_str());
        std::exit(1);
      }
    }
  };
  worker(0, std::max(200, meetings / 20));  // warm-up: states created, caches warm
  auto before = host->stats();
  double t0 = now_s();
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) ts.emplace_back(worker, t, meetings);
  for (auto& th : ts) th.join();
  double elapsed = now_s() - t0;
  auto after = host->stats();
  Result r;
  r.per_sec = meetings / elapsed;  // per worker
  double conv = static_cast<double>(after.convert_ns - before.convert_ns);
  double script = static_cast<double>(after.script_ns - before.script_ns);
  r.convert_share = conv / (conv + script);
  r.convert_us = conv / 1000.0 / (meetings * threads);
  r.script_us = script / 1000.0 / (meetings * threads);
  r.memory_peak = after.state_memory_peak;
  r.json_bytes = raw.size();
  return r;
}

// ns per loop iteration of a tight Lua loop, hook armed always vs by the watchdog.
double tight_loop_ns(const std::string& hook_mode, int64_t iterations) {
  fs::path dir = g_dir.parent_path() / ("loop-" + hook_mode);
  fs::create_directories(dir);
  std::ofstream(dir / "mapping.lua") << "function on_meeting(m)\n  local x = 0\n  for i = 1, " << iterations
                                      << " do x = x + i % 7 end\n  return x\nend\n";
  ScriptHostOptions o;
  o.config.dir = dir.string();
  o.config.hook_mode = hook_mode;
  o.config.pool_size = 1;
  auto h = ScriptHost::open(o);
  std::string raw = R"({"recording_id": 1})";
  fb::detail::MeetingEvent e;
  e.recording_id = 1;
  e.raw_json = raw;
  (void)h.value()->on_meeting(e);
  int rounds = 20;
  double t0 = now_s();
  for (int i = 0; i < rounds; ++i) {
    fb::Status s = h.value()->on_meeting(e);
    if (!s.ok()) std::fprintf(stderr, "loop: %s\n", s.to_string().c_str());
  }
  return (now_s() - t0) * 1e9 / (static_cast<double>(iterations) * rounds);
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    int v = std::atoi(argv[i + 1]);
    if (k == "--meetings") a.meetings = v;
    else if (k == "--threads") a.threads = v;
    else if (k == "--transcript-lines") a.transcript_lines = v;
  }
  fb::detail::set_log_level(fb::detail::LogLevel::kError);
  std::string tmpl = (fs::temp_directory_path() / "fb-mapping-bench-XXXXXX").string();
  fs::path root = ::mkdtemp(tmpl.data());
  g_dir = root / "scripts";
  fs::create_directories(g_dir);
  fs::copy_file(fs::path(FB_SOURCE_DIR) / "scripts" / "mapping.lua", g_dir / "mapping.lua");

  using fb::detail::SandboxMode;
  std::printf("mapping benchmark: scripts/mapping.lua, %d meetings per worker, %d worker(s)\n\n", a.meetings, a.threads);
  std::printf("%-44s %12s %10s %10s %10s %10s %10s\n", "case", "meetings/s", "json KiB", "convert", "script",
              "convert%", "state MiB");
  auto row = [&](const char* name, const Result& r) {
    std::printf("%-44s %12.0f %10.1f %8.1fus %8.1fus %9.1f%% %10.2f\n", name, r.per_sec, r.json_bytes / 1024.0,
                r.convert_us, r.script_us, 100 * r.convert_share, r.memory_peak / 1048576.0);
  };
  row("no transcript, watchdog, proxies", run("watchdog", SandboxMode::kReadOnlyProxies, a.meetings, a.threads, 0));
  row("no transcript, hook always armed, proxies", run("always", SandboxMode::kReadOnlyProxies, a.meetings, a.threads, 0));
  row("no transcript, watchdog, fresh env per event", run("watchdog", SandboxMode::kFreshEnvPerEvent, a.meetings, a.threads, 0));
  int n_long = std::max(500, a.meetings / 10);
  row("long transcript, watchdog, proxies", run("watchdog", SandboxMode::kReadOnlyProxies, n_long, a.threads, a.transcript_lines));
  row("long transcript, hook always armed, proxies", run("always", SandboxMode::kReadOnlyProxies, n_long, a.threads, a.transcript_lines));

  std::printf("\ntight Lua loop (x = x + i %% 7), ns per iteration:\n");
  double w = tight_loop_ns("watchdog", 5'000'000), al = tight_loop_ns("always", 5'000'000);
  std::printf("  5,000,000 iterations (~20 ms: the watchdog arms after 10 ms): watchdog %.2f, always %.2f (%.2fx)\n", w,
              al, al / w);
  double w2 = tight_loop_ns("watchdog", 100'000), al2 = tight_loop_ns("always", 100'000);
  std::printf("  100,000 iterations (~0.4 ms, never armed):                  watchdog %.2f, always %.2f (%.2fx)\n", w2,
              al2, al2 / w2);
  std::error_code ec;
  fs::remove_all(root, ec);
  return 0;
}
