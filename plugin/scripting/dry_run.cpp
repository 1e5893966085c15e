#include "scripting/dry_run.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/utf8.h"
#include "scripting/script_files.h"
#include "scripting/script_host.h"

namespace fb::detail {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr int kExitOk = 0;
constexpr int kExitScript = 1;
constexpr int kExitUsage = 2;

const char* const kUsage =
    "usage: fathom-bridge script test <script.lua> --meeting <file.json> [--scripts-dir DIR]\n"
    "       [--hook on_meeting|on_webhook] [--json] [--company-domain D]... [--crm-results FILE]\n"
    "       [--allow-op NAME]... [--expect expected.json]\n"
    "       fathom-bridge script test <reactions.lua> --hook on_connect|on_disconnect|on_token_failure|\n"
    "       on_sync_complete [--event event.json] [...]   (a fabricated event without --event)\n";

bool meeting_hook(const std::string& hook) { return hook == "on_meeting" || hook == "on_webhook"; }

struct Options {
  std::string script;
  std::string meeting_file;
  std::string scripts_dir;
  std::string hook = "on_meeting";
  bool json_out = false;
  std::vector<std::string> domains;
  std::string crm_results_file;
  std::vector<std::string> allowed;
  std::string expect_file;  // golden test: the CRM operations each meeting must produce
  std::string event_file;   // reaction hooks: {"integration": {...}, "reason", "summary"}
};

struct Recorded {
  std::string op;
  std::string args;
  std::string result;
  std::string key;
};

struct CapturedLog {
  std::string level;
  std::string script;
  std::string message;
};

bool parse_args(int argc, char** argv, Options* o, std::string* why) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string* dst) {
      if (i + 1 >= argc) {
        *why = a + " needs a value";
        return false;
      }
      *dst = argv[++i];
      return true;
    };
    std::string v;
    if (a == "--meeting") {
      if (!value(&o->meeting_file)) return false;
    } else if (a == "--scripts-dir") {
      if (!value(&o->scripts_dir)) return false;
    } else if (a == "--hook") {
      if (!value(&o->hook)) return false;
    } else if (a == "--json") {
      o->json_out = true;
    } else if (a == "--company-domain") {
      if (!value(&v)) return false;
      o->domains.push_back(v);
    } else if (a == "--expect") {
      if (!value(&o->expect_file)) return false;
    } else if (a == "--event") {
      if (!value(&o->event_file)) return false;
    } else if (a == "--crm-results") {
      if (!value(&o->crm_results_file)) return false;
    } else if (a == "--allow-op") {
      if (!value(&v)) return false;
      o->allowed.push_back(v);
    } else if (a == "--help" || a == "-h") {
      *why = "";
      return false;
    } else if (!a.empty() && a[0] == '-') {
      *why = "unknown option " + a;
      return false;
    } else if (o->script.empty()) {
      o->script = a;
    } else {
      *why = "unexpected argument '" + a + "'";
      return false;
    }
  }
  if (o->script.empty()) *why = "missing <script>";
  else if (meeting_hook(o->hook) && o->meeting_file.empty()) *why = "missing --meeting <file.json>";
  else if (!meeting_hook(o->hook) && o->hook != "on_connect" && o->hook != "on_disconnect" &&
           o->hook != "on_token_failure" && o->hook != "on_sync_complete") {
    *why = "--hook must be on_meeting, on_webhook, on_connect, on_disconnect, on_token_failure or on_sync_complete";
  }
  return why->empty();
}

bool read_file(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

// The script's directory and its path relative to it.
bool locate_script(const Options& o, std::string* dir, std::string* rel, std::string* why) {
  std::error_code ec;
  fs::path script = fs::weakly_canonical(fs::path(o.script), ec);
  if (ec || !fs::is_regular_file(script, ec)) {
    *why = "script '" + o.script + "' is not a readable file";
    return false;
  }
  fs::path d = o.scripts_dir.empty() ? script.parent_path() : fs::weakly_canonical(fs::path(o.scripts_dir), ec);
  if (ec || !fs::is_directory(d, ec)) {
    *why = "scripts directory '" + o.scripts_dir + "' is not a directory";
    return false;
  }
  fs::path r = script.lexically_relative(d);
  if (r.empty() || r.native().rfind("..", 0) == 0) {
    *why = "script '" + o.script + "' is not inside the scripts directory '" + d.string() + "'";
    return false;
  }
  *dir = d.string();
  *rel = r.string();
  return true;
}

std::string one_line(const std::string& s, size_t max = 400) {
  std::string out = utf8_excerpt(s, max);
  for (char& c : out) {
    if (c == '\n') c = ' ';
  }
  return out;
}

// Golden test: where the operations a meeting produced differ from the expected ones, as readable
// lines ("#3 crm.log_activity: args.title: expected "A", got "B""); empty when they are the same.
// Operations are compared by name and arguments, in order (results and keys are the stand-in's).
std::vector<std::string> golden_diff(const json& expected, const json& got) {
  std::vector<std::string> lines;
  size_t n = std::max(expected.size(), got.size());
  for (size_t i = 0; i < n; ++i) {
    std::string at = "#" + std::to_string(i + 1) + " ";
    if (i >= got.size()) {
      lines.push_back(at + "missing: crm." + expected[i].value("operation", "?") + " " +
                      one_line(expected[i].value("args", json::object()).dump(), 200));
      continue;
    }
    if (i >= expected.size()) {
      lines.push_back(at + "unexpected: crm." + got[i]["operation"].get<std::string>() + " " +
                      one_line(got[i]["args"].dump(), 200));
      continue;
    }
    std::string want_op = expected[i].value("operation", "");
    std::string got_op = got[i]["operation"].get<std::string>();
    if (want_op != got_op) {
      lines.push_back(at + "expected crm." + want_op + ", got crm." + got_op + " " + one_line(got[i]["args"].dump(), 200));
      continue;
    }
    json want = expected[i].value("args", json::object());
    const json& have = got[i]["args"];
    if (want == have) continue;
    if (!want.is_object() || !have.is_object()) {
      lines.push_back(at + "crm." + got_op + ": args: expected " + one_line(want.dump(), 200) + ", got " +
                      one_line(have.dump(), 200));
      continue;
    }
    std::map<std::string, bool> keys;
    for (auto it = want.begin(); it != want.end(); ++it) keys[it.key()] = true;
    for (auto it = have.begin(); it != have.end(); ++it) keys[it.key()] = true;
    for (const auto& [k, _] : keys) {
      std::string w = want.contains(k) ? want[k].dump() : "(absent)";
      std::string h = have.contains(k) ? have[k].dump() : "(absent)";
      if (w != h) lines.push_back(at + "crm." + got_op + ": args." + k + ": expected " + one_line(w, 160) + ", got " + one_line(h, 160));
    }
  }
  return lines;
}

// The expected operations of one meeting: the file's array, or its entry for the recording id
// when it is an object keyed by recording id. Null when the file says nothing about the meeting.
json expected_for(const json& golden, int64_t recording_id) {
  if (golden.is_array()) return golden;
  std::string key = std::to_string(recording_id);
  if (golden.is_object() && golden.contains(key) && golden[key].is_array()) return golden[key];
  return nullptr;
}

}  // namespace

const std::vector<std::string>& documented_crm_operations() {
  static const std::vector<std::string> ops = {
      "find_company_by_domain", "upsert_company", "find_contact_by_email", "upsert_contact", "log_activity",
      "create_task",            "find_deal",      "create_deal",           "attach_recording"};
  return ops;
}

std::string dry_run_answer(const std::string& op, int n, const json& canned) {
  if (canned.contains(op)) return canned[op].dump();
  if (op.rfind("find_", 0) == 0) return "null";
  return json{{"id", "dry-" + op + "-" + std::to_string(n)}}.dump();
}

int run_script_test(int argc, char** argv, std::ostream& out, std::ostream& err) {
  Options o;
  std::string why;
  if (!parse_args(argc, argv, &o, &why)) {
    if (!why.empty()) err << "script test: " << why << "\n";
    err << kUsage;
    return kExitUsage;
  }
  std::string dir, rel;
  if (!locate_script(o, &dir, &rel, &why)) {
    err << "script test: " << why << "\n";
    return kExitUsage;
  }
  std::string text;
  const std::string& input = meeting_hook(o.hook) ? o.meeting_file : o.event_file;
  if (input.empty()) {
    // A reaction hook without --event: a fabricated event.
    text = json{{"integration", {{"id", 1}, {"tenant_id", "dry-run-tenant"}, {"user_id", "dry-run-user"}}},
                {"reason", "invalid_grant"},
                {"summary", {{"id", 1}, {"status", "succeeded"}, {"mode", "incremental"}, {"meetings_seen", 3},
                             {"meetings_mapped", 3}, {"meetings_failed", 0}}}}
               .dump();
  } else if (!read_file(input, &text)) {
    err << "script test: cannot read " << (meeting_hook(o.hook) ? "meeting" : "event") << " file '" << input << "'\n";
    return kExitUsage;
  }
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    err << "script test: file '" << input << "' is not valid JSON\n";
    return kExitUsage;
  }
  json items = doc.is_array() ? doc : (doc.is_object() && doc.contains("items") && doc["items"].is_array())
                                          ? doc["items"]
                                          : json::array({doc});
  for (const auto& m : items) {
    if (!m.is_object()) {
      err << "script test: file '" << input << "' must hold " << (meeting_hook(o.hook) ? "Meeting" : "event")
          << " objects\n";
      return kExitUsage;
    }
  }
  json canned = json::object();
  if (!o.crm_results_file.empty()) {
    std::string t;
    if (!read_file(o.crm_results_file, &t) || (canned = json::parse(t, nullptr, false)).is_discarded() ||
        !canned.is_object()) {
      err << "script test: --crm-results '" << o.crm_results_file << "' must be a readable JSON object\n";
      return kExitUsage;
    }
  }

  json golden;
  if (!o.expect_file.empty()) {
    std::string t;
    if (!read_file(o.expect_file, &t) || (golden = json::parse(t, nullptr, false)).is_discarded() ||
        !(golden.is_array() || golden.is_object())) {
      err << "script test: --expect '" << o.expect_file
          << "' must be a readable JSON array of {\"operation\", \"args\"} (or an object of them by recording id)\n";
      return kExitUsage;
    }
  }

  std::vector<Recorded> recorded;
  std::vector<CapturedLog> logs;
  ScriptHostOptions ho;
  ho.config.dir = dir;
  ho.config.mapping = rel;
  ho.config.reactions = "";
  ho.config.hot_reload = false;
  ho.config.pool_size = 1;
  ho.config.company_domains = o.domains;
  ho.dry_run = true;
  ho.display_prefix = fs::path(dir).filename().string();
  ho.log_sink = [&](LogLevel level, std::string_view script, std::string_view message) {
    logs.push_back({log_level_name(level), std::string(script), std::string(message)});
  };
  auto opened = ScriptHost::open(ho);
  if (!opened.ok()) {
    err << "script test: " << opened.status().message() << "\n";
    return kExitUsage;
  }
  ScriptHost& host = *opened.value();
  std::map<std::string, int> counts;
  std::vector<std::string> ops = documented_crm_operations();
  ops.insert(ops.end(), o.allowed.begin(), o.allowed.end());
  for (const std::string& op : ops) {
    Status st = host.register_crm_operation(op, [&, op](const CrmCall& call) -> Result<std::string> {
      std::string result = dry_run_answer(op, ++counts[op], canned);
      recorded.push_back({op, call.args_json, result, call.idempotency_key});
      return result;
    });
    if (!st.ok()) {
      err << "script test: --allow-op: " << st.message() << "\n";
      return kExitUsage;
    }
  }

  std::string display = ho.display_prefix + "/" + rel;
  Status load = host.load_status();
  json report = {{"script", display}, {"hook", o.hook}, {"meetings", json::array()}};
  if (!load.ok()) {
    report["ok"] = false;
    report["error"] = load.message();
    if (o.json_out) {
      out << report.dump(2) << "\n";
    } else {
      out << "script test: " << display << " failed to load\n  error: " << load.message() << "\n";
    }
    err << load.message() << "\n";
    return kExitScript;
  }

  bool all_ok = true;
  if (!o.json_out) {
    out << "script test: " << display << ", hook " << o.hook << ", " << items.size() << " meeting"
        << (items.size() == 1 ? "" : "s") << "\n";
  }
  for (const auto& m : items) {
    recorded.clear();
    logs.clear();
    counts.clear();
    std::string meeting_json = m.dump();
    int64_t rec = m.contains("recording_id") && m["recording_id"].is_number_integer() ? m["recording_id"].get<int64_t>() : 0;
    std::string title = m.contains("title") && m["title"].is_string() ? m["title"].get<std::string>() : "";
    HookCall call;
    call.id.hook = o.hook;
    call.id.recording_id = rec;
    call.id.content_version = 1;
    call.id.event_id = "rec" + std::to_string(rec) + ".v1";
    call.id.source = "dry_run";
    call.args = HookArgs::kMeeting;
    call.json = meeting_json;
    std::string summary_json;
    if (!meeting_hook(o.hook)) {
      // {"integration": {"id", "tenant_id", "user_id"}, "reason", "summary"}
      json in = m.value("integration", json::object());
      call.id.integration_id = in.value("id", int64_t{1});
      call.id.tenant_id = in.value("tenant_id", "dry-run-tenant");
      call.id.user_id = in.value("user_id", "dry-run-user");
      call.id.recording_id = 0;
      call.id.content_version = 0;
      call.id.event_id = o.hook + ".dry-run";
      call.args = o.hook == "on_token_failure"   ? HookArgs::kIntegrationReason
                  : o.hook == "on_sync_complete" ? HookArgs::kSummary
                                                 : HookArgs::kIntegration;
      call.reason = m.value("reason", "invalid_grant");
      summary_json = m.value("summary", json::object()).dump();
      call.json = summary_json;
      title = o.hook + " of integration " + std::to_string(call.id.integration_id);
    }
    Status st = host.run(call);
    all_ok = all_ok && st.ok();
    json jm = {{"recording_id", rec}, {"title", title}, {"ok", st.ok()}, {"operations", json::array()},
               {"logs", json::array()}};
    if (!st.ok()) jm["error"] = st.message();
    json produced = json::array();
    for (const auto& r : recorded) produced.push_back({{"operation", r.op}, {"args", json::parse(r.args, nullptr, false)}});
    std::vector<std::string> differs;
    if (json want = o.expect_file.empty() ? json(nullptr) : expected_for(golden, rec); !want.is_null()) {
      differs = golden_diff(want, produced);
      jm["expected"] = differs.empty();
      jm["differences"] = differs;
      all_ok = all_ok && differs.empty();
    }
    for (const auto& r : recorded) {
      jm["operations"].push_back({{"operation", r.op},
                                  {"args", json::parse(r.args, nullptr, false)},
                                  {"result", json::parse(r.result, nullptr, false)},
                                  {"idempotency_key", r.key}});
    }
    for (const auto& l : logs) jm["logs"].push_back({{"level", l.level}, {"script", l.script}, {"message", l.message}});
    if (!o.json_out) {
      out << "\nmeeting " << rec << " \"" << one_line(title, 80) << "\": " << recorded.size() << " CRM operation"
          << (recorded.size() == 1 ? "" : "s") << "\n";
      int i = 0;
      for (const auto& r : recorded) {
        out << "  " << ++i << ". crm." << r.op << " " << one_line(r.args) << "\n       -> " << one_line(r.result, 120)
            << "\n";
      }
      for (const auto& l : logs) out << "  log " << l.level << " [" << l.script << "] " << one_line(l.message) << "\n";
      if (!st.ok()) out << "  error: " << st.message() << "\n";
      if (jm.contains("expected")) {
        if (differs.empty()) {
          out << "  golden: as expected (" << o.expect_file << ")\n";
        } else {
          out << "  golden: the CRM operations differ from " << o.expect_file << ":\n";
          for (const auto& d : differs) out << "    " << d << "\n";
        }
      }
    }
    if (!st.ok()) err << st.message() << "\n";
    report["meetings"].push_back(std::move(jm));
  }
  report["ok"] = all_ok;
  if (o.json_out) {
    out << report.dump(2) << "\n";
  } else {
    out << "\n" << (all_ok ? "ok" : "FAILED") << "\n";
  }
  return all_ok ? kExitOk : kExitScript;
}

}  // namespace fb::detail
