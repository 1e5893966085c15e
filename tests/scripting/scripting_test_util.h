// scripting_test_util.h: helpers for the scripting tests: a temp scripts directory, a CRM that
// behaves like a real one (records matched by email/domain, idempotency keys honoured), and
// shortcuts to build a ScriptHost and meeting events.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fathom_bridge/events.h"
#include "scripting/script_host.h"
#include "support/temp_dir.h"

namespace fb::test {

using nlohmann::json;
namespace fs = std::filesystem;

// A unique directory under the system temp dir, removed afterwards.
class ScriptDir {
 public:
  ScriptDir() {
    std::string tmpl = (fs::temp_directory_path() / "fb-scripting-XXXXXX").string();
    root_ = ::mkdtemp(tmpl.data());
    fs::create_directories(root_ / "scripts");
  }
  ~ScriptDir() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  ScriptDir(const ScriptDir&) = delete;
  ScriptDir& operator=(const ScriptDir&) = delete;

  std::string dir() const { return (root_ / "scripts").string(); }
  std::string root() const { return root_.string(); }
  // The test's store `name`: a SQLite file, or in the suite's _postgresql run a PostgreSQL
  // database of its own (TempDir::store; the same name gives the same store in every process).
  std::string store(const std::string& name = "store.db") const { return stores_.store(name); }
  // Writes (replacing atomically, as editors do) a file relative to the scripts directory.
  void write(const std::string& rel, const std::string& text) const {
    fs::path p = root_ / "scripts" / rel;
    fs::create_directories(p.parent_path());
    fs::path tmp = p;
    tmp += ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary);
      out << text;
    }
    fs::rename(tmp, p);
  }
  // Writes in place (same inode, as `echo > file` does).
  void overwrite(const std::string& rel, const std::string& text) const {
    std::ofstream out(root_ / "scripts" / rel, std::ios::binary | std::ios::trunc);
    out << text;
  }
  void copy_in(const std::string& from, const std::string& rel) const { write(rel, read_file(from)); }

  static std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  fs::path root_;
  TempDir stores_;
};

inline std::string source_path(const std::string& rel) { return std::string(FB_SOURCE_DIR) + "/" + rel; }
inline std::string fixture(const std::string& name) {
  return ScriptDir::read_file(source_path("tests/scripting/fixtures/" + name));
}

// A CRM with the semantics scripts/README.md asks of hosts: companies matched by domain,
// contacts by email, activities by recording, tasks by (recording, title); and, like a real
// CRM's idempotency support, a repeated key returns the first answer without doing anything.
class RecordingCrm {
 public:
  struct Call {
    std::string op;
    json args;
    std::string key;
    bool replayed = false;  // answered from the idempotency cache
  };

  void install(detail::ScriptHost& host, std::vector<std::string> ops = {}) {
    if (ops.empty()) {
      ops = {"find_company_by_domain", "upsert_company", "find_contact_by_email", "upsert_contact", "log_activity",
             "create_task", "find_deal", "create_deal", "attach_recording"};
    }
    for (const auto& op : ops) {
      Status s = host.register_crm_operation(op, [this, op](const CrmCall& c) { return handle(op, c); });
      if (!s.ok()) throw std::runtime_error(s.to_string());
    }
  }

  Result<std::string> handle(const std::string& op, const CrmCall& c) {
    std::lock_guard lock(mu_);
    json args = json::parse(c.args_json);
    if (c.idempotency_key.empty()) return Status::InvalidArgument("missing idempotency key");
    if (auto it = by_key_.find(c.idempotency_key); it != by_key_.end()) {
      if (it->second.first != op) return Status::Conflict("idempotency key reused for another operation");
      calls.push_back({op, args, c.idempotency_key, true});
      return it->second.second;
    }
    calls.push_back({op, args, c.idempotency_key, false});
    if (fail_next.count(op)) {
      std::string why = fail_next[op];
      fail_next.erase(op);
      return Status::Unavailable(why);  // failures are not cached: a retry may succeed
    }
    json result = apply(op, args);
    std::string text = result.dump();
    by_key_[c.idempotency_key] = {op, text};
    return text;
  }

  json apply(const std::string& op, const json& a) {
    auto new_id = [&](const char* prefix) { return std::string(prefix) + std::to_string(++next_id_); };
    if (op == "find_company_by_domain") {
      auto it = companies.find(a.at("domain").get<std::string>());
      return it == companies.end() ? json(nullptr) : it->second;
    }
    if (op == "upsert_company") {
      std::string d = a.at("domain");
      if (!companies.count(d)) companies[d] = {{"id", new_id("co_")}, {"name", a.value("name", d)}, {"domain", d}};
      return companies[d];
    }
    if (op == "find_contact_by_email") {
      auto it = contacts.find(a.at("email").get<std::string>());
      return it == contacts.end() ? json(nullptr) : it->second;
    }
    if (op == "upsert_contact") {
      std::string e = a.at("email");
      if (!contacts.count(e)) contacts[e] = {{"id", new_id("ct_")}, {"email", e}};
      if (a.contains("company_id")) contacts[e]["company_id"] = a["company_id"];
      if (a.contains("name")) contacts[e]["name"] = a["name"];
      return {{"id", contacts[e]["id"]}};
    }
    if (op == "log_activity") {
      std::string rec = a.at("recording_id").dump();
      if (!activities.count(rec)) activities[rec] = {{"id", new_id("act_")}};
      std::string id = activities[rec]["id"];
      activities[rec] = a;
      activities[rec]["id"] = id;
      return {{"id", id}};
    }
    if (op == "create_task") {
      std::string k = a.value("recording_id", json(0)).dump() + "|" + a.value("title", "") + "|" + a.value("kind", "");
      if (!tasks.count(k)) {
        tasks[k] = a;
        tasks[k]["id"] = new_id("task_");
      }
      return {{"id", tasks[k]["id"]}};
    }
    if (op == "find_deal") {
      for (const auto& [id, d] : deals) {
        if (d.value("company_id", "") == a.value("company_id", "")) return d;
      }
      return nullptr;
    }
    if (op == "create_deal") {
      std::string id = new_id("deal_");
      deals[id] = a;
      deals[id]["id"] = id;
      return deals[id];
    }
    if (op == "attach_recording") {
      std::string k = a.value("record_type", "") + ":" + a.value("record_id", "") + ":" + a.at("recording_id").dump();
      attachments[k] = a;
      return {{"id", "att_" + k}};
    }
    return {{"ok", true}};
  }

  std::vector<std::string> ops() const {
    std::vector<std::string> out;
    for (const auto& c : calls) out.push_back(c.op);
    return out;
  }
  std::vector<Call> calls_of(const std::string& op) const {
    std::vector<Call> out;
    for (const auto& c : calls) {
      if (c.op == op) out.push_back(c);
    }
    return out;
  }
  size_t records() const {
    return companies.size() + contacts.size() + activities.size() + tasks.size() + deals.size() + attachments.size();
  }

  std::vector<Call> calls;
  std::map<std::string, json> companies, contacts, activities, tasks, deals, attachments;
  std::map<std::string, std::string> fail_next;  // op -> message of the next failure

 private:
  std::mutex mu_;
  std::map<std::string, std::pair<std::string, std::string>> by_key_;
  int next_id_ = 0;
};

// Built with a sanitizer (clang says so through __has_feature; GCC defines __SANITIZE_*__).
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define FB_TEST_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define FB_TEST_SANITIZED 1
#endif

// The scripts' wall-clock budget in these suites: 300 ms, and ten times that under a sanitizer,
// where Lua and its C functions run several times slower and a loaded two-core machine gives a
// thread part of a core (seen in a fresh-clone CI run under ASan, load 5: the default mapping of a
// 400-invitee meeting, and one of six threads mapping many_invitees.json, stopped at 300 ms). A case
// about the budget itself sets its own.
#ifdef FB_TEST_SANITIZED
constexpr int64_t kTestTimeLimitMs = 3000;
#else
constexpr int64_t kTestTimeLimitMs = 300;
#endif

inline detail::ScriptHostOptions host_options(const ScriptDir& d) {
  detail::ScriptHostOptions o;
  o.config.dir = d.dir();
  o.config.time_limit_ms = kTestTimeLimitMs;
  o.config.memory_limit_bytes = 32 << 20;
  o.config.reload_interval_ms = 0;
  o.config.company_domains = {"example.com"};
  return o;
}

inline std::unique_ptr<detail::ScriptHost> open_host(detail::ScriptHostOptions o) {
  auto h = detail::ScriptHost::open(std::move(o));
  if (!h.ok()) throw std::runtime_error(h.status().to_string());
  return std::move(h).value();
}

// A MeetingEvent over json text kept alive by the caller.
// A meeting with only a title and a recording id: what the attack and budget scripts read.
inline std::string meeting_titled(const std::string& title, int64_t rec) {
  return json{{"title", title}, {"recording_id", rec}}.dump();
}

// A hostile script's entry point (the script branches on the meeting's title) and a substring of
// the error it must end with.
struct Attack {
  const char* name;
  const char* expect;
};

inline detail::MeetingEvent meeting_event(const std::string& raw, int64_t recording_id, int64_t version = 1,
                                          int64_t integration_id = 7) {
  detail::MeetingEvent e;
  e.integration_id = integration_id;
  e.tenant_id = "acme-crm";
  e.user_id = "u42";
  e.recording_id = recording_id;
  e.content_version = version;
  e.raw_json = raw;
  e.source = "sync";
  return e;
}

// Collects host events (script_loaded / script_rejected).
struct EventLog {
  std::mutex mu;
  std::vector<Event> events;
  EventSink sink() {
    return [this](const Event& e) {
      std::lock_guard lock(mu);
      events.push_back(e);
    };
  }
  std::vector<Event> of(const std::string& type) {
    std::lock_guard lock(mu);
    std::vector<Event> out;
    for (const auto& e : events) {
      if (e.type == type) out.push_back(e);
    }
    return out;
  }
};

}  // namespace fb::test
