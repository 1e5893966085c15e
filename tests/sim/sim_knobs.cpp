#include "sim/sim_knobs.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace fb::sim {

const std::vector<KnobDef>& knob_table() {
  static const std::vector<KnobDef> table = {
      {"rate_limit", "--rate-limit", "API calls allowed per account per window (default 60)", &Knobs::rate_limit, 1, 1e9},
      {"rate_window_s", "--rate-window", "API rate-limit window in seconds (default 60)", &Knobs::rate_window_s, 0.001, 1e7},
      {"rate_window_mode", "--rate-window-mode", "fixed | sliding window (default fixed)", &Knobs::rate_window_mode, 0, 0,
       {"fixed", "sliding"}},
      {"token_rate_limit", "--token-rate-limit", "token-endpoint calls allowed per client_id per window (default 60)",
       &Knobs::token_rate_limit, 1, 1e9},
      {"token_rate_window_s", "--token-rate-window", "token-endpoint window in seconds (default 60)",
       &Knobs::token_rate_window_s, 0.001, 1e7},
      {"retry_after", "--retry-after", "add Retry-After to 429 answers (default off)", &Knobs::retry_after},
      {"token_ttl_s", "--token-ttl", "access-token lifetime in seconds, the expires_in (default 86400)", &Knobs::token_ttl_s,
       1, 1e9},
      {"code_ttl_s", "--code-ttl", "authorization-code lifetime in seconds (default 600)", &Knobs::code_ttl_s, 1, 1e9},
      {"pkce_required", "--pkce-required", "reject authorize requests without code_challenge (default off)",
       &Knobs::pkce_required},
      {"pkce_verify", "--pkce-verify", "check code_verifier when a code_challenge was given (default on)",
       &Knobs::pkce_verify},
      {"revoke_grant_on_reuse", "--revoke-grant-on-reuse",
       "reusing a spent refresh token or code revokes the whole grant (default off)", &Knobs::revoke_grant_on_reuse},
      {"revoke_access_on_refresh", "--revoke-access-on-refresh",
       "a refresh also invalidates the previous access token (default off)", &Knobs::revoke_access_on_refresh},
      {"token_late_ms", "--token-late",
       "the token endpoint does its work (a refresh rotates, a code is spent), then answers this many ms late, "
       "e.g. past the client's read timeout (default 0)",
       &Knobs::token_late_ms, 0, 600000},
      {"token_late_count", "--token-late-count",
       "how many token answers are late, counting down; -1 = every one while --token-late is set (default -1)",
       &Knobs::token_late_count, -1, 1e9},
      {"issuer", "--issuer", "iss added to authorization responses (RFC 9207); empty: none (default)",
       &Knobs::issuer},
      {"page_size", "--page-size", "items per page on list endpoints (default 10)", &Knobs::page_size, 1, 10000},
      {"honor_limit_param", "--honor-limit-param", "honour a `limit` query parameter, 1..100 (default off)",
       &Knobs::honor_limit_param},
      {"next_cursor_style", "--next-cursor-style", "last page next_cursor: null | empty | missing (default null)",
       &Knobs::next_cursor_style, 0, 0, {"null", "empty", "missing"}},
      {"created_filter_inclusive", "--created-filter-inclusive",
       "created_after/created_before include the bound itself (default off: strict)", &Knobs::created_filter_inclusive},
      {"oauth_content", "--oauth-content",
       "OAuth caller asking include_transcript/include_summary: omit | 400 (default omit)", &Knobs::oauth_content, 0, 0,
       {"omit", "400"}},
      {"unknown_recording_status", "--unknown-recording-status", "status for an unknown recording id (default 404)",
       &Knobs::unknown_recording_status, 400, 599},
      {"error_body", "--error-body", "API error body: json | text | empty (default json)", &Knobs::error_body, 0, 0,
       {"json", "text", "empty"}},
      {"latency_ms", "--latency", "milliseconds added to every /external/v1 request (default 0)", &Knobs::latency_ms, 0,
       60000},
      {"fault_rate", "--fault-rate", "probability 0..1 that an /external/v1 request fails at random (default 0)",
       &Knobs::fault_rate, 0, 1},
      {"fault_rate_status", "--fault-rate-status", "status of random faults (default 500)", &Knobs::fault_rate_status, 400,
       599},
      {"webhook_duplicate", "--webhook-duplicate", "redeliver each succeeded message once more, same webhook-id",
       &Knobs::webhook_duplicate},
      {"webhook_two_signatures", "--webhook-two-signatures",
       "webhook-signature carries a rotated-out signature and the valid one", &Knobs::webhook_two_signatures},
      {"webhook_wrong_signature", "--webhook-wrong-signature", "sign deliveries with a wrong key",
       &Knobs::webhook_wrong_signature},
      {"webhook_timestamp_offset_s", "--webhook-timestamp-offset",
       "seconds added to webhook-timestamp (e.g. -600 stale, 600 future; default 0)",
       &Knobs::webhook_timestamp_offset_s, -1e9, 1e9},
      {"webhook_tamper_body", "--webhook-tamper-body", "alter the body after signing", &Knobs::webhook_tamper_body},
      {"webhook_svix_headers", "--webhook-svix-headers", "also send svix-id, svix-timestamp, svix-signature",
       &Knobs::webhook_svix_headers},
      {"webhook_retry_scale", "--webhook-retry-scale",
       "multiplies the retry schedule 0,5s,5m,30m,2h,5h,10h,10h (default 1; 0.001 for tests)",
       &Knobs::webhook_retry_scale, 0, 1000},
      {"webhook_timeout_s", "--webhook-timeout", "seconds to wait for a 2xx per attempt (default 15)",
       &Knobs::webhook_timeout_s, 0.05, 600},
      {"webhook_max_attempts", "--webhook-max-attempts", "attempts per message including the first (1..8, default 8)",
       &Knobs::webhook_max_attempts, 1, 8},
  };
  return table;
}

const KnobDef* find_knob_by_name(const std::string& name) {
  for (const auto& d : knob_table()) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

const KnobDef* find_knob_by_flag(const std::string& flag) {
  for (const auto& d : knob_table()) {
    if (flag == d.flag) return &d;
  }
  return nullptr;
}

namespace {

// Validates and stores one JSON value. Returns "" or the reason.
std::string set_value(Knobs& k, const KnobDef& def, const nlohmann::json& v) {
  std::string name = def.name;
  if (auto p = std::get_if<bool Knobs::*>(&def.field)) {
    if (!v.is_boolean()) return "knob '" + name + "' must be a boolean";
    k.*(*p) = v.get<bool>();
    return {};
  }
  if (auto p = std::get_if<std::string Knobs::*>(&def.field)) {
    if (!v.is_string()) return "knob '" + name + "' must be a string";
    std::string s = v.get<std::string>();
    if (!def.choices.empty() && std::find(def.choices.begin(), def.choices.end(), s) == def.choices.end()) {
      std::string all;
      for (const auto& c : def.choices) all += (all.empty() ? "" : " | ") + c;
      return "knob '" + name + "' must be one of " + all + ", got '" + s + "'";
    }
    k.*(*p) = s;
    return {};
  }
  if (!v.is_number()) return "knob '" + name + "' must be a number";
  double d = v.get<double>();
  if (!std::isfinite(d) || d < def.min || d > def.max) {
    return "knob '" + name + "' out of range [" + nlohmann::json(def.min).dump() + ", " + nlohmann::json(def.max).dump() +
           "]: " + v.dump();
  }
  if (auto p = std::get_if<int64_t Knobs::*>(&def.field)) {
    if (!v.is_number_integer() && d != std::floor(d)) return "knob '" + name + "' must be an integer";
    k.*(*p) = static_cast<int64_t>(d);
  } else {
    k.*(std::get<double Knobs::*>(def.field)) = d;
  }
  return {};
}

}  // namespace

std::string set_knob_from_text(Knobs& k, const KnobDef& def, const std::string& text) {
  nlohmann::json v;
  if (std::holds_alternative<std::string Knobs::*>(def.field)) {
    v = text;
  } else if (std::holds_alternative<bool Knobs::*>(def.field)) {
    if (text == "true" || text == "1" || text == "on") v = true;
    else if (text == "false" || text == "0" || text == "off") v = false;
    else return std::string(def.flag) + " expects true or false, got '" + text + "'";
  } else {
    char* end = nullptr;
    double d = std::strtod(text.c_str(), &end);
    if (text.empty() || end == nullptr || *end != '\0') return std::string(def.flag) + " expects a number, got '" + text + "'";
    v = d;
  }
  std::string err = set_value(k, def, v);
  return err.empty() ? err : std::string(def.flag) + ": " + err;
}

std::string apply_knobs_json(Knobs& k, const nlohmann::json& changes) {
  if (!changes.is_object()) return "config body must be a JSON object of {knob: value}";
  Knobs next = k;
  for (const auto& [name, value] : changes.items()) {
    const KnobDef* def = find_knob_by_name(name);
    if (!def) return "unknown knob '" + name + "'";
    std::string err = set_value(next, *def, value);
    if (!err.empty()) return err;
  }
  k = next;
  return {};
}

nlohmann::json knobs_to_json(const Knobs& k) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& def : knob_table()) {
    std::visit([&](auto member) { out[def.name] = k.*member; }, def.field);
  }
  return out;
}

}  // namespace fb::sim
