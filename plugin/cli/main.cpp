// fathom-bridge: the command-line tool for operators and admins.
//
//   fathom-bridge status [--tenant T] [--user U] [--json]       token health of every integration
//   fathom-bridge deactivate-expired                              deactivate dead integrations, list whom to notify
//   fathom-bridge sync --tenant T --user U --integration N [--mode incremental|backfill|manual]
//                      [--since ISO] [--until ISO] [--recording N] [--json]   with progress
//   fathom-bridge sync watch|cancel --job N --tenant T --user U             any process's job
//   fathom-bridge jobs [--integration N] [--status failed] [--limit N] [--json]
//   fathom-bridge webhooks list [--status pending|done|dead] [--integration N] [--limit N]
//   fathom-bridge webhooks replay <event-id> | --dead
//   fathom-bridge webhooks routes|add|register|rotate|remove ...   webhook routes and their secrets
//   fathom-bridge script test <script> --meeting <file.json> [...]   (see `script test --help`)
//   fathom-bridge serve                                           run the HTTP sidecar
//   fathom-bridge store copy --from PATH --to URL                 move a SQLite store to PostgreSQL
// Every command but `script test` takes --config FILE (and the environment, see README).
#include <malloc.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cli/script_commands.h"
#include "cli/store_command.h"
#include "cli/sync_progress.h"
#include "core/clock.h"
#include "core/log.h"
#include "fathom_bridge/bridge.h"
#include "scripting/dry_run.h"
#include "server/shutdown.h"
#include "server/sidecar.h"
#include "store/db.h"

namespace {

using nlohmann::json;

constexpr const char* kUsage = R"(usage: fathom-bridge <command> [options]

commands:
  status [--tenant T] [--user U] [--json]     token health (valid, expiring_soon, expired, reconnect_required)
  deactivate-expired                          deactivate integrations that cannot be refreshed; lists users to notify
  sync --tenant T --user U --integration N [--mode incremental|backfill|manual]
       [--since ISO8601] [--until ISO8601] [--recording N] [--json]
       runs a sync, mapping through the CRM at server.crm_url, with its progress on stderr (a bar on
       a terminal, a line every few seconds otherwise); Ctrl-C cancels it at the next page.
       Exit 0 succeeded, 1 failed / meetings failed to map or not stored / skipped, 3 cancelled
  sync watch  --job N --tenant T --user U [--json]   follow a job run by any process on the store
                                                     (same exit codes; Ctrl-C stops following: 130)
  sync cancel --job N --tenant T --user U            ask a running job to stop at its next page
  jobs [--tenant T] [--integration N] [--status running|succeeded|succeeded_with_errors|failed|skipped]
       [--limit N] [--json]
  webhooks list [--tenant T] [--status pending|processing|done|dead] [--integration N] [--limit N]
  webhooks replay <event-id> | --dead
  webhooks routes   --tenant T --user U [--integration N]            receiving routes (never their secrets)
  webhooks add      --tenant T --user U --integration N [--secret-file F]
                    a route for a webhook made in Fathom's settings; F holds its whsec_ secret ('-': stdin).
                    Without it the route refuses deliveries until `rotate` sets the secret
  webhooks register --tenant T --user U --integration N            create the webhook through Fathom's API
  webhooks rotate <route-id> --tenant T --user U --secret-file F     new secret; the old one stays valid for
                                                                     webhooks.secret_grace_s
  webhooks remove <route-id> --tenant T --user U
  script test <script> --meeting <file.json> [--json] [...]   dry-run a Lua script (exit 1 on script error)
  serve                                       run the HTTP sidecar (host routes + webhook receiver);
                                              SIGTERM/SIGINT stop it within server.shutdown_timeout_s
                                              (exit 0; 1 when that time ran out with work in flight)

common options:
  --config FILE    JSON config file (the environment overrides it; see README)
)";

// Parses "--name value" and "--flag" options after the command words.
struct Options {
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;
  bool has(const std::string& k) const { return values.count(k) != 0; }
  std::string get(const std::string& k, const std::string& fallback = "") const {
    auto it = values.find(k);
    return it == values.end() ? fallback : it->second;
  }
};

bool parse_options(int argc, char** argv, int from, Options* o, std::string* error) {
  static const char* kFlags[] = {"--json", "--dead", "--help"};
  for (int i = from; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) {
      o->positional.push_back(a);
      continue;
    }
    bool flag = false;
    for (const char* f : kFlags) flag = flag || a == f;
    if (flag) {
      o->values[a.substr(2)] = "1";
      continue;
    }
    if (i + 1 >= argc) {
      *error = "option " + a + " needs a value";
      return false;
    }
    o->values[a.substr(2)] = argv[++i];
  }
  return true;
}

bool parse_int(const std::string& text, int64_t* out) {
  if (text.empty()) return false;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (*end != '\0') return false;
  *out = v;
  return true;
}

int fail(const fb::Status& s) {
  std::cerr << "fathom-bridge: " << s.to_string() << "\n";
  return 1;
}

int usage_error(const std::string& message) {
  std::cerr << "fathom-bridge: " << message << "\n\n" << kUsage;
  return 2;
}

fb::Result<std::unique_ptr<fb::Bridge>> open_bridge(const Options& o, bool background) {
  auto config = fb::load_config(o.get("config"));
  if (!config.ok()) return config.status();
  fb::detail::LogLevel level;
  if (fb::detail::parse_log_level(config->log_level, &level)) fb::detail::set_log_level(level);
  if (fb::detail::LogFormat format; fb::detail::parse_log_format(config->log.format, &format)) {
    fb::detail::set_log_format(format);
  }
  return fb::Bridge::open(*config, {.background = background});
}

void print_jobs_table(const json& jobs) {
  std::printf("%-6s %-11s %-12s %-10s %-20s %6s %6s %6s %6s %-8s  %s\n", "job", "integration", "mode", "status",
              "started", "calls", "seen", "new", "mapped", "scripts", "error");
  for (const auto& j : jobs) {
    auto num = [&](const char* k) { return j.contains(k) && j[k].is_number() ? j[k].get<int64_t>() : int64_t{0}; };
    auto str = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string(); };
    std::string started = j.contains("started_at") && j["started_at"].is_number()
                              ? fb::detail::format_iso8601(j["started_at"].get<int64_t>())
                              : str("started_at");
    // The script versions its CRM operations ran on (issue 15): "3,4"; "-" when it made none.
    std::string scripts;
    if (j.contains("script_versions") && j["script_versions"].is_array()) {
      for (const auto& v : j["script_versions"]) scripts += (scripts.empty() ? "" : ",") + v.dump();
    }
    std::printf("%-6lld %-11lld %-12s %-10s %-20s %6lld %6lld %6lld %6lld %-8s  %s\n", static_cast<long long>(num("id")),
                static_cast<long long>(num("integration_id")), str("mode").c_str(), str("status").c_str(),
                started.c_str(), static_cast<long long>(num("api_calls")), static_cast<long long>(num("meetings_seen")),
                static_cast<long long>(num("meetings_new")), static_cast<long long>(num("meetings_mapped")),
                scripts.empty() ? "-" : scripts.c_str(), str("error").c_str());
  }
}

// Colour only for a person at a terminal (and never when NO_COLOR is set: no-color.org).
bool colour_output() {
  const char* no = std::getenv("NO_COLOR");
  return isatty(STDOUT_FILENO) == 1 && (no == nullptr || *no == '\0');
}

// The status words of the token health table in colour. Escape sequences take no columns, so the
// table stays aligned.
std::string colour_statuses(const std::string& table) {
  static const std::pair<const char*, const char*> kColours[] = {
      {"reconnect_required", "31"}, {"expired", "31"}, {"refresh_in_doubt", "33"}, {"expiring_soon", "33"},
      {"disconnected", "2"}, {"valid", "32"}};
  std::string out;
  size_t start = 0;
  bool header = true;
  while (start < table.size()) {
    size_t end = table.find('\n', start);
    if (end == std::string::npos) end = table.size();
    std::string line = table.substr(start, end - start);
    if (header) {
      line = "\x1b[1m" + line + "\x1b[0m";
      header = false;
    } else {
      for (const auto& [word, code] : kColours) {
        size_t at = line.find("  " + std::string(word) + " ");
        if (at == std::string::npos) continue;
        line.replace(at + 2, std::strlen(word), std::string("\x1b[") + code + "m" + word + "\x1b[0m");
        break;
      }
    }
    out += line + "\n";
    start = end + 1;
  }
  return out;
}

int cmd_status(const Options& o) {
  auto b = open_bridge(o, false);
  if (!b.ok()) return fail(b.status());
  if (o.has("json")) {
    auto r = (*b)->token_health_json(o.get("tenant"), o.get("user"));
    if (!r.ok()) return fail(r.status());
    std::cout << json::parse(*r).dump(2) << "\n";
  } else {
    auto r = (*b)->token_health_table(o.get("tenant"), o.get("user"));
    if (!r.ok()) return fail(r.status());
    std::cout << (colour_output() ? colour_statuses(*r) : *r);
  }
  return 0;
}

int cmd_deactivate(const Options& o) {
  auto b = open_bridge(o, false);
  if (!b.ok()) return fail(b.status());
  auto r = (*b)->deactivate_expired();
  if (!r.ok()) return fail(r.status());
  json affected = json::parse(*r);
  std::cout << "deactivated " << affected.size() << " integration(s)\n";
  for (const auto& a : affected) {
    std::cout << "  notify tenant=" << a.value("tenant_id", "") << " user=" << a.value("user_id", "")
              << " (integration " << a.value("integration_id", int64_t{0}) << ")\n";
  }
  return 0;
}

// Reads a secret from a file ("-": standard input): its first line, without surrounding blanks. A
// secret never goes on the command line, where `ps` and shell histories would show it.
fb::Result<std::string> read_secret_file(const std::string& path) {
  std::string line;
  if (path == "-") {
    std::getline(std::cin, line);
  } else {
    std::ifstream in(path);
    if (!in) return fb::Status::InvalidArgument("cannot read the secret file " + path);
    std::getline(in, line);
  }
  const char* blanks = " \t\r\n";
  size_t a = line.find_first_not_of(blanks), b = line.find_last_not_of(blanks);
  if (a == std::string::npos) return fb::Status::InvalidArgument("the secret file " + path + " is empty");
  return line.substr(a, b - a + 1);
}

int cmd_sync_job(const Options& o, const std::string& sub);

int cmd_sync(const Options& o) {
  if (!o.positional.empty()) {
    const std::string& sub = o.positional[0];
    if (sub == "watch" || sub == "cancel") return cmd_sync_job(o, sub);
    return usage_error("unknown sync command '" + sub + "' (watch, cancel)");
  }
  int64_t id = 0;
  if (!parse_int(o.get("integration"), &id)) return usage_error("sync needs --integration N");
  if (!o.has("tenant") || !o.has("user")) return usage_error("sync needs --tenant and --user");
  fb::SyncRequest req;
  req.mode = o.get("mode", "incremental");
  for (const char* k : {"since", "until"}) {
    if (!o.has(k)) continue;
    int64_t t = 0;
    if (!fb::detail::parse_iso8601(o.get(k), &t)) return usage_error(std::string("--") + k + " is not an ISO 8601 time");
    (std::strcmp(k, "since") == 0 ? req.since : req.until) = t;
  }
  if (o.has("recording") && !parse_int(o.get("recording"), &req.recording_id)) {
    return usage_error("--recording must be a number");
  }
  auto b = open_bridge(o, false);
  if (!b.ok()) return fail(b.status());
  // The CLI is not a CRM: without one every meeting would fail to map (and be retried later), so
  // refuse instead of paging Fathom for nothing.
  const std::string& crm = (*b)->config().server.crm_url;
  if (crm.empty()) {
    return usage_error(
        "sync maps meetings into the CRM, and the CLI has none: set server.crm_url (FATHOM_BRIDGE_CRM_URL) to "
        "the CRM's operation endpoint, or run the sync from the host (fb_sync, POST /v1/sync)");
  }
  fb::Status fwd = fb::detail::forward_crm_operations(**b, crm);
  if (!fwd.ok()) return fail(fwd);
  // Started on a thread of this process and followed here: progress on stderr, Ctrl-C cancels at
  // the next page (see sync_progress.h for the exit codes).
  const fb::Caller caller{o.get("tenant"), o.get("user"), ""};
  auto started = (*b)->sync_start(caller, id, req);
  if (!started.ok()) return fail(started.status());
  const int64_t job_id = json::parse(*started).value("id", int64_t{0});
  return fb::cli::follow_sync_job(**b, caller, job_id, {.json = o.has("json"), .cancel_on_interrupt = true},
                                  std::cout, std::cerr);
}

// `sync watch --job N` follows a job run by any process on the store (a sidecar, another CLI);
// `sync cancel --job N` asks it to stop at its next page.
int cmd_sync_job(const Options& o, const std::string& sub) {
  int64_t job = 0;
  if (!parse_int(o.get("job"), &job)) return usage_error("sync " + sub + " needs --job N");
  if (!o.has("tenant") || !o.has("user")) return usage_error("sync " + sub + " needs --tenant and --user");
  auto b = open_bridge(o, false);
  if (!b.ok()) return fail(b.status());
  const fb::Caller caller{o.get("tenant"), o.get("user"), ""};
  if (sub == "watch") {
    return fb::cli::follow_sync_job(**b, caller, job, {.json = o.has("json")}, std::cout, std::cerr);
  }
  fb::Status s = (*b)->sync_cancel(caller, job);
  if (!s.ok()) return fail(s);
  std::cout << "sync job " << job << ": cancel requested; it stops at its next page\n";
  return 0;
}

int cmd_jobs(const Options& o) {
  int64_t id = 0, limit = 20;
  if (o.has("integration") && !parse_int(o.get("integration"), &id)) return usage_error("--integration must be a number");
  if (o.has("limit") && !parse_int(o.get("limit"), &limit)) return usage_error("--limit must be a number");
  auto b = open_bridge(o, false);
  if (!b.ok()) return fail(b.status());
  auto r = (*b)->sync_jobs_json(id, o.get("status"), static_cast<int>(limit), o.get("tenant"));
  if (!r.ok()) return fail(r.status());
  if (o.has("json")) {
    std::cout << json::parse(*r).dump(2) << "\n";
  } else {
    print_jobs_table(json::parse(*r));
  }
  return 0;
}

int print_route(const fb::Result<fb::WebhookRoute>& r) {
  if (!r.ok()) return fail(r.status());
  std::cout << json::parse(r->to_json()).dump(2) << "\n";
  return 0;
}

// webhooks routes|add|register|rotate|remove: every one acts for --tenant/--user.
int cmd_webhook_routes(const Options& o, fb::Bridge& b) {
  const std::string& what = o.positional[0];
  if (what != "routes" && what != "add" && what != "register" && what != "rotate" && what != "remove") {
    return usage_error("unknown webhooks command '" + what + "'");
  }
  if (!o.has("tenant") || !o.has("user")) return usage_error("webhooks " + what + " needs --tenant and --user");
  const fb::Caller caller{o.get("tenant"), o.get("user"), ""};
  int64_t integration = 0, route = 0;
  if (o.has("integration") && !parse_int(o.get("integration"), &integration)) {
    return usage_error("--integration must be a number");
  }
  if (what == "routes") {
    auto r = b.webhook_routes(caller, integration);
    if (!r.ok()) return fail(r.status());
    json out = json::array();
    for (const auto& w : *r) out.push_back(json::parse(w.to_json()));
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  if (what == "add" || what == "register") {
    if (integration <= 0) return usage_error("webhooks " + what + " needs --integration N");
    if (what == "register") return print_route(b.register_webhook_route(caller, integration));
    std::string secret;
    if (o.has("secret-file")) {
      auto s = read_secret_file(o.get("secret-file"));
      if (!s.ok()) return fail(s.status());
      secret = *s;
    }
    return print_route(b.add_webhook_route(caller, integration, secret));
  }
  if (o.positional.size() < 2 || !parse_int(o.positional[1], &route)) {
    return usage_error("webhooks " + what + " needs a route id");
  }
  if (what == "remove") {
    fb::Status s = b.remove_webhook_route(caller, route);
    if (!s.ok()) return fail(s);
    std::cout << "removed webhook route " << route << "\n";
    return 0;
  }
  if (!o.has("secret-file")) return usage_error("webhooks rotate needs --secret-file F ('-': standard input)");
  auto s = read_secret_file(o.get("secret-file"));
  if (!s.ok()) return fail(s.status());
  return print_route(b.rotate_webhook_secret(caller, route, *s));
}

int cmd_webhooks(const Options& o) {
  if (o.positional.empty()) return usage_error("webhooks needs list, replay, routes, add, register, rotate or remove");
  auto b = open_bridge(o, false);
  if (!b.ok()) return fail(b.status());
  if (o.positional[0] == "list") {
    int64_t id = 0, limit = 50;
    if (o.has("integration") && !parse_int(o.get("integration"), &id)) return usage_error("--integration must be a number");
    if (o.has("limit") && !parse_int(o.get("limit"), &limit)) return usage_error("--limit must be a number");
    auto r = (*b)->webhook_events_json(o.get("status"), id, static_cast<int>(limit), o.get("tenant"));
    if (!r.ok()) return fail(r.status());
    std::cout << json::parse(*r).dump(2) << "\n";
    return 0;
  }
  if (o.positional[0] == "replay") {
    std::string which = o.has("dead") ? "dead" : (o.positional.size() > 1 ? o.positional[1] : "");
    if (which.empty()) return usage_error("webhooks replay needs an event id or --dead");
    auto r = (*b)->webhook_replay(which);
    if (!r.ok()) return fail(r.status());
    std::cout << "requeued " << *r << " event(s); running workers (or the next `serve`) process them\n";
    return 0;
  }
  return cmd_webhook_routes(o, **b);
}

volatile std::sig_atomic_t g_stop = 0;

int cmd_serve(const Options& o) {
  // Webhook bodies are 20 KB-1 MB buffers freed on many threads: keep glibc from returning them to
  // the kernel and faulting them in again on the next request (bench/README.md, "Webhooks").
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  fb::detail::disable_sqlite_memory_statistics();  // before the first connection
  auto b = open_bridge(o, true);
  if (!b.ok()) return fail(b.status());
  auto server = fb::detail::Sidecar::start(**b);
  if (!server.ok()) return fail(server.status());
  std::cout << "fathom-bridge sidecar listening on http://" << (*b)->config().server.host << ":" << (*server)->port()
            << "\n"
            << std::flush;
  std::signal(SIGINT, [](int) { g_stop = 1; });
  std::signal(SIGTERM, [](int) { g_stop = 1; });
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // Bounded (server.shutdown_timeout_s): past it, exit 1 with the work left in flight (see shutdown.h).
  auto budget = std::chrono::seconds((*b)->config().server.shutdown_timeout_s);
  if (!fb::detail::shutdown_gracefully(**b, **server, budget)) std::_Exit(1);
  return 0;
}

}  // namespace

int run(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "help") == 0) {
    std::cout << kUsage << "\nstored script versions:\n" << fb::cli::kScriptVersionUsage
              << "\nmoving a store:\n" << fb::cli::kStoreUsage;
    return argc < 2 ? 2 : 0;
  }
  std::string cmd = argv[1];
  if (cmd == "script" && argc >= 3 && fb::cli::is_script_version_command(argv[2])) {
    Options o;
    std::string error;
    if (!parse_options(argc, argv, 3, &o, &error)) return usage_error(error);
    auto b = open_bridge(o, false);
    if (!b.ok()) return fail(b.status());
    return fb::cli::script_version_command(**b, argv[2], o.positional, o.values, std::cout, std::cerr);
  }
  if (cmd == "script") {
    if (argc < 3 || std::strcmp(argv[2], "test") != 0) {
      return usage_error("script needs 'test', 'upload', 'import', 'list', 'validate', 'activate' or 'rollback'");
    }
    return fb::detail::run_script_test(argc - 2, argv + 2, std::cout, std::cerr);
  }
  Options o;
  std::string error;
  if (!parse_options(argc, argv, 2, &o, &error)) return usage_error(error);
  if (o.has("help")) {
    std::cout << kUsage;
    return 0;
  }
  if (cmd == "status") return cmd_status(o);
  if (cmd == "deactivate-expired") return cmd_deactivate(o);
  if (cmd == "sync") return cmd_sync(o);
  if (cmd == "jobs") return cmd_jobs(o);
  if (cmd == "webhooks") return cmd_webhooks(o);
  if (cmd == "serve") return cmd_serve(o);
  if (cmd == "store") return fb::cli::store_command(o.positional, o.values, std::cout, std::cerr);
  return usage_error("unknown command '" + cmd + "'");
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // a bug must end with a message and exit 1, never an abort
    std::cerr << "fathom-bridge: internal error: " << e.what() << "\n";
    return 1;
  }
}
