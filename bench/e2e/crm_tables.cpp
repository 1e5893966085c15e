// crm_tables.cpp: see crm_tables.h. Ids are natural keys (crm_schema.sql), so a repeated call
// writes the same row again and returns the same result.
#include "crm_tables.h"

#include <simdjson.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <stdexcept>

namespace e2e {

namespace {

using simdjson::dom::element;
using simdjson::dom::object;

// The string at key, or nullopt-like false when missing or not a string.
bool str(const object& args, const char* key, std::string_view* v) {
  return args[key].get_string().get(*v) == simdjson::SUCCESS;
}

std::string text(const object& args, const char* key) {
  std::string_view v;
  return str(args, key, &v) ? std::string(v) : std::string();
}

// Bound without a copy: the parse's strings live until this thread's next parse, and the
// statement is stepped before that (stmt() clears the bindings before its next use).
void bind_text(sqlite3_stmt* s, int i, const object& args, const char* key) {
  std::string_view v;
  if (str(args, key, &v)) {
    sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  } else {
    sqlite3_bind_null(s, i);
  }
}

void bind_str(sqlite3_stmt* s, int i, const std::string& v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

// An integer argument (a number with a fraction is cut to its integer part), else NULL.
bool integer(const object& args, const char* key, int64_t* n) {
  element e;
  if (args[key].get(e) != simdjson::SUCCESS) return false;
  if (e.get_int64().get(*n) == simdjson::SUCCESS) return true;
  double d;
  if (e.get_double().get(d) != simdjson::SUCCESS) return false;
  *n = static_cast<int64_t>(d);
  return true;
}

void bind_int(sqlite3_stmt* s, int i, const object& args, const char* key) {
  int64_t n;
  if (integer(args, key, &n)) {
    sqlite3_bind_int64(s, i, n);
  } else {
    sqlite3_bind_null(s, i);
  }
}

// An array argument as compact JSON text ("[]" when missing).
std::string array_text(const object& args, const char* key) {
  simdjson::dom::array a;
  return args[key].get_array().get(a) == simdjson::SUCCESS ? simdjson::to_string(a) : std::string("[]");
}

// Appends v as a JSON string.
void quote(std::string& out, std::string_view v) {
  out.push_back('"');
  for (char c : v) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

// A JSON object of string (or null) members: {"k": "v", ...}.
std::string object_of(std::initializer_list<std::pair<const char*, const std::string_view*>> members) {
  std::string out = "{";
  for (const auto& [k, v] : members) {
    if (out.size() > 1) out.push_back(',');
    quote(out, k);
    out.push_back(':');
    if (v) {
      quote(out, *v);
    } else {
      out += "null";
    }
  }
  out.push_back('}');
  return out;
}

std::string_view column(sqlite3_stmt* s, int i, bool* null) {
  *null = sqlite3_column_type(s, i) == SQLITE_NULL;
  if (*null) return {};
  return {reinterpret_cast<const char*>(sqlite3_column_text(s, i)), static_cast<size_t>(sqlite3_column_bytes(s, i))};
}

}  // namespace

std::string_view args_of(const char* call_json) {
  const char* a = std::strstr(call_json, "\"args\":");
  if (!a) return "{}";
  a += 7;
  while (*a == ' ') ++a;
  int depth = 0;
  bool in_str = false;
  for (const char* p = a; *p; ++p) {
    char c = *p;
    if (in_str) {
      if (c == '\\') {
        ++p;
      } else if (c == '"') {
        in_str = false;
      }
    } else if (c == '"') {
      in_str = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if ((c == '}' || c == ']') && --depth == 0) {
      return std::string_view(a, static_cast<size_t>(p + 1 - a));
    }
  }
  return "{}";
}

CrmTables::CrmTables(const std::string& path, const std::string& schema_file) {
  if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) throw std::runtime_error("cannot open CRM database " + path);
  sqlite3_busy_timeout(db_, 10000);
  std::ifstream in(schema_file);
  if (!in) throw std::runtime_error("cannot read CRM schema " + schema_file);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!exec(ss.str().c_str())) throw std::runtime_error(std::string("CRM schema: ") + sqlite3_errmsg(db_));
}

CrmTables::~CrmTables() {
  for (auto& [sql, s] : stmts_) sqlite3_finalize(s);
  sqlite3_close(db_);
}

bool CrmTables::exec(const char* sql) { return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) == SQLITE_OK; }

sqlite3_stmt* CrmTables::stmt(const char* sql) {
  auto it = stmts_.find(sql);
  if (it != stmts_.end()) {
    sqlite3_reset(it->second);
    sqlite3_clear_bindings(it->second);
    return it->second;
  }
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK) {
    throw std::runtime_error(std::string("CRM statement: ") + sqlite3_errmsg(db_));
  }
  stmts_[sql] = s;
  return s;
}

bool CrmTables::begin_batch() {
  mu_.lock();
  if (!exec("BEGIN IMMEDIATE")) {
    mu_.unlock();
    return false;
  }
  batch_owner_ = std::this_thread::get_id();
  return true;
}

bool CrmTables::end_batch(bool commit) {
  if (batch_owner_ != std::this_thread::get_id()) return false;
  bool ok = commit ? exec("COMMIT") : exec("ROLLBACK");
  if (!ok && commit) exec("ROLLBACK");
  batch_owner_ = std::thread::id();
  mu_.unlock();
  return ok;
}

bool CrmTables::call(const std::string& op, std::string_view args_json, std::string* result) {
  if (batch_owner_ == std::this_thread::get_id()) return run(op, args_json, result);
  std::lock_guard<std::mutex> lock(mu_);
  return run(op, args_json, result);  // autocommit: one transaction per call
}

bool CrmTables::run(const std::string& op, std::string_view args_json, std::string* result) {
  // simdjson, not a JSON tree library: the CRM side of a call is the host's cost per event too.
  thread_local simdjson::dom::parser parser;
  object args;
  if (parser.parse(args_json.data(), args_json.size()).get_object().get(args) != simdjson::SUCCESS) {
    *result = op + ": arguments are not a JSON object";
    return false;
  }
  auto step_done = [&](sqlite3_stmt* s) {
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
      *result = op + ": " + sqlite3_errmsg(db_);
      return false;
    }
    return true;
  };
  if (op == "find_company_by_domain" || op == "find_contact_by_email") {
    bool company = op == "find_company_by_domain";
    sqlite3_stmt* s = stmt(company ? "SELECT id, domain, name FROM companies WHERE domain = ?"
                                   : "SELECT id, email, name, company_id FROM contacts WHERE email = ?");
    bind_text(s, 1, args, company ? "domain" : "email");
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
      *result = "null";
      return true;
    }
    if (rc != SQLITE_ROW) return step_done(s);
    bool null[4];
    std::string_view v[4];
    for (int i = 0; i < (company ? 3 : 4); ++i) v[i] = column(s, i, &null[i]);
    auto at = [&](int i) { return null[i] ? nullptr : &v[i]; };
    *result = company ? object_of({{"id", at(0)}, {"domain", at(1)}, {"name", at(2)}})
                      : object_of({{"id", at(0)}, {"email", at(1)}, {"name", at(2)}, {"company_id", at(3)}});
    return true;
  }
  if (op == "upsert_company") {
    std::string domain = text(args, "domain");
    if (domain.empty()) return *result = "upsert_company: domain is required", false;
    sqlite3_stmt* s = stmt(
        "INSERT INTO companies (id, domain, name) VALUES (?, ?, ?) "
        "ON CONFLICT (domain) DO UPDATE SET name = coalesce(excluded.name, companies.name)");
    bind_str(s, 1, "co:" + domain);
    bind_str(s, 2, domain);
    bind_text(s, 3, args, "name");
    if (!step_done(s)) return false;
    const std::string id = "co:" + domain;
    const std::string_view idv = id, dv = domain;
    std::string_view name;
    *result = object_of({{"id", &idv}, {"domain", &dv}, {"name", str(args, "name", &name) ? &name : nullptr}});
    return true;
  }
  if (op == "upsert_contact") {
    std::string email = text(args, "email");
    if (email.empty()) return *result = "upsert_contact: email is required", false;
    sqlite3_stmt* s = stmt(
        "INSERT INTO contacts (id, email, name, company_id) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (email) DO UPDATE SET name = coalesce(excluded.name, contacts.name), "
        "company_id = coalesce(excluded.company_id, contacts.company_id)");
    bind_str(s, 1, "ct:" + email);
    bind_str(s, 2, email);
    bind_text(s, 3, args, "name");
    bind_text(s, 4, args, "company_id");
    if (!step_done(s)) return false;
    const std::string id = "ct:" + email;
    const std::string_view idv = id, ev = email;
    *result = object_of({{"id", &idv}, {"email", &ev}});
    return true;
  }
  if (op == "log_activity") {
    int64_t rid;
    if (!integer(args, "recording_id", &rid)) return *result = "log_activity: recording_id is required", false;
    std::string id = "act:" + std::to_string(rid);
    sqlite3_stmt* s = stmt(
        "INSERT INTO activities (id, recording_id, type, title, started_at, ended_at, duration_s, share_url, url, "
        "summary, owner_email, contact_ids, company_ids) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET type = excluded.type, title = excluded.title, started_at = "
        "excluded.started_at, ended_at = excluded.ended_at, duration_s = excluded.duration_s, share_url = "
        "excluded.share_url, url = excluded.url, summary = excluded.summary, owner_email = excluded.owner_email, "
        "contact_ids = excluded.contact_ids, company_ids = excluded.company_ids");
    bind_str(s, 1, id);
    bind_int(s, 2, args, "recording_id");
    const char* texts[] = {"type", "title", "started_at", "ended_at"};
    for (int i = 0; i < 4; ++i) bind_text(s, 3 + i, args, texts[i]);
    bind_int(s, 7, args, "duration_s");
    bind_text(s, 8, args, "share_url");
    bind_text(s, 9, args, "url");
    bind_text(s, 10, args, "summary");
    bind_text(s, 11, args, "owner_email");
    bind_str(s, 12, array_text(args, "contact_ids"));
    bind_str(s, 13, array_text(args, "company_ids"));
    if (!step_done(s)) return false;
    {
      const std::string_view idv = id;
      *result = object_of({{"id", &idv}});
    }
    return true;
  }
  if (op == "create_task") {
    std::string activity = text(args, "activity_id");
    std::string id = "task:" + activity + ":" + text(args, "title");
    sqlite3_stmt* s = stmt(
        "INSERT INTO tasks (id, activity_id, recording_id, title, assignee_email, playback_url) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET assignee_email = excluded.assignee_email, "
        "playback_url = excluded.playback_url");
    bind_str(s, 1, id);
    bind_text(s, 2, args, "activity_id");
    bind_int(s, 3, args, "recording_id");
    bind_text(s, 4, args, "title");
    bind_text(s, 5, args, "assignee_email");
    bind_text(s, 6, args, "playback_url");
    if (!step_done(s)) return false;
    {
      const std::string_view idv = id;
      *result = object_of({{"id", &idv}});
    }
    return true;
  }
  if (op == "attach_recording") {
    int64_t rid;
    std::string id = "att:" + text(args, "record_type") + ":" + text(args, "record_id") + ":" +
                     (integer(args, "recording_id", &rid) ? std::to_string(rid) : "");
    sqlite3_stmt* s = stmt(
        "INSERT INTO attachments (id, record_type, record_id, recording_id, share_url, title) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET share_url = excluded.share_url, "
        "title = excluded.title");
    bind_str(s, 1, id);
    bind_text(s, 2, args, "record_type");
    bind_text(s, 3, args, "record_id");
    bind_int(s, 4, args, "recording_id");
    bind_text(s, 5, args, "share_url");
    bind_text(s, 6, args, "title");
    if (!step_done(s)) return false;
    {
      const std::string_view idv = id;
      *result = object_of({{"id", &idv}});
    }
    return true;
  }
  if (op == "find_deal") {  // this CRM keeps no deals
    *result = "null";
    return true;
  }
  *result = "this CRM does not support " + op;
  return false;
}

}  // namespace e2e
