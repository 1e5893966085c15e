#include "cli/script_commands.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/clock.h"

namespace fb::cli {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string value(const std::map<std::string, std::string>& v, const std::string& k, const std::string& fallback = "") {
  auto it = v.find(k);
  return it == v.end() ? fallback : it->second;
}

// The author recorded with a change: --author, else $USER.
std::string author_of(const std::map<std::string, std::string>& v) {
  const char* user = std::getenv("USER");
  return value(v, "author", user ? user : "");
}

int refused(std::ostream& err, const Status& s) {
  err << "fathom-bridge: " << s.to_string() << "\n";
  return 1;
}

void print_versions(std::ostream& out, const json& list) {
  out << std::left << std::setw(7) << "ID" << std::setw(8) << "ACTIVE" << std::setw(14) << "HASH" << std::setw(22)
      << "CREATED (UTC)" << std::setw(16) << "AUTHOR" << "NOTE\n";
  for (const auto& v : list) {
    std::time_t t = v.value("created_at", int64_t{0});
    std::tm tm{};
    gmtime_r(&t, &tm);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    out << std::setw(7) << v.value("id", int64_t{0}) << std::setw(8) << (v.value("active", false) ? "*" : "")
        << std::setw(14) << v.value("content_hash", "").substr(0, 12) << std::setw(22) << when << std::setw(16)
        << v.value("author", "") << v.value("note", "") << "\n";
  }
}

void print_activation(std::ostream& out, const std::string& text) {
  json a = json::parse(text);
  std::string scope = a["scope"].is_null() ? "the default scripts" : "tenant " + a["scope"].get<std::string>();
  if (a["version_id"].is_null()) {
    out << scope << ": no stored version active now (falls back to "
        << (a["scope"].is_null() ? "scripts.dir" : "the default scripts") << ")\n";
  } else {
    out << scope << ": version " << a["version_id"] << " active (" << a.value("kind", "") << ")\n";
  }
}

// The one VERSION word of activate / validate (false: bad usage).
bool version_arg(const std::vector<std::string>& positional, int64_t* id) {
  try {
    if (positional.size() != 1) return false;
    size_t used = 0;
    *id = std::stoll(positional[0], &used);
    return used == positional[0].size();
  } catch (const std::exception&) {
    return false;
  }
}

std::string one_line(const json& j) {
  std::string s = j.dump();
  return s.size() > 160 ? s.substr(0, 157) + "..." : s;
}

void print_validation(std::ostream& out, const json& r) {
  const json& sum = r["summary"];
  out << "version " << r["candidate_version"] << " against "
      << (r["running_version"].is_null() ? std::string("scripts.dir") : "version " + r["running_version"].dump())
      << " over " << sum["meetings"] << " stored meetings: " << sum["meetings_changed"] << " would change ("
      << sum["added"] << " operations added, " << sum["removed"] << " removed, " << sum["changed"] << " changed, "
      << sum["unchanged"] << " unchanged, " << sum["errors"] << " errors)\n";
  for (const auto& m : r["meetings"]) {
    if (m["added"].empty() && m["removed"].empty() && m["changed"].empty() && !m.contains("error")) continue;
    out << "\nmeeting " << m["recording_id"] << " \"" << m.value("title", "") << "\"\n";
    for (const auto& a : m["added"]) out << "  + " << a["operation"].get<std::string>() << " " << one_line(a["args"]) << "\n";
    for (const auto& d : m["removed"]) out << "  - " << d["operation"].get<std::string>() << " " << one_line(d["args"]) << "\n";
    for (const auto& c : m["changed"]) {
      out << "  ~ " << c["operation"].get<std::string>() << "\n      before " << one_line(c["before"])
          << "\n      after  " << one_line(c["after"]) << "\n";
    }
    if (m.contains("error")) out << "  error: " << m["error"].get<std::string>() << "\n";
  }
}

}  // namespace

const char* const kScriptVersionUsage =
    "  script upload FILE... [--base DIR] [--tenant T] [--author A] [--note N]\n"
    "                store the files as a new version (names relative to --base, default the first\n"
    "                file's directory); refused with file and line when they do not load\n"
    "  script import FOLDER [--tenant T] [--author A] [--note N]   every *.lua below FOLDER as a version\n"
    "  script list [--tenant T] [--limit N] [--json]     versions, newest first (* = active)\n"
    "  script activate VERSION [--tenant T] [--author A]  every process on the store within ~0.5 s\n"
    "  script rollback [--tenant T] [--author A]          back to the previously active version\n"
    "  script validate VERSION [--tenant T] [--meetings N] [--since ISO] [--until ISO] [--json]\n"
    "                dry-run VERSION and the running version over the N (50) most recent stored meetings\n"
    "                (created in [since, until) when given): CRM operations added, removed, changed\n"
    "  (no --tenant: the default scripts, which tenants without their own version run)\n";

bool is_script_version_command(const std::string& sub) {
  return sub == "upload" || sub == "import" || sub == "list" || sub == "activate" || sub == "rollback" ||
         sub == "validate";
}

int script_version_command(Bridge& bridge, const std::string& sub, const std::vector<std::string>& positional,
                           const std::map<std::string, std::string>& values, std::ostream& out, std::ostream& err) {
  const std::string tenant = value(values, "tenant");
  if (sub == "upload" || sub == "import") {
    Result<std::string> r = Status::Ok();
    if (sub == "import") {
      if (positional.size() != 1) {
        err << "fathom-bridge: script import needs one FOLDER\n";
        return 2;
      }
      r = bridge.script_import(tenant, positional[0], author_of(values), value(values, "note"));
    } else {
      if (positional.empty()) {
        err << "fathom-bridge: script upload needs at least one FILE (mapping.lua first)\n";
        return 2;
      }
      fs::path base = value(values, "base", fs::path(positional[0]).parent_path().string());
      json files = json::object();
      for (const std::string& p : positional) {
        std::ifstream in(p, std::ios::binary);
        if (!in) return refused(err, Status::NotFound("cannot read '" + p + "'"));
        std::ostringstream text;
        text << in.rdbuf();
        files[fs::relative(fs::absolute(p), fs::absolute(base.empty() ? "." : base)).generic_string()] = text.str();
      }
      r = bridge.script_upload(tenant, files.dump(), author_of(values), value(values, "note"));
    }
    if (!r.ok()) return refused(err, r.status());
    json v = json::parse(*r);
    out << "version " << v["id"] << " (" << v["content_hash"].get<std::string>().substr(0, 12) << ", "
        << v["files"].size() << " files) stored for "
        << (tenant.empty() ? std::string("the default scripts") : "tenant " + tenant)
        << (v.value("active", false) ? "; it is the active version" : "; activate it with `script activate " +
                                                                             v["id"].dump() + "`")
        << "\n";
    return 0;
  }
  if (sub == "list") {
    int limit = 50;
    try {
      limit = std::stoi(value(values, "limit", "50"));
    } catch (const std::exception&) {
      err << "fathom-bridge: --limit must be a number\n";
      return 2;
    }
    auto r = bridge.script_versions_json(tenant, limit);
    if (!r.ok()) return refused(err, r.status());
    if (values.count("json")) {
      out << json::parse(*r).dump(2) << "\n";
    } else {
      print_versions(out, json::parse(*r));
    }
    return 0;
  }
  if (sub == "activate") {
    int64_t id = 0;
    if (!version_arg(positional, &id)) {
      err << "fathom-bridge: script activate needs one VERSION id\n";
      return 2;
    }
    auto r = bridge.script_activate(tenant, id, author_of(values));
    if (!r.ok()) return refused(err, r.status());
    print_activation(out, *r);
    return 0;
  }
  if (sub == "validate") {
    int64_t id = 0;
    int meetings = 50;
    try {
      meetings = std::stoi(value(values, "meetings", "50"));
    } catch (const std::exception&) {
      meetings = 0;
    }
    if (!version_arg(positional, &id) || meetings <= 0) {
      err << "fathom-bridge: script validate needs one VERSION id (and --meetings N > 0)\n";
      return 2;
    }
    int64_t period[2] = {0, 0};  // --since / --until: meetings created in that period (ISO 8601)
    for (int i = 0; i < 2; ++i) {
      const char* key = i == 0 ? "since" : "until";
      if (!values.count(key)) continue;
      if (!fb::detail::parse_iso8601(value(values, key, ""), &period[i])) {
        err << "fathom-bridge: script validate --" << key << " is not an ISO 8601 time\n";
        return 2;
      }
    }
    auto r = bridge.script_validate(tenant, id, meetings, period[0], period[1]);
    if (!r.ok()) return refused(err, r.status());
    if (values.count("json")) {
      out << json::parse(*r).dump(2) << "\n";
    } else {
      print_validation(out, json::parse(*r));
    }
    return 0;
  }
  auto r = bridge.script_rollback(tenant, author_of(values));  // "rollback"
  if (!r.ok()) return refused(err, r.status());
  print_activation(out, *r);
  return 0;
}

}  // namespace fb::cli
