// demo-crm: a small CRM that loads fathom-bridge through its C ABI, as any host would.
//
// It keeps its records (companies, contacts, activities, tasks, deals, attachments) in memory,
// implements the CRM operations the Lua scripts call, serves its own web page with a
// "Connect Fathom" button (popup flow), the OAuth callback and the webhook route, and, with
// --scenario, plays a whole story against fathom-sim: connect (popup, redirect, deny), backfill,
// a webhook for a new meeting, an idle incremental sync, token expiry and a revoked grant.
//
//   demo-crm --sim http://127.0.0.1:PORT --data DIR [--port 8787] [--scenario] [--serve]
#include <httplib.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <algorithm>
#include <climits>
#include <cstdint>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fathom_bridge/fathom_bridge.h"

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::atomic<bool> g_stop{false};

// ---------------------------------------------------------------- the CRM's own records

class Crm {
 public:
  // Dispatches one operation. Idempotency: a repeated key returns the first result unchanged.
  json call(const std::string& op, const json& args, const std::string& key) {
    std::lock_guard lock(mu_);
    if (auto it = done_.find(key); !key.empty() && it != done_.end()) {
      ++replayed_;
      return it->second;
    }
    json result = apply(op, args);
    if (!key.empty()) done_[key] = result;
    return result;
  }

  json snapshot() const {
    std::lock_guard lock(mu_);
    json j = json::object();
    for (const auto& [table, rows] : tables_) j[table] = rows;
    j["idempotent_replays"] = replayed_;
    return j;
  }

  size_t count_where(const std::string& table, const std::string& field, const std::string& value) const {
    std::lock_guard lock(mu_);
    auto it = tables_.find(table);
    if (it == tables_.end()) return 0;
    size_t n = 0;
    for (const auto& row : it->second) n += row.value(field, "") == value;
    return n;
  }

  size_t count(const std::string& table) const {
    std::lock_guard lock(mu_);
    auto it = tables_.find(table);
    return it == tables_.end() ? 0 : it->second.size();
  }

 private:
  std::string next_id(const std::string& prefix) { return prefix + "_" + std::to_string(++seq_); }

  // Finds a row of table whose field equals value (case-insensitively for emails/domains).
  json* find(const std::string& table, const std::string& field, const std::string& value) {
    auto lower = [](std::string s) {
      for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return s;
    };
    for (auto& row : tables_[table]) {
      if (row.contains(field) && row[field].is_string() && lower(row[field]) == lower(value)) return &row;
    }
    return nullptr;
  }

  json upsert(const std::string& table, const char* prefix, const char* key_field, const json& args) {
    std::string key = args.value(key_field, "");
    if (!key.empty()) {
      if (json* row = find(table, key_field, key)) {
        for (const auto& [k, v] : args.items()) (*row)[k] = v;
        return {{"id", (*row)["id"]}, {"created", false}};
      }
    }
    json row = args;
    row["id"] = next_id(prefix);
    tables_[table].push_back(row);
    return {{"id", row["id"]}, {"created", true}};
  }

  json insert(const std::string& table, const char* prefix, const json& args) {
    json row = args;
    row["id"] = next_id(prefix);
    tables_[table].push_back(row);
    return {{"id", row["id"]}};
  }

  // The operations and shapes documented in scripts/README.md ("CRM operations").
  json apply(const std::string& op, const json& args) {
    if (op == "find_company_by_domain") {
      json* row = find("companies", "domain", args.value("domain", ""));
      return row ? *row : json(nullptr);
    }
    if (op == "find_contact_by_email") {
      json* row = find("contacts", "email", args.value("email", ""));
      return row ? *row : json(nullptr);
    }
    if (op == "find_deal") {
      std::string company = args.value("company_id", "");
      json* row = company.empty() ? nullptr : find("deals", "company_id", company);
      return row ? *row : json(nullptr);
    }
    if (op == "upsert_company") return upsert("companies", "co", "domain", args);
    if (op == "upsert_contact") return upsert("contacts", "ct", "email", args);
    if (op == "log_activity") {  // one activity per recording; a later version updates it
      for (auto& row : tables_["activities"]) {
        if (row.value("recording_id", json()) == args.value("recording_id", json())) {
          for (const auto& [k, v] : args.items()) row[k] = v;
          return {{"id", row["id"]}};
        }
      }
      return insert("activities", "act", args);
    }
    if (op == "create_task") {  // the same (recording, title, kind) is the same task
      for (auto& row : tables_["tasks"]) {
        if (row.value("recording_id", json()) == args.value("recording_id", json()) &&
            row.value("title", "") == args.value("title", "") && row.value("kind", "") == args.value("kind", "")) {
          return {{"id", row["id"]}};
        }
      }
      return insert("tasks", "task", args);
    }
    if (op == "create_deal") return insert("deals", "deal", args);
    if (op == "attach_recording") return insert("attachments", "att", args);
    throw std::runtime_error("demo-crm does not implement operation '" + op + "'");
  }

  mutable std::mutex mu_;
  std::map<std::string, std::vector<json>> tables_;
  std::map<std::string, json> done_;
  int64_t seq_ = 0;
  int64_t replayed_ = 0;
};

Crm g_crm;
std::mutex g_events_mu;
std::vector<json> g_events;

void on_event(void*, const char* event_json) {
  json e = json::parse(event_json, nullptr, false);
  std::lock_guard lock(g_events_mu);
  g_events.push_back(e);
}

int on_crm(void* op_name, const char* call_json, char** result_json, char** error_message) {
  try {
    json call = json::parse(call_json);
    std::string op = static_cast<const char*>(op_name);
    if (call.value("dry_run", false)) {
      *result_json = strdup(op.rfind("find_", 0) == 0 ? "null" : "{\"id\":\"dry-run\"}");
      return FB_OK;
    }
    json r = g_crm.call(op, call["args"], call.value("idempotency_key", ""));
    *result_json = strdup(r.dump().c_str());
    return FB_OK;
  } catch (const std::exception& e) {
    *error_message = strdup(e.what());
    return FB_UNAVAILABLE;
  }
}

const char* kOps[] = {"find_company_by_domain", "find_contact_by_email", "find_deal", "upsert_company",
                      "upsert_contact", "log_activity", "create_task", "create_deal", "attach_recording"};

// ---------------------------------------------------------------- helpers

std::string take(char* s) {
  std::string out = s ? s : "";
  fb_string_free(s);
  return out;
}

std::string random_key_b64() {
  std::random_device rd;
  std::string bytes(32, '\0');
  for (auto& c : bytes) c = static_cast<char>(rd());
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < 32; i += 3) {
    uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < 32) v |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    if (i + 2 < 32) v |= static_cast<uint8_t>(bytes[i + 2]);
    out += t[(v >> 18) & 63];
    out += t[(v >> 12) & 63];
    out += i + 1 < 32 ? t[(v >> 6) & 63] : '=';
    out += i + 2 < 32 ? t[v & 63] : '=';
  }
  return out;
}

// The demo's token key lives in its data dir (mode 0600), so restarts can open stored tokens.
std::string load_or_make_key(const fs::path& dir) {
  fs::path p = dir / "token.key";
  if (fs::exists(p)) {
    std::ifstream in(p);
    std::string k;
    std::getline(in, k);
    return k;
  }
  std::string k = random_key_b64();
  std::ofstream(p) << k << "\n";
  fs::permissions(p, fs::perms::owner_read | fs::perms::owner_write);
  return k;
}

void step(const std::string& title) { std::cout << "\n\033[1;35m== " << title << "\033[0m\n" << std::flush; }
void say(const std::string& line) { std::cout << "   " << line << "\n" << std::flush; }

struct Args {
  std::string sim;
  std::string data = "demo-data";
  std::string scripts;
  std::string widget = FB_WIDGET_JS;  // widget/fathom-connect.js of the source tree
  int port = 8787;
  bool scenario = false;
  bool serve = false;
};

// ---------------------------------------------------------------- the CRM's web server

// The demo CRM's pages: an Integrations page with the connect widget (widget/fathom-connect.js)
// and every connection's token health, and tables of the records the scripts made, newest first.
// The signed-in user is u-alice of tenant acme (a real CRM would take it from its session).
const char* kTenant = "acme";
const char* kUser = "u-alice";

// Who is signed in to the demo CRM: its stand-in for a session is the cookie demo_user (the
// scripted story's browsers are Alice, Bob and Carol); without it, the page's user, kUser. A real
// CRM takes this from its own session, which the browser brings on Fathom's redirect.
std::string signed_in_user(const httplib::Request& req) {
  const std::string cookies = req.get_header_value("Cookie");
  const std::string key = "demo_user=";
  for (size_t at = cookies.find(key); at != std::string::npos; at = cookies.find(key, at + 1)) {
    if (at != 0 && cookies[at - 1] != ' ' && cookies[at - 1] != ';') continue;
    const size_t start = at + key.size(), end = cookies.find(';', start);
    return cookies.substr(start, end == std::string::npos ? std::string::npos : end - start);
  }
  return kUser;
}

std::string esc(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string str(const json& row, const char* key) {
  if (!row.contains(key) || row[key].is_null()) return "";
  return row[key].is_string() ? row[key].get<std::string>() : row[key].dump();
}

// The numeric part of an id such as "act_12": the order records were made in.
long long seq_of(const json& row) {
  std::string id = str(row, "id");
  size_t u = id.rfind('_');
  return u == std::string::npos ? 0 : std::atoll(id.c_str() + u + 1);
}

std::vector<json> newest_first(const json& rows, const char* time_key = nullptr) {
  std::vector<json> out;
  if (rows.is_array()) out.assign(rows.begin(), rows.end());
  std::stable_sort(out.begin(), out.end(), [&](const json& x, const json& y) {
    if (time_key && str(x, time_key) != str(y, time_key)) return str(x, time_key) > str(y, time_key);
    return seq_of(x) > seq_of(y);
  });
  return out;
}

// "reconnect_fathom" -> "reconnect fathom": machine words as people read them.
std::string words(std::string s) {
  for (char& c : s) c = c == '_' ? ' ' : c;
  return s;
}

std::string when(const std::string& iso) { return iso.size() >= 16 ? iso.substr(0, 10) + " " + iso.substr(11, 5) : iso; }

// Token health as a badge: the word and a colour for each status.
std::string health_badge(const std::string& status) {
  const char* tone = status == "valid" ? "ok" : status == "expiring_soon" || status == "refresh_in_doubt" ? "warn"
                     : status == "disconnected" ? "off" : "bad";
  return "<span class=\"badge " + std::string(tone) + "\" data-status=\"" + esc(status) + "\">" + esc(words(status)) + "</span>";
}

json token_health(fb_bridge* b, const char* user) {
  char* r = nullptr;
  if (fb_token_health(b, kTenant, user, &r) != FB_OK) return json::array();
  json j = json::parse(take(r), nullptr, false);
  return j.is_array() ? j : json::array();
}

std::string page(const std::string& active, const std::string& title, const std::string& body) {
  std::ostringstream o;
  o << R"(<!doctype html><html lang="en"><head><meta charset="utf-8"><title>)" << esc(title) << R"( · Acme CRM</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2330;background:#f4f5f8}
header{background:#1f2330;color:#fff;display:flex;align-items:center;gap:24px;padding:0 24px;height:52px}
header .brand{font-weight:700;font-size:16px}header nav{display:flex;gap:4px;flex:1}
header nav a{color:#c9ccd6;text-decoration:none;padding:6px 12px;border-radius:6px}
header nav a[aria-current=page]{background:#3a3f52;color:#fff}header .me{color:#c9ccd6;font-size:13px}
main{max-width:1100px;margin:24px auto;padding:0 24px}h1{font-size:22px;margin:0 0 16px}h2{font-size:16px;margin:28px 0 10px}
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid #e1e4ea;border-radius:8px;overflow:hidden}
th,td{text-align:left;padding:9px 12px;border-bottom:1px solid #eceef2;vertical-align:top}
th{background:#fafbfc;font-size:12px;text-transform:uppercase;letter-spacing:.03em;color:#5b6275}
tr:last-child td{border-bottom:0}td.summary{max-width:420px;color:#434859}.muted{color:#7a8194}.empty{padding:18px;color:#7a8194;background:#fff;border:1px dashed #d9dce5;border-radius:8px}
.badge{display:inline-block;border-radius:999px;padding:1px 9px;font-size:12px;font-weight:600}
.badge.ok{background:#e3f6ea;color:#137a3a}.badge.warn{background:#fff1db;color:#9a5b00}.badge.bad{background:#fde7e7;color:#b42318}.badge.off{background:#eef0f4;color:#5b6275}
a{color:#5636d3}fathom-connect{max-width:640px;--fathom-accent:#5636d3}
</style></head><body><header><span class="brand">Acme CRM</span><nav aria-label="Main">)";
  const char* links[][2] = {{"/integrations", "Integrations"}, {"/companies", "Companies"}, {"/contacts", "Contacts"},
                            {"/activities", "Activities"}, {"/tasks", "Tasks"}};
  for (auto& l : links) {
    o << "<a href=\"" << l[0] << "\"" << (active == l[0] ? " aria-current=\"page\"" : "") << ">" << l[1] << "</a>";
  }
  o << "</nav><span class=\"me\">Signed in as <b>" << kUser << "</b> · " << kTenant << "</span></header><main>"
    << body << "</main></body></html>";
  return o.str();
}

std::string table(const std::vector<std::string>& heads, const std::vector<std::vector<std::string>>& rows,
                  const std::string& id, const std::string& empty) {
  if (rows.empty()) return "<p class=\"empty\" id=\"" + id + "\">" + empty + "</p>";
  std::string t = "<table id=\"" + id + "\"><thead><tr>";
  for (const auto& h : heads) t += "<th scope=\"col\">" + h + "</th>";
  t += "</tr></thead><tbody>";
  for (const auto& r : rows) {
    t += "<tr>";
    for (const auto& c : r) t += "<td" + std::string(c.rfind("<!--summary-->", 0) == 0 ? " class=\"summary\"" : "") + ">" + c + "</td>";
    t += "</tr>";
  }
  return t + "</tbody></table>";
}

std::string activities_table(const json& snap, size_t limit) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& a : newest_first(snap.value("activities", json::array()), "started_at")) {
    if (rows.size() >= limit) break;
    std::string link = str(a, "share_url").empty() ? str(a, "url") : str(a, "share_url");
    // The summary is Markdown: shown as one line of plain text.
    std::string summary;
    for (char c : str(a, "summary")) {
      if (c == '#' || c == '*') continue;
      if (c == '\n' || c == '\t') c = ' ';
      if (c == ' ' && (summary.empty() || summary.back() == ' ')) continue;
      summary += c;
    }
    if (summary.size() > 280) summary = summary.substr(0, 277) + "...";
    rows.push_back({"<b>" + esc(str(a, "title")) + "</b>", esc(when(str(a, "started_at"))),
                    esc(str(a, "owner_email")),
                    link.empty() ? "<span class=\"muted\">none</span>"
                                 : "<a href=\"" + esc(link) + "\" target=\"_blank\" rel=\"noopener\">Recording</a>",
                    "<!--summary-->" + (summary.empty() ? "<span class=\"muted\">no summary</span>" : esc(summary))});
  }
  return table({"Meeting", "When", "Recorded by", "Recording", "Summary"}, rows, "activities",
               "No activities yet: connect Fathom and sync.");
}

// What the Integrations page refreshes when the widget reports a change or a sync.
std::string integrations_fragment(fb_bridge* b) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& h : token_health(b, nullptr)) {
    std::string expires = str(h, "expires_at");
    rows.push_back({esc(str(h, "user_id")), str(h, "fathom_email").empty() ? "<span class=\"muted\">unknown</span>" : esc(str(h, "fathom_email")),
                    esc(str(h, "kind")), health_badge(str(h, "status")),
                    expires.empty() ? "<span class=\"muted\">–</span>" : esc(when(expires)),
                    str(h, "last_sync_at").empty() ? "<span class=\"muted\">never</span>" : esc(when(str(h, "last_sync_at")))});
  }
  return "<h2>Fathom connections in " + std::string(kTenant) + "</h2>" +
         table({"CRM user", "Fathom account", "Type", "Token health", "Token expires", "Last sync"}, rows, "connections",
               "No one has connected Fathom yet.") +
         "<h2>Recent meeting activities</h2>" + activities_table(g_crm.snapshot(), 10);
}

std::string integrations_page(fb_bridge* b) {
  return page("/integrations", "Integrations",
              R"(<h1>Integrations</h1>
<fathom-connect id="fathom" endpoint=""></fathom-connect>
<div id="live">)" + integrations_fragment(b) + R"(</div>
<script type="module">
import '/fathom/widget.js';
// The widget reports every change and each finished sync: redraw the tables below it.
const live = document.getElementById('live');
const redraw = async () => { live.innerHTML = await (await fetch('/integrations/live')).text(); };
const w = document.getElementById('fathom');
w.addEventListener('fathom-change', (e) => { if (!e.detail.busy) redraw(); });
w.addEventListener('fathom-synced', redraw);
</script>)");
}

std::string records_page(const std::string& which) {
  json snap = g_crm.snapshot();
  std::vector<std::vector<std::string>> rows;
  std::map<std::string, std::string> company_names;
  for (const auto& c : snap.value("companies", json::array())) company_names[str(c, "id")] = str(c, "name");
  if (which == "/companies") {
    for (const auto& c : newest_first(snap.value("companies", json::array()))) {
      rows.push_back({"<b>" + esc(str(c, "name")) + "</b>", esc(str(c, "domain")), esc(str(c, "id"))});
    }
    return page(which, "Companies", "<h1>Companies</h1>" + table({"Name", "Domain", "Id"}, rows, "companies", "No companies yet."));
  }
  if (which == "/contacts") {
    for (const auto& c : newest_first(snap.value("contacts", json::array()))) {
      rows.push_back({"<b>" + esc(str(c, "name")) + "</b>", esc(str(c, "email")), esc(company_names[str(c, "company_id")])});
    }
    return page(which, "Contacts", "<h1>Contacts</h1>" + table({"Name", "Email", "Company"}, rows, "contacts", "No contacts yet."));
  }
  if (which == "/activities") return page(which, "Activities", "<h1>Activities</h1>" + activities_table(snap, SIZE_MAX));
  for (const auto& t : newest_first(snap.value("tasks", json::array()))) {
    std::string link = str(t, "playback_url");
    rows.push_back({"<b>" + esc(str(t, "title")) + "</b>", esc(str(t, "assignee_email")),
                    esc(str(t, "kind").empty() ? "action item" : words(str(t, "kind"))),
                    link.empty() ? "" : "<a href=\"" + esc(link) + "\" target=\"_blank\" rel=\"noopener\">Play</a>"});
  }
  return page(which, "Tasks", "<h1>Tasks</h1>" + table({"Task", "Assignee", "Kind", "Moment"}, rows, "tasks", "No tasks yet."));
}

// The signed-in user's routes for the widget, with the same shapes as the sidecar's user routes
// (plugin/server/user_routes.h), over the C ABI. This CRM's session is the demo's fixed user.
json user_status(fb_bridge* b) {
  json views = json::array(), current;
  for (const auto& h : token_health(b, kUser)) {
    json v = {{"integration_id", h["integration_id"]}, {"kind", h["kind"]}, {"token_status", h["status"]},
              {"expires_at", h["expires_at"]}, {"has_refresh_token", h["has_refresh_token"]},
              {"last_sync_at", h["last_sync_at"]}, {"fathom_email", h["fathom_email"]}};
    views.push_back(v);
    if (h.value("status", "") != "disconnected" && h.value("active", true) &&
        (current.is_null() || v["integration_id"].get<int64_t>() > current["integration_id"].get<int64_t>())) {
      current = v;
    }
  }
  std::string state = current.is_null() ? "disconnected"
                      : current["token_status"] == "reconnect_required" ? "reconnect_required" : "connected";
  return {{"state", state}, {"integration", current}, {"integrations", views}};
}

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(body.dump(), "application/json");
}

void mount_routes(httplib::Server& svr, fb_bridge* b, const std::string& widget_path) {
  svr.Get("/", [](const httplib::Request&, httplib::Response& res) { res.set_redirect("/integrations"); });
  svr.Get("/integrations", [b](const httplib::Request&, httplib::Response& res) {
    res.set_content(integrations_page(b), "text/html; charset=utf-8");
  });
  svr.Get("/integrations/live", [b](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    res.set_content(integrations_fragment(b), "text/html; charset=utf-8");
  });
  for (const char* p : {"/companies", "/contacts", "/activities", "/tasks"}) {
    svr.Get(p, [p](const httplib::Request&, httplib::Response& res) {
      res.set_content(records_page(p), "text/html; charset=utf-8");
    });
  }
  // The widget, as the sidecar serves it at the same path.
  svr.Get("/fathom/widget.js", [widget_path](const httplib::Request&, httplib::Response& res) {
    std::ifstream in(widget_path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) {
      res.status = 404;
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_content(text.str(), "text/javascript; charset=utf-8");
  });
  svr.Get("/fathom/connect", [b](const httplib::Request& req, httplib::Response& res) {
    std::string mode = req.has_param("mode") ? req.get_param_value("mode") : "popup";
    char* url = nullptr;
    int rc = fb_connect_start(b, kTenant, kUser, nullptr, mode != "redirect", &url);
    if (rc != FB_OK) return send_json(res, 400, {{"error", fb_code_name(rc)}, {"message", fb_errmsg(b)}});
    send_json(res, 200, {{"url", take(url)}, {"mode", mode == "redirect" ? "redirect" : "popup"},
                         {"callback_origin", "http://" + req.get_header_value("Host")}});
  });
  svr.Get("/fathom/status", [b](const httplib::Request&, httplib::Response& res) { send_json(res, 200, user_status(b)); });
  svr.Post("/fathom/sync", [b](const httplib::Request&, httplib::Response& res) {
    json s = user_status(b);
    if (s["integration"].is_null()) return send_json(res, 404, {{"error", "not_found"}, {"message", "Fathom is not connected"}});
    char* job = nullptr;
    // "Sync now" right after connecting finds the scheduler's first sync running: show its result.
    int rc = fb_sync(b, kTenant, kUser, s["integration"]["integration_id"].get<int64_t>(), "incremental",
                     "{\"wait_if_running\": true}", &job);
    if (rc != FB_OK) return send_json(res, 409, {{"error", fb_code_name(rc)}, {"message", fb_errmsg(b)}});
    send_json(res, 200, json::parse(take(job)));
  });
  svr.Post("/fathom/disconnect", [b](const httplib::Request&, httplib::Response& res) {
    json s = user_status(b);
    if (s["integration"].is_null()) return send_json(res, 404, {{"error", "not_found"}, {"message", "Fathom is not connected"}});
    int64_t id = s["integration"]["integration_id"].get<int64_t>();
    if (fb_disconnect(b, kTenant, kUser, id) != FB_OK) return send_json(res, 409, {{"error", "failed"}, {"message", fb_errmsg(b)}});
    send_json(res, 200, {{"disconnected", id}});
  });
  svr.Get("/connect", [b](const httplib::Request&, httplib::Response& res) {
    char* url = nullptr;
    if (fb_connect_start(b, kTenant, kUser, nullptr, 0, &url) != FB_OK) {
      res.status = 400;
      res.set_content(fb_errmsg(b), "text/plain");
      return;
    }
    res.set_redirect(take(url));
  });
  svr.Get("/oauth/callback", [b](const httplib::Request& req, httplib::Response& res) {
    std::string query;
    if (auto q = req.target.find('?'); q != std::string::npos) query = req.target.substr(q + 1);
    char* out = nullptr;
    // The callback runs in the CRM's session: a sign-in link of another user is refused.
    const std::string user = signed_in_user(req);
    fb_connect_callback_as(b, query.c_str(), kTenant, user.c_str(), &out);
    json r = json::parse(take(out));
    res.status = r.value("http_status", 200);
    if (r.contains("location") && !r["location"].get<std::string>().empty()) {
      res.set_header("Location", r["location"].get<std::string>());
    } else {
      res.set_content(r.value("body", ""), r.value("content_type", "text/html; charset=utf-8"));
    }
  });
  svr.Post(R"(/webhooks/fathom/.*)", [b](const httplib::Request& req, httplib::Response& res) {
    std::vector<const char*> names, values;
    for (const auto& [k, v] : req.headers) {
      names.push_back(k.c_str());
      values.push_back(v.c_str());
    }
    int status = 500;
    char* body = nullptr;
    fb_webhook_receive(b, req.path.c_str(), names.data(), values.data(), names.size(), req.body.data(),
                       req.body.size(), &status, &body);
    res.status = status;
    res.set_content(take(body), "text/plain");
  });
  svr.Get("/api/crm", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(g_crm.snapshot().dump(2), "application/json");
  });
}

// ---------------------------------------------------------------- the scripted story

std::string form_escape(const std::string& v) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : v) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// Acts as the user's browser at Fathom: opens the authorize page, clicks Approve or Deny, and
// follows the redirect back to our callback. Returns our callback's response.
// crm_user: who is signed in to the CRM in that browser (its session cookie goes with the callback).
httplib::Result browser_consent(const std::string& authorize_url, const std::string& fathom_user, bool approve,
                                const std::string& crm_base, const std::string& crm_user) {
  auto q = authorize_url.find('?');
  std::string origin = authorize_url.substr(0, authorize_url.find('/', authorize_url.find("://") + 3));
  std::string path = authorize_url.substr(origin.size(), q - origin.size());
  httplib::Client fathom(origin);
  auto page = fathom.Get(authorize_url.substr(origin.size()));
  if (!page || page->status != 200 || page->body.find("Approve") == std::string::npos) {
    throw std::runtime_error("the Fathom authorize page did not load");
  }
  std::string form = authorize_url.substr(q + 1) + "&user=" + form_escape(fathom_user) +
                     "&decision=" + (approve ? "approve" : "deny");
  auto decision = fathom.Post(path, form, "application/x-www-form-urlencoded");
  if (!decision || decision->status != 302) throw std::runtime_error("Fathom did not redirect after consent");
  std::string location = decision->get_header_value("Location");
  httplib::Client crm(crm_base);
  return crm.Get(location.substr(crm_base.size()), {{"Cookie", "demo_user=" + crm_user}});
}

template <typename F>
bool wait_for(F&& cond, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return cond();
}

size_t events_of(const std::string& type) {
  std::lock_guard lock(g_events_mu);
  size_t n = 0;
  for (const auto& e : g_events) n += e.value("type", "") == type;
  return n;
}

json sim_admin(const std::string& sim, const std::string& method, const std::string& path, const json& body = json()) {
  httplib::Client c(sim);
  auto r = method == "GET" ? c.Get(path) : c.Post(path, body.is_null() ? "{}" : body.dump(), "application/json");
  if (!r || r->status / 100 != 2) throw std::runtime_error("fathom-sim admin " + path + " failed");
  return r->body.empty() ? json::object() : json::parse(r->body);
}

int64_t integration_of(fb_bridge* b, const std::string& user) {
  char* r = nullptr;
  if (fb_token_health(b, "acme", user.c_str(), &r) != FB_OK) return 0;
  json h = json::parse(take(r));
  return h.empty() ? 0 : h[0].value("integration_id", int64_t{0});
}

void print_health(fb_bridge* b) {
  char* r = nullptr;
  fb_token_health(b, "acme", nullptr, &r);
  for (const auto& row : json::parse(take(r))) {
    char line[200];
    std::snprintf(line, sizeof line, "%-10s integration %-3lld %-20s expires in %6llds  refresh token: %s",
                  row.value("user_id", "").c_str(), static_cast<long long>(row.value("integration_id", int64_t{0})),
                  row.value("status", "").c_str(), static_cast<long long>(row["expires_in_s"].is_number() ? row["expires_in_s"].get<int64_t>() : 0),
                  row.value("has_refresh_token", false) ? "yes" : "no");
    say(line);
  }
}

json run_sync(fb_bridge* b, const std::string& user, int64_t id, const char* mode) {
  char* job = nullptr;
  int rc = fb_sync(b, "acme", user.c_str(), id, mode, nullptr, &job);
  if (rc != FB_OK) throw std::runtime_error(std::string("sync failed: ") + fb_errmsg(b));
  return json::parse(take(job));
}

int scenario(fb_bridge* b, const Args& a) {
  std::string crm = "http://127.0.0.1:" + std::to_string(a.port);
  sim_admin(a.sim, "POST", "/_sim/counters/reset");

  step("1. Alice connects Fathom from the CRM (popup flow)");
  char* url = nullptr;
  if (fb_connect_start(b, "acme", "u-alice", nullptr, 1, &url) != FB_OK) throw std::runtime_error(fb_errmsg(b));
  std::string authorize = take(url);
  say("authorize URL: " + authorize.substr(0, authorize.find("state=") + 6) + "...");
  auto page = browser_consent(authorize, "alice@example.com", true, crm, "u-alice");
  say("callback page: HTTP " + std::to_string(page->status) + ", posts to window.opener: " +
      (page->body.find("postMessage") != std::string::npos ? "yes" : "no"));
  int64_t alice = integration_of(b, "u-alice");
  say("integration " + std::to_string(alice) + " stored; 'connected' events: " + std::to_string(events_of("connected")));

  step("2. Bob connects with the redirect flow; Carol denies access");
  url = nullptr;
  fb_connect_start(b, "acme", "u-bob", nullptr, 0, &url);
  auto bob_page = browser_consent(take(url), "bob@example.com", true, crm, "u-bob");
  say("bob's browser is sent to: " + bob_page->get_header_value("Location"));
  url = nullptr;
  fb_connect_start(b, "acme", "u-carol", nullptr, 0, &url);
  auto carol_page = browser_consent(take(url), "carol@example.com", false, crm, "u-carol");
  say("carol's browser is sent to: " + carol_page->get_header_value("Location"));
  int64_t bob = integration_of(b, "u-bob");

  step("3. Initial backfill of Alice's meetings through the Lua mapping");
  json job = run_sync(b, "u-alice", alice, "backfill");
  say("job: " + job.dump());
  say("CRM now has " + std::to_string(g_crm.count("companies")) + " companies, " +
      std::to_string(g_crm.count("contacts")) + " contacts, " + std::to_string(g_crm.count("activities")) +
      " activities, " + std::to_string(g_crm.count("tasks")) + " tasks");

  step("4. A new meeting finishes in Fathom: the webhook arrives, is verified, stored and mapped");
  size_t before = g_crm.count("activities");
  json added = sim_admin(a.sim, "POST", "/_sim/meetings", {{"count", 1}, {"recorded_by", "alice@example.com"}});
  int64_t rec = added["recording_ids"][0];
  sim_admin(a.sim, "POST", "/_sim/meetings/" + std::to_string(rec) + "/complete");
  bool mapped = wait_for([&] { return g_crm.count("activities") > before; }, 15000);
  say("recording " + std::to_string(rec) + (mapped ? " mapped to a new CRM activity" : " NOT mapped (see logs)"));

  step("5. The hourly incremental sync finds nothing new: one API call, nothing mapped twice");
  json counters = sim_admin(a.sim, "GET", "/_sim/counters");
  int64_t calls_before = counters.value("api_calls_total", int64_t{0});
  job = run_sync(b, "u-alice", alice, "incremental");
  counters = sim_admin(a.sim, "GET", "/_sim/counters");
  say("API calls spent: " + std::to_string(counters.value("api_calls_total", int64_t{0}) - calls_before) +
      "; activities still " + std::to_string(g_crm.count("activities")));

  step("6. Access tokens expire at Fathom: the next call refreshes once, transparently");
  sim_admin(a.sim, "POST", "/_sim/tokens/expire", json::object());
  int64_t refreshes = counters["token_requests"].value("refresh_token", int64_t{0});
  run_sync(b, "u-alice", alice, "incremental");
  counters = sim_admin(a.sim, "GET", "/_sim/counters");
  say("refresh requests made: " + std::to_string(counters["token_requests"].value("refresh_token", int64_t{0}) - refreshes));

  step("7. Bob revokes access inside Fathom: his integration needs reconnecting, the host is told");
  sim_admin(a.sim, "POST", "/_sim/grants/revoke", {{"user", "bob@example.com"}});
  sim_admin(a.sim, "POST", "/_sim/tokens/expire", {{"user", "bob@example.com"}});
  json bob_job = run_sync(b, "u-bob", bob, "incremental");
  say("bob's sync: " + bob_job.value("status", "") + " (" + bob_job.value("message", "") + ")");
  say("'reconnect_required' events: " + std::to_string(events_of("reconnect_required")));

  step("8. Token health");
  print_health(b);
  say("CRM tasks asking a user to reconnect Fathom: " + std::to_string(g_crm.count_where("tasks", "kind", "reconnect_fathom")));
  say("idempotent replays absorbed by the CRM: " + std::to_string(g_crm.snapshot()["idempotent_replays"].get<int64_t>()));
  return mapped ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "demo-crm: " << s << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (s == "--sim") a.sim = next();
    else if (s == "--data") a.data = next();
    else if (s == "--scripts") a.scripts = next();
    else if (s == "--port") a.port = std::stoi(next());
    else if (s == "--widget") a.widget = next();
    else if (s == "--scenario") a.scenario = true;
    else if (s == "--serve") a.serve = true;
    else {
      std::cerr << "usage: demo-crm --sim URL [--data DIR] [--scripts DIR] [--widget FILE] [--port N] [--scenario] [--serve]\n";
      return 2;
    }
  }
  if (a.sim.empty()) {
    std::cerr << "demo-crm: --sim URL of fathom-sim is required\n";
    return 2;
  }
  fs::create_directories(a.data);
  std::string crm = "http://127.0.0.1:" + std::to_string(a.port);
  json config = {
      {"fathom",
       {{"client_id", "sim-client"},
        {"client_secret", "sim-secret"},
        {"redirect_uri", crm + "/oauth/callback"},
        {"authorize_url", a.sim + "/external/v1/oauth2/authorize"},
        {"token_url", a.sim + "/external/v1/oauth2/token"},
        {"api_base", a.sim + "/external/v1"}}},
      {"frontend", {{"url", crm}, {"success_path", "/integrations"}}},  // the redirect flow returns to the widget
      {"tokens", {{"key", load_or_make_key(a.data)}}},
      {"webhooks", {{"public_base_url", crm}}},
      {"store", {{"path", (fs::path(a.data) / "bridge.db").string()}}},
      {"sync", {{"scheduler", a.serve}}},
      {"log_level", "warn"},
  };
  if (!a.scripts.empty()) config["scripts"] = {{"dir", a.scripts}};

  fb_bridge* b = nullptr;
  if (fb_bridge_open(nullptr, config.dump().c_str(), &b) != FB_OK) {
    std::cerr << "demo-crm: cannot open fathom-bridge: " << fb_errmsg(b) << "\n";
    fb_bridge_close(b);
    return 1;
  }
  fb_set_event_callback(b, on_event, nullptr);
  for (const char* op : kOps) fb_register_crm_operation(b, op, on_crm, const_cast<char*>(op));

  httplib::Server svr;
  mount_routes(svr, b, a.widget);
  if (!svr.bind_to_port("127.0.0.1", a.port)) {
    std::cerr << "demo-crm: port " << a.port << " is busy (set FB_DEMO_PORT)\n";
    fb_bridge_close(b);
    return 1;
  }
  std::thread server([&] { svr.listen_after_bind(); });
  while (!svr.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::cout << "demo-crm listening on " << crm << " (fathom-sim at " << a.sim << ")\n" << std::flush;

  int rc = 0;
  if (a.scenario) {
    try {
      rc = scenario(b, a);
    } catch (const std::exception& e) {
      std::cerr << "demo-crm: scenario failed: " << e.what() << "\n";
      rc = 1;
    }
  }
  if (a.serve) {
    signal(SIGINT, [](int) { g_stop = true; });
    signal(SIGTERM, [](int) { g_stop = true; });
    std::cout << "\nOpen " << crm << "/integrations in a browser: the Fathom widget, the connections and the records. Ctrl-C stops.\n" << std::flush;
    while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  svr.stop();
  server.join();
  fb_bridge_close(b);
  return rc;
}
