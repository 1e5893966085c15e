// sim_knobs.h: every runtime knob of fathom-sim, settable by a CLI flag and by POST /_sim/config.
//
// One table (knob_table()) describes each knob once: its JSON name, its CLI flag, its type, its
// range or choices, and its help line. --help, the flag parser, GET and POST /_sim/config all read
// that table, so a knob can never exist in one place and be missing in another.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace fb::sim {

struct Knobs {
  // Per-account API rate limit (fathom-api.md 2): `rate_limit` calls per `rate_window_s`.
  int64_t rate_limit = 60;
  double rate_window_s = 60;
  std::string rate_window_mode = "fixed";  // "fixed" | "sliding"
  // Token endpoint limit per client_id (fathom-api.md 1.3).
  int64_t token_rate_limit = 60;
  double token_rate_window_s = 60;
  bool retry_after = false;  // add Retry-After (seconds) to 429 answers

  int64_t token_ttl_s = 86400;  // access-token lifetime (expires_in)
  int64_t code_ttl_s = 600;     // authorization-code lifetime
  bool pkce_required = false;   // authorize without code_challenge -> error=invalid_request
  bool pkce_verify = true;      // verify code_verifier when a code_challenge was given
  bool revoke_grant_on_reuse = false;    // reusing a spent refresh token (or code) kills the grant
  bool revoke_access_on_refresh = false; // a refresh also kills the previous access token
  // A slow token endpoint: it does the work (a refresh rotates, a code is spent) and then holds the
  // answer token_late_ms, e.g. past the client's read timeout, so the client never sees it.
  int64_t token_late_ms = 0;
  int64_t token_late_count = -1;  // late answers left (counts down to 0); -1 = every answer
  std::string issuer;             // iss added to authorization responses (RFC 9207); "" = none

  int64_t page_size = 10;
  bool honor_limit_param = false;        // honour a `limit` query parameter (1..100)
  std::string next_cursor_style = "null";  // last page: "null" | "empty" | "missing"
  bool created_filter_inclusive = false;   // created_after/created_before include the bound
  std::string oauth_content = "omit";      // OAuth caller + include_transcript/summary: "omit" | "400"
  int64_t unknown_recording_status = 404;  // /recordings/{unknown id}/...
  std::string error_body = "json";         // API error body: "json" | "text" | "empty"

  int64_t latency_ms = 0;        // added to every /external/v1 request
  double fault_rate = 0;         // probability that an /external/v1 request fails at random
  int64_t fault_rate_status = 500;

  // Webhook sender (fathom-api.md 5).
  bool webhook_duplicate = false;        // redeliver a message once more after it succeeded
  bool webhook_two_signatures = false;   // also sign with a rotated-out secret (two v1 entries)
  bool webhook_wrong_signature = false;  // sign with the wrong key
  int64_t webhook_timestamp_offset_s = 0;  // shift webhook-timestamp (stale < 0, future > 0)
  bool webhook_tamper_body = false;      // change the body after signing
  bool webhook_svix_headers = false;     // mirror the headers as svix-id/-timestamp/-signature
  double webhook_retry_scale = 1.0;      // multiplies the Svix retry schedule
  double webhook_timeout_s = 15;         // no 2xx within this is a failed attempt
  int64_t webhook_max_attempts = 8;      // attempts per message, first one included (max 8)
};

struct KnobDef {
  const char* name;  // JSON key in /_sim/config
  const char* flag;  // CLI flag, e.g. "--token-ttl"
  const char* help;
  std::variant<int64_t Knobs::*, double Knobs::*, bool Knobs::*, std::string Knobs::*> field;
  double min = 0;
  double max = 0;
  std::vector<std::string> choices;  // for string knobs; empty: any string
};

const std::vector<KnobDef>& knob_table();
const KnobDef* find_knob_by_name(const std::string& name);
const KnobDef* find_knob_by_flag(const std::string& flag);

// Sets one knob from text (a CLI value). Returns "" or an error naming the knob and the problem.
std::string set_knob_from_text(Knobs& k, const KnobDef& def, const std::string& text);
// Applies {name: value, ...} all-or-nothing. Returns "" or an error naming the first bad knob.
std::string apply_knobs_json(Knobs& k, const nlohmann::json& changes);
nlohmann::json knobs_to_json(const Knobs& k);

}  // namespace fb::sim
