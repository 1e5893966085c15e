// The REST API of fathom-api.md 2-3 and 7 (items 7-15) under /external/v1.
#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "core/clock.h"
#include "core/random.h"
#include "crypto/encoding.h"
#include "sim/sim_server.h"
#include "sim/sim_signing.h"

namespace fb::sim {
namespace {

const std::vector<std::string> kTriggers = {"my_recordings", "shared_external_recordings",
                                            "my_shared_with_team_recordings", "shared_team_recordings"};

std::vector<std::string> array_param(const httplib::Request& req, const std::string& name) {
  std::vector<std::string> out;
  auto range = req.params.equal_range(name + "[]");
  for (auto it = range.first; it != range.second; ++it) out.push_back(it->second);
  return out;
}

// Parses a boolean query flag; returns false (and sets *why) when the value is not true/false.
bool bool_param(const httplib::Request& req, const std::string& name, bool* out, std::string* why) {
  *out = false;
  if (!req.has_param(name)) return true;
  std::string v = req.get_param_value(name);
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  if (v == "true") *out = true;
  else if (v != "false") {
    *why = name + " must be true or false, got '" + req.get_param_value(name) + "'";
    return false;
  }
  return true;
}

std::string encode_cursor(const nlohmann::json& j) { return fb::detail::base64_encode(j.dump()); }

std::optional<nlohmann::json> decode_cursor(const std::string& text) {
  auto raw = fb::detail::base64_decode(text);
  if (!raw) return std::nullopt;
  auto j = nlohmann::json::parse(*raw, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

bool is_http_url(const std::string& s) {
  size_t sep = s.find("://");
  if (sep == std::string::npos) return false;
  std::string scheme = s.substr(0, sep);
  if (scheme != "http" && scheme != "https") return false;
  return s.size() > sep + 3 && s[sep + 3] != '/';
}

}  // namespace

void Simulator::install_api_routes() {
  const std::string v1 = "/external/v1";
  api_route("GET", v1 + "/meetings", "GET /meetings", &Simulator::list_meetings);
  api_route("GET", v1 + R"(/recordings/([^/]+)/transcript)", "GET /recordings/{id}/transcript", &Simulator::get_transcript);
  api_route("GET", v1 + R"(/recordings/([^/]+)/summary)", "GET /recordings/{id}/summary", &Simulator::get_summary);
  api_route("GET", v1 + "/teams", "GET /teams", &Simulator::list_teams);
  api_route("GET", v1 + "/team_members", "GET /team_members", &Simulator::list_team_members);
  api_route("POST", v1 + "/webhooks", "POST /webhooks", &Simulator::create_webhook);
  api_route("DELETE", v1 + R"(/webhooks/([^/]+))", "DELETE /webhooks/{id}", &Simulator::delete_webhook);
}

void Simulator::api_route(const char* method, const std::string& pattern, const std::string& name, ApiHandler h) {
  auto fn = [this, name, h](const httplib::Request& req, httplib::Response& res) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++api_calls_[name];
      ++api_calls_total_;
    }
    if (pre_request(req, res)) {
      std::lock_guard<std::mutex> lock(mu_);
      std::string why;
      auto caller = authenticate(req, &why);
      if (!caller) {
        res.set_header("WWW-Authenticate", "Bearer");
        send_api_error(res, 401, "unauthorized", why);
      } else {
        RateDecision d = api_limiter_.hit(caller->email, knobs_.rate_limit, knobs_.rate_window_s,
                                          knobs_.rate_window_mode == "sliding", mono_ms());
        set_rate_headers(res, d, !d.allowed);
        if (!d.allowed) {
          ++rate_limited_;
          send_api_error(res, 429, "rate_limited", "rate limit of " + std::to_string(d.limit) + " requests exceeded");
        } else {
          (this->*h)(req, res, *caller);
        }
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    ++api_statuses_[std::to_string(res.status)];
  };
  std::string m = method;
  if (m == "GET") svr_->Get(pattern, fn);
  else if (m == "POST") svr_->Post(pattern, fn);
  else svr_->Delete(pattern, fn);
}

std::optional<Simulator::Caller> Simulator::authenticate(const httplib::Request& req, std::string* why) {
  std::string auth = req.get_header_value("Authorization");
  if (!auth.empty()) {
    if (auth.size() < 7 || !std::equal(auth.begin(), auth.begin() + 7, "bearer ", [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == b;
        })) {
      *why = "Authorization must be 'Bearer <access token>'";
      return std::nullopt;
    }
    auto it = access_tokens_.find(auth.substr(7));
    if (it == access_tokens_.end()) {
      *why = "invalid access token";
      return std::nullopt;
    }
    const Grant& g = grants_[it->second.grant_id];
    if (it->second.revoked || g.revoked) {
      *why = "access token revoked";
      return std::nullopt;
    }
    if (now_ms() >= it->second.expires_ms) {
      *why = "access token expired";
      return std::nullopt;
    }
    const User* u = find_user(g.user);
    if (!u) {
      *why = "the user of this token no longer exists";
      return std::nullopt;
    }
    return Caller{u->email, u->team, true};
  }
  std::string key = req.get_header_value("X-Api-Key");
  if (!key.empty()) {
    for (const auto& u : users_) {
      if (u.api_key == key) return Caller{u.email, u.team, false};
    }
    *why = "invalid API key";
    return std::nullopt;
  }
  *why = "missing credentials: send X-Api-Key or Authorization: Bearer";
  return std::nullopt;
}

void Simulator::list_meetings(const httplib::Request& req, httplib::Response& res, const Caller& c) {
  Includes inc;
  std::string why;
  if (!bool_param(req, "include_transcript", &inc.transcript, &why) ||
      !bool_param(req, "include_summary", &inc.summary, &why) ||
      !bool_param(req, "include_action_items", &inc.action_items, &why) ||
      !bool_param(req, "include_crm_matches", &inc.crm_matches, &why)) {
    return send_api_error(res, 400, "invalid_parameter", why);
  }
  if (c.oauth && (inc.transcript || inc.summary)) {
    if (knobs_.oauth_content == "400") {
      return send_api_error(res, 400, "invalid_parameter",
                            "include_transcript and include_summary are not available to OAuth apps; use "
                            "/recordings/{id}/transcript and /recordings/{id}/summary");
    }
    inc.transcript = inc.summary = false;
  }

  bool has_after = req.has_param("created_after"), has_before = req.has_param("created_before");
  int64_t after = 0, before = 0;
  if (has_after && !fb::detail::parse_iso8601(req.get_param_value("created_after"), &after)) {
    return send_api_error(res, 400, "invalid_parameter", "created_after must be an ISO 8601 timestamp");
  }
  if (has_before && !fb::detail::parse_iso8601(req.get_param_value("created_before"), &before)) {
    return send_api_error(res, 400, "invalid_parameter", "created_before must be an ISO 8601 timestamp");
  }
  std::string domains_type = req.has_param("calendar_invitees_domains_type")
                                 ? req.get_param_value("calendar_invitees_domains_type")
                                 : "all";
  if (domains_type != "all" && domains_type != "only_internal" && domains_type != "one_or_more_external") {
    return send_api_error(res, 400, "invalid_parameter",
                          "calendar_invitees_domains_type must be all, only_internal or one_or_more_external, got '" +
                              domains_type + "'");
  }
  auto recorded_by = array_param(req, "recorded_by");
  auto teams = array_param(req, "teams");
  auto domains = array_param(req, "calendar_invitees_domains");

  int64_t limit = knobs_.page_size;
  if (knobs_.honor_limit_param && req.has_param("limit")) {
    std::string l = req.get_param_value("limit");
    if (l.empty() || l.size() > 3 || !std::all_of(l.begin(), l.end(), ::isdigit) || std::stoi(l) < 1 || std::stoi(l) > 100) {
      return send_api_error(res, 400, "invalid_parameter", "limit must be an integer 1..100");
    }
    limit = std::stoi(l);
  }

  auto it = meetings_.begin();
  if (req.has_param("cursor")) {
    auto cur = decode_cursor(req.get_param_value("cursor"));
    int64_t cur_created = 0;
    if (!cur || !(*cur)["created_at"].is_string() || !(*cur)["recording_id"].is_number_integer() ||
        !fb::detail::parse_iso8601((*cur)["created_at"], &cur_created)) {
      return send_api_error(res, 400, "invalid_cursor", "the cursor is not one this API issued");
    }
    it = meetings_.upper_bound(Key{cur_created, (*cur)["recording_id"].get<int64_t>()});
  }

  bool inclusive = knobs_.created_filter_inclusive;
  auto matches = [&](const Meeting& m) {
    if (!visible(m, c)) return false;
    if (has_after && (inclusive ? m.created_at < after : m.created_at <= after)) return false;
    if (has_before && (inclusive ? m.created_at > before : m.created_at >= before)) return false;
    if (!recorded_by.empty() && std::find(recorded_by.begin(), recorded_by.end(), m.recorder_email) == recorded_by.end()) {
      return false;
    }
    if (!teams.empty() && std::find(teams.begin(), teams.end(), m.team) == teams.end()) return false;
    if (!domains.empty() && std::none_of(m.invitees.begin(), m.invitees.end(), [&](const Invitee& i) {
          return std::find(domains.begin(), domains.end(), i.domain) != domains.end();
        })) {
      return false;
    }
    if (domains_type == "only_internal" && m.has_external()) return false;
    if (domains_type == "one_or_more_external" && !m.has_external()) return false;
    return true;
  };

  ojson items = ojson::array();
  const Meeting* last = nullptr;
  bool more = false;
  // Newest first; a created_before bound lets us stop early once we are past created_after.
  for (; it != meetings_.end(); ++it) {
    const Meeting& m = it->second;
    if (has_after && m.created_at < after) break;  // everything further is older still
    if (!matches(m)) continue;
    if (static_cast<int64_t>(items.size()) == limit) {
      more = true;
      break;
    }
    items.push_back(meeting_json(m, inc, users_));
    last = &m;
  }
  ojson out;
  out["limit"] = limit;
  if (more && last) out["next_cursor"] = encode_cursor({{"created_at", iso8601(last->created_at)}, {"recording_id", last->recording_id}});
  else if (knobs_.next_cursor_style == "null") out["next_cursor"] = nullptr;
  else if (knobs_.next_cursor_style == "empty") out["next_cursor"] = "";
  out["items"] = std::move(items);
  send_ojson(res, 200, out);
}

void Simulator::get_transcript(const httplib::Request& req, httplib::Response& res, const Caller& c) {
  recording_content(req, res, c, true);
}

void Simulator::get_summary(const httplib::Request& req, httplib::Response& res, const Caller& c) {
  recording_content(req, res, c, false);
}

void Simulator::recording_content(const httplib::Request& req, httplib::Response& res, const Caller& c, bool transcript) {
  std::string id_text = req.matches[1];
  if (id_text.empty() || id_text.size() > 18 || !std::all_of(id_text.begin(), id_text.end(), ::isdigit)) {
    return send_api_error(res, 400, "invalid_parameter", "recording_id must be an integer");
  }
  const Meeting* m = find_meeting(std::stoll(id_text));
  if (!m || !visible(*m, c)) {
    return send_api_error(res, static_cast<int>(knobs_.unknown_recording_status), "not_found",
                          "no recording " + id_text + " for this account");
  }
  ojson payload = transcript ? ojson{{"transcript", transcript_json(*m, users_)}} : ojson{{"summary", summary_json(*m)}};
  if (req.has_param("destination_url")) {
    std::string dest = req.get_param_value("destination_url");
    if (!is_http_url(dest)) return send_api_error(res, 400, "invalid_parameter", "destination_url must be an http(s) URL");
    Delivery d;
    d.kind = transcript ? "transcript_callback" : "summary_callback";
    d.message_id = new_message_id();
    d.url = dest;
    d.body = payload.dump();
    d.recording_id = m->recording_id;
    sender_->submit(std::move(d));
    return send_ojson(res, 200, ojson{{"destination_url", dest}});
  }
  send_ojson(res, 200, payload);
}

namespace {

// Keyset paging over items sorted by a unique string key.
void page_by_key(const std::vector<std::pair<std::string, ojson>>& sorted, const httplib::Request& req, int64_t limit,
                 const std::string& style, ojson* out, std::string* why) {
  size_t start = 0;
  if (req.has_param("cursor")) {
    auto cur = decode_cursor(req.get_param_value("cursor"));
    if (!cur || !(*cur)["after"].is_string()) {
      *why = "the cursor is not one this API issued";
      return;
    }
    std::string after = (*cur)["after"];
    start = static_cast<size_t>(std::upper_bound(sorted.begin(), sorted.end(), after,
                                                 [](const std::string& a, const auto& p) { return a < p.first; }) -
                                sorted.begin());
  }
  ojson items = ojson::array();
  size_t i = start;
  for (; i < sorted.size() && static_cast<int64_t>(items.size()) < limit; ++i) items.push_back(sorted[i].second);
  (*out)["limit"] = limit;
  if (i < sorted.size()) (*out)["next_cursor"] = encode_cursor({{"after", sorted[i - 1].first}});
  else if (style == "null") (*out)["next_cursor"] = nullptr;
  else if (style == "empty") (*out)["next_cursor"] = "";
  (*out)["items"] = std::move(items);
}

std::string team_created_at(const std::string& name) {
  uint64_t h = fnv1a(name);
  // Seen in real traffic with microseconds (fathom-api.md 2); the client must parse both forms.
  std::string base = iso8601(1704067200 + static_cast<int64_t>(h % (86400 * 60)));
  char frac[16];
  std::snprintf(frac, sizeof frac, ".%06d", static_cast<int>((h >> 20) % 1000000));
  return base.substr(0, base.size() - 1) + frac + "Z";
}

}  // namespace

void Simulator::list_teams(const httplib::Request& req, httplib::Response& res, const Caller&) {
  std::set<std::string> names;
  for (const auto& u : users_) {
    if (!u.team.empty()) names.insert(u.team);
  }
  std::vector<std::pair<std::string, ojson>> sorted;
  for (const auto& n : names) sorted.emplace_back(n, ojson{{"name", n}, {"created_at", team_created_at(n)}});
  ojson out;
  std::string why;
  page_by_key(sorted, req, knobs_.page_size, knobs_.next_cursor_style, &out, &why);
  if (!why.empty()) return send_api_error(res, 400, "invalid_cursor", why);
  send_ojson(res, 200, out);
}

void Simulator::list_team_members(const httplib::Request& req, httplib::Response& res, const Caller&) {
  std::string team = req.get_param_value("team");
  std::vector<std::pair<std::string, ojson>> sorted;
  for (const auto& u : users_) {
    if (team.empty() || u.team == team) {
      sorted.emplace_back(u.email, ojson{{"name", u.name}, {"email", u.email}, {"created_at", iso8601(u.created_at)}});
    }
  }
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  ojson out;
  std::string why;
  page_by_key(sorted, req, knobs_.page_size, knobs_.next_cursor_style, &out, &why);
  if (!why.empty()) return send_api_error(res, 400, "invalid_cursor", why);
  send_ojson(res, 200, out);
}

void Simulator::create_webhook(const httplib::Request& req, httplib::Response& res, const Caller& c) {
  auto body = nlohmann::json::parse(req.body, nullptr, false);
  auto bad = [&](const std::string& why) { send_api_error(res, 400, "invalid_request", why); };
  if (body.is_discarded() || !body.is_object()) return bad("body must be a JSON object");
  static const std::set<std::string> kAllowed = {"destination_url",      "triggered_for",    "include_transcript",
                                                 "include_summary",      "include_action_items",
                                                 "include_crm_matches"};
  for (const auto& [k, v] : body.items()) {
    if (!kAllowed.count(k)) return bad("unknown property '" + k + "' (additionalProperties is false)");
  }
  if (!body.contains("destination_url") || !body["destination_url"].is_string() ||
      !is_http_url(body["destination_url"].get<std::string>())) {
    return bad("destination_url is required and must be an http(s) URL");
  }
  if (!body.contains("triggered_for") || !body["triggered_for"].is_array() || body["triggered_for"].empty()) {
    return bad("triggered_for is required: a non-empty array of " + nlohmann::json(kTriggers).dump());
  }
  std::vector<std::string> triggers;
  for (const auto& t : body["triggered_for"]) {
    if (!t.is_string() || std::find(kTriggers.begin(), kTriggers.end(), t.get<std::string>()) == kTriggers.end()) {
      return bad("triggered_for has an unknown value " + t.dump());
    }
    triggers.push_back(t);
  }
  Includes inc;
  for (auto [key, flag] : {std::pair<const char*, bool*>{"include_transcript", &inc.transcript},
                           {"include_summary", &inc.summary},
                           {"include_action_items", &inc.action_items},
                           {"include_crm_matches", &inc.crm_matches}}) {
    if (!body.contains(key)) continue;
    if (!body[key].is_boolean()) return bad(std::string(key) + " must be a boolean");
    *flag = body[key];
  }
  if (!inc.transcript && !inc.summary && !inc.action_items && !inc.crm_matches) {
    return bad("at least one of include_transcript, include_summary, include_action_items, include_crm_matches must be true");
  }
  Webhook w;
  uint8_t rnd[16];
  fb::detail::system_random().fill(rnd, sizeof rnd);
  static const char* kChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  for (uint8_t b : rnd) w.id += kChars[b % 62];
  w.owner = c.email;
  w.url = body["destination_url"];
  w.secret = new_webhook_secret();
  w.created_at = now_ms() / 1000;
  w.inc = inc;
  w.triggered_for = triggers;
  webhooks_[w.id] = w;
  send_ojson(res, 201, ojson{{"id", w.id},
                             {"url", w.url},
                             {"secret", w.secret},
                             {"created_at", iso8601(w.created_at)},
                             {"include_transcript", inc.transcript},
                             {"include_crm_matches", inc.crm_matches},
                             {"include_summary", inc.summary},
                             {"include_action_items", inc.action_items},
                             {"triggered_for", triggers}});
}

void Simulator::delete_webhook(const httplib::Request& req, httplib::Response& res, const Caller& c) {
  auto it = webhooks_.find(req.matches[1]);
  if (it == webhooks_.end() || it->second.owner != c.email) {
    return send_api_error(res, 404, "not_found", "no webhook with this id");
  }
  webhooks_.erase(it);
  res.status = 204;
}

std::vector<Delivery> Simulator::deliveries_for(const Meeting& m) {
  std::vector<Delivery> out;
  for (const auto& [id, w] : webhooks_) {
    const User* owner = find_user(w.owner);
    if (!owner) continue;
    bool own = m.recorder_email == owner->email;
    bool teammate = !own && !m.team.empty() && m.team == owner->team;
    bool fires = false;
    for (const auto& t : w.triggered_for) {
      // The simulator's sharing model: every recording is shared with its recorder's team.
      if ((t == "my_recordings" || t == "my_shared_with_team_recordings") && own) fires = true;
      if (t == "shared_team_recordings" && teammate) fires = true;
    }
    if (!fires) continue;
    Delivery d;
    d.message_id = new_message_id();
    d.webhook_id = w.id;
    d.url = w.url;
    d.secret = w.secret;
    d.body = meeting_json(m, w.inc, users_).dump();
    d.recording_id = m.recording_id;
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace fb::sim
