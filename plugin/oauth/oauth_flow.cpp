#include "oauth/oauth_flow.h"

#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/log.h"
#include "crypto/encoding.h"
#include "crypto/hash.h"

namespace fb::detail {
namespace {

constexpr char kMessageSource[] = "fathom-bridge";

std::string hash_prefix(const std::string& hash) { return hash.substr(0, 8); }

std::string state_aad(const std::string& hash) {
  std::string aad = "fathom-bridge/oauth_state";
  aad.push_back('\0');
  aad += hash;
  aad.push_back('\0');
  aad += "pkce_verifier";
  return aad;
}

// JSON for an inline <script>: '<', '>' and '&' escaped so no value can close the script element.
std::string script_json(const nlohmann::json& j) {
  std::string raw = j.dump(-1, ' ', /*ensure_ascii=*/true);
  std::string out;
  for (char c : raw) {
    switch (c) {
      case '<': out += "\\u003c"; break;
      case '>': out += "\\u003e"; break;
      case '&': out += "\\u0026"; break;
      default: out += c;
    }
  }
  return out;
}

bool printable_ascii(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

// A value from the authorization response shown in a message or audit line: at most `max`
// characters, and only if it is printable ASCII (never control bytes or markup from the query).
std::string shown_param(const std::string& v, size_t max, const char* otherwise) {
  return printable_ascii(v) ? v.substr(0, max) : otherwise;
}

std::string join_url(const std::string& base, const std::string& path) {
  std::string b = base;
  while (!b.empty() && b.back() == '/') b.pop_back();
  if (path.empty()) return b + "/";
  return path.front() == '/' ? b + path : b + "/" + path;
}

}  // namespace

const char* callback_mode_name(CallbackMode mode) { return mode == CallbackMode::kRedirect ? "redirect" : "popup"; }

std::string pkce_challenge_s256(std::string_view code_verifier) { return base64url_encode(sha256(code_verifier)); }

std::string state_hash(std::string_view state) { return hex_encode(sha256(state)); }

Result<std::string> url_origin(std::string_view url) {
  auto u = parse_url(url);
  if (!u.ok()) return Status::InvalidArgument(u.status().message());
  std::string host = u->host;
  for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";  // IPv6 literal
  std::string origin = u->scheme + "://" + host;
  bool default_port = (u->scheme == "https" && u->port == 443) || (u->scheme == "http" && u->port == 80);
  if (!default_port) origin += ":" + std::to_string(u->port);
  return origin;
}

OAuthFlowOptions OAuthFlowOptions::from_config(const Config& c) {
  OAuthFlowOptions o;
  o.client_id = c.fathom.client_id;
  o.redirect_uri = c.fathom.redirect_uri;
  o.authorize_url = c.fathom.authorize_url;
  o.api_base = c.fathom.api_base;
  o.scope = c.fathom.scope;
  o.use_pkce = c.fathom.use_pkce;
  o.state_ttl_s = c.tokens.state_ttl_s;
  o.frontend_url = c.frontend.url;
  o.success_path = c.frontend.success_path;
  o.issuer = c.fathom.issuer;
  o.require_iss = c.fathom.require_iss;
  o.callback_timeout_ms = c.fathom.callback_timeout_ms;
  return o;
}

struct OAuthFlow::ConsumedState {
  Principal principal;
  CallbackMode mode = CallbackMode::kPopup;
  SecretString verifier;
};

OAuthFlow::OAuthFlow(OAuthFlowOptions options, IntegrationStore& store, TokenEndpoint& token_endpoint,
                     HttpTransport& transport, EventBus* events, Clock& clock, Random& random)
    : options_(std::move(options)),
      store_(store),
      token_endpoint_(token_endpoint),
      transport_(transport),
      events_(events),
      clock_(clock),
      random_(random) {}

Status OAuthFlow::check_config() const {
  if (options_.client_id.empty()) return Status::Config("setting 'fathom.client_id' (FATHOM_CLIENT_ID) is missing");
  if (token_endpoint_.options().client_secret.empty()) {
    return Status::Config("setting 'fathom.client_secret' (FATHOM_CLIENT_SECRET) is missing");
  }
  if (options_.redirect_uri.empty()) {
    return Status::Config("setting 'fathom.redirect_uri' (FATHOM_REDIRECT_URI) is missing");
  }
  if (auto u = parse_url(options_.redirect_uri); !u.ok()) {
    return Status::Config("setting 'fathom.redirect_uri' is not a valid http(s) URL: " + u.status().message());
  }
  if (auto u = parse_url(options_.authorize_url); !u.ok()) {
    return Status::Config("setting 'fathom.authorize_url' is not a valid http(s) URL: " + u.status().message());
  }
  if (options_.frontend_url.empty()) {
    return Status::Config("setting 'frontend.url' (FRONTEND_URL) is missing: the callback needs the frontend origin");
  }
  if (auto o = url_origin(options_.frontend_url); !o.ok()) {
    return Status::Config("setting 'frontend.url' is not a valid http(s) URL: " + o.status().message());
  }
  if (options_.state_ttl_s <= 0) return Status::Config("setting 'tokens.state_ttl_s' must be greater than 0");
  return Status::Ok();
}

void OAuthFlow::audit(int64_t id, const std::string& tenant, const std::string& user, const std::string& event,
                      const std::string& detail) {
  Status s = store_.append_audit(id, tenant, user, event, detail);
  if (!s.ok()) {
    FB_LOG(kWarn, "oauth") << "audit entry '" << event << "' not written: " << s;
  }
}

Status OAuthFlow::emit(const std::string& type, const std::string& tenant, const std::string& user, int64_t id,
                       const std::string& detail) const {
  if (!events_) return Status::Ok();
  Event e;
  e.type = type;
  e.tenant_id = tenant;
  e.user_id = user;
  e.integration_id = id;
  e.detail = detail;
  e.data_json = "{}";
  return events_->emit(e);
}

Result<AuthorizeRequest> OAuthFlow::start(const Principal& principal, CallbackMode mode) {
  FB_TRY(validate_principal(principal));
  FB_TRY(check_config());
  // The mode letter lets a callback whose state we no longer know still answer in the right
  // form; it carries no authority (the stored row decides everything else).
  const std::string state = (mode == CallbackMode::kRedirect ? "r" : "p") + random_.token(32);
  const std::string hash = state_hash(state);
  std::optional<SecretString> verifier;
  std::optional<std::string> sealed_verifier;
  if (options_.use_pkce) {
    verifier = SecretString(random_.token(48));  // 64 characters of [A-Za-z0-9-_]: RFC 7636 4.1
    FB_ASSIGN(sealed_verifier, store_.sealer().seal(*verifier, state_aad(hash)));
  }
  const int64_t now = clock_.now_s();
  AuthorizeRequest out;
  out.mode = mode;
  out.expires_at = now + options_.state_ttl_s;
  Db& db = store_.db();
  Status stored = db.transaction([&]() -> Status {
    Stmt& q = db.prepare(
        "INSERT INTO oauth_states(state_hash, tenant_id, user_id, team_id, mode, pkce_verifier, created_at, "
        "expires_at) VALUES(?,?,?,?,?,?,?,?)");
    q.bind_all(hash, principal.tenant_id, principal.user_id, principal.team_id, callback_mode_name(mode));
    if (sealed_verifier) q.bind_blob(6, *sealed_verifier); else q.bind(6, nullptr);
    q.bind(7, now).bind(8, out.expires_at);
    FB_TRY(q.run());
    // Housekeeping: states long past their expiry are of no use, even for a "used" verdict.
    Stmt& purge = db.prepare("DELETE FROM oauth_states WHERE expires_at < ?");
    purge.bind(1, now - 86400);
    return purge.run();
  });
  FB_TRY(stored);
  std::vector<std::pair<std::string, std::string>> params = {{"client_id", options_.client_id},
                                                             {"redirect_uri", options_.redirect_uri},
                                                             {"response_type", "code"},
                                                             {"scope", options_.scope},
                                                             {"state", state}};
  if (verifier) {
    params.emplace_back("code_challenge", pkce_challenge_s256(verifier->reveal()));
    params.emplace_back("code_challenge_method", "S256");
  }
  out.url = options_.authorize_url + (options_.authorize_url.find('?') == std::string::npos ? "?" : "&") +
            form_encode(params);
  FB_LOG(kDebug, "oauth") << "started " << callback_mode_name(mode) << " connect, state " << hash_prefix(hash)
                          << (verifier ? " with PKCE" : "");
  return out;
}

CallbackResult OAuthFlow::fail(CallbackResult r, Code code, const char* error, std::string reason) const {
  r.ok = false;
  r.code = code;
  r.error = error;
  r.reason = std::move(reason);
  FB_LOG(kInfo, "oauth") << "connect callback refused: " << r.error;
  return r;
}

CallbackResult OAuthFlow::complete(std::string_view query, const Principal* caller) {
  CallbackResult r;
  if (Status config = check_config(); !config.ok()) {
    FB_LOG(kError, "oauth") << "connect callback received but OAuth is not configured: " << config;
    return fail(r, Code::kConfig, "configuration_error",
                "Connecting Fathom is not set up on this server (" + config.message() +
                    "). Please tell your administrator.");
  }
  if (!query.empty() && query.front() == '?') query.remove_prefix(1);
  auto params = form_decode(query);
  if (!params) return fail(r, Code::kInvalidArgument, "invalid_request", "The sign-in response from Fathom is malformed.");
  std::map<std::string, std::string> p;
  for (auto& [k, v] : *params) {
    if (!p.emplace(k, v).second) {
      return fail(r, Code::kInvalidArgument, "invalid_request",
                  "The sign-in response repeats the parameter '" +
                      shown_param(k, 40, "?") + "'.");
    }
  }
  auto it = p.find("state");
  if (it == p.end() || it->second.empty()) {
    // An error answer without the state (RFC 6749 4.1.2.1 requires it back) cannot be tied to a
    // sign-in either, but the user should still learn what Fathom said, e.g. that access was denied.
    if (auto e = p.find("error"); e != p.end()) {
      const std::string code = shown_param(e->second, 64, "invalid");
      return fail(r, Code::kInvalidArgument, "state_missing",
                  std::string(code == "access_denied" ? "Access was denied at Fathom" : "Fathom answered '" + code + "'") +
                      ", and its response has no state, so nothing was connected. Please start connecting again "
                      "from the CRM.");
    }
    return fail(r, Code::kInvalidArgument, "state_missing",
                "The sign-in response has no state. Please start connecting again from the CRM.");
  }
  const std::string hash = state_hash(it->second);
  if (it->second.front() == 'r') r.mode = CallbackMode::kRedirect;

  // Consume the state: read and mark used in one write transaction, whatever the verdict, so
  // two concurrent callbacks with one state cannot both pass.
  enum class Verdict { kOk, kUnknown, kUsed, kExpired, kForeign } verdict = Verdict::kOk;
  ConsumedState st;
  std::string sealed_verifier;
  Db& db = store_.db();
  const int64_t now = clock_.now_s();
  Status s = db.transaction([&]() -> Status {
    Stmt& q = db.prepare(
        "SELECT tenant_id, user_id, team_id, mode, pkce_verifier, expires_at, used_at FROM oauth_states "
        "WHERE state_hash=?");
    q.bind(1, hash);
    auto row = q.step();
    if (!row.ok()) return row.status();
    if (!*row) {
      q.reset();
      verdict = Verdict::kUnknown;
      return Status::Ok();
    }
    st.principal = {q.text(0), q.text(1), q.text(2)};
    st.mode = q.text(3) == "redirect" ? CallbackMode::kRedirect : CallbackMode::kPopup;
    sealed_verifier = q.is_null(4) ? "" : q.blob(4);
    const int64_t expires_at = q.int64(5);
    const bool used = !q.is_null(6);
    q.reset();
    r.mode = st.mode;
    if (used) {
      verdict = Verdict::kUsed;
      return Status::Ok();
    }
    Stmt& mark = db.prepare("UPDATE oauth_states SET used_at=? WHERE state_hash=? AND used_at IS NULL");
    mark.bind_all(now, hash);
    FB_TRY(mark.run());
    if (db.changes() != 1) {
      verdict = Verdict::kUsed;
    } else if (now >= expires_at) {
      verdict = Verdict::kExpired;
    } else if (caller && (caller->tenant_id != st.principal.tenant_id || caller->user_id != st.principal.user_id)) {
      verdict = Verdict::kForeign;
    }
    return Status::Ok();
  });
  if (!s.ok()) {
    FB_LOG(kError, "oauth") << "state lookup failed: " << s;
    return fail(r, s.code(), "storage_failed", "The connection could not be checked (database error). Please try again.");
  }
  static const char* kVerdicts[] = {"valid", "unknown", "used", "expired", "foreign"};
  FB_LOG(kDebug, "oauth") << "callback for state " << hash_prefix(hash) << ": "
                          << kVerdicts[static_cast<int>(verdict)];
  switch (verdict) {
    case Verdict::kUnknown:
      return fail(r, Code::kInvalidArgument, "state_unknown",
                  "This sign-in link was not issued by this CRM (unknown state). Please start connecting again.");
    case Verdict::kUsed:
      return fail(r, Code::kFailedPrecondition, "state_used",
                  "This sign-in link was already used. Please start connecting again.");
    case Verdict::kExpired:
      return fail(r, Code::kFailedPrecondition, "state_expired",
                  "This sign-in link expired. Please start connecting again.");
    case Verdict::kForeign:
      audit(0, st.principal.tenant_id, st.principal.user_id, "connect_failed",
            "callback presented by another CRM user; state burnt");
      return fail(r, Code::kPermissionDenied, "state_foreign",
                  "This sign-in link belongs to another user. Please start connecting again.");
    case Verdict::kOk:
      break;
  }
  r.tenant_id = st.principal.tenant_id;
  r.user_id = st.principal.user_id;

  // RFC 9207: the response says which server sent it; one from another server (a mix-up attack)
  // is refused before its code or error is looked at. The state is already burnt.
  if (auto iss = p.find("iss"); iss != p.end()) {
    bool same = false;
    if (!options_.issuer.empty()) {
      same = iss->second == options_.issuer;
    } else {
      auto theirs = url_origin(iss->second);
      auto ours = url_origin(options_.authorize_url);
      same = theirs.ok() && ours.ok() && *theirs == *ours;
    }
    if (!same) {
      const std::string shown = shown_param(iss->second, 100, "?");
      audit(0, r.tenant_id, r.user_id, "connect_failed", "authorization response from issuer '" + shown +
                                                             "', not the configured one; refused");
      return fail(r, Code::kRejected, "iss_mismatch",
                  "The sign-in response came from another server than Fathom (issuer '" + shown +
                      "'). Nothing was connected. Please start connecting again from the CRM.");
    }
  } else if (options_.require_iss) {
    audit(0, r.tenant_id, r.user_id, "connect_failed", "authorization response without iss (fathom.require_iss)");
    return fail(r, Code::kRejected, "iss_missing",
                "The sign-in response does not say which server sent it (no iss). Nothing was connected. "
                "Please start connecting again from the CRM.");
  }

  if (auto e = p.find("error"); e != p.end()) {
    const bool denied = e->second == "access_denied";
    const std::string code = shown_param(e->second, 64, "invalid");
    audit(0, r.tenant_id, r.user_id, denied ? "connect_denied" : "connect_failed",
          denied ? "the user denied access at Fathom" : "Fathom answered " + code);
    if (denied) {
      return fail(r, Code::kCancelled, "access_denied",
                  "Access was denied at Fathom, so nothing was connected. You can try again at any time.");
    }
    return fail(r, Code::kRejected, "authorization_error", "Fathom could not authorize the connection (" + code + ").");
  }
  auto c = p.find("code");
  if (c == p.end() || c->second.empty()) {
    return fail(r, Code::kInvalidArgument, "invalid_request", "The sign-in response from Fathom has no code.");
  }
  SecretString code(c->second);
  SecretString verifier;
  if (!sealed_verifier.empty()) {
    auto opened = store_.sealer().open(sealed_verifier, state_aad(hash));
    if (!opened.ok()) {
      return fail(r, opened.code(), "storage_failed", "The stored sign-in request could not be read. Please try again.");
    }
    verifier = std::move(opened).value();
  }
  TokenCallStats stats;
  auto grant = token_endpoint_.exchange_code(code, options_.redirect_uri, verifier, &stats, options_.callback_timeout_ms);
  if (!grant.ok()) {
    audit(0, r.tenant_id, r.user_id, "connect_failed", grant.status().message());
    FB_LOG(kWarn, "oauth") << "code exchange failed: " << grant.status();
    if (grant.code() == Code::kInvalidGrant) {
      return fail(r, Code::kInvalidGrant, "invalid_grant",
                  "Fathom did not accept the sign-in (the code expired or was already used). Please try again.");
    }
    if (grant.code() == Code::kUnauthenticated || grant.code() == Code::kConfig) {
      // Not the user's doing and not passing: the app's client id or secret is wrong or missing.
      return fail(r, grant.code(), "configuration_error",
                  "Fathom refused this server's app credentials, so connecting cannot work until an administrator "
                  "fixes the Fathom OAuth settings (client id or client secret). Trying again will not help.");
    }
    if (grant.code() == Code::kTimeout) {
      return fail(r, grant.code(), "token_exchange_failed",
                  "Fathom did not answer in time to finish connecting. A sign-in code works only once, so please "
                  "start connecting again.");
    }
    return fail(r, grant.code(), "token_exchange_failed",
                "Fathom could not be reached to finish connecting (" + std::string(code_name(grant.code())) +
                    "). Please try again.");
  }
  if (!is_bearer_token_type(grant->token_type)) {
    // RFC 6749 7.1: a token of a type we do not understand must not be used, and ours would go out
    // as a Bearer token. Nothing is stored; the grant stays unused at Fathom.
    audit(0, r.tenant_id, r.user_id, "connect_failed",
          "Fathom issued an access token of type '" + grant->token_type + "'; only Bearer tokens are used");
    return fail(r, Code::kMalformed, "unsupported_token_type",
                "Fathom issued an access token of type '" + grant->token_type +
                    "', which this server cannot use (it uses Bearer tokens only), so nothing was connected. "
                    "Please tell your administrator.");
  }
  // The connection and its events commit together (issue 13).
  Result<ConnectOutcome> saved = Status::Internal("not saved");
  Status committed = store_.transaction([&]() -> Status {
    saved = store_.save_oauth(st.principal, grant.value());
    FB_TRY(saved.status());
    const std::string reason = saved->created ? "Fathom is connected." : "Fathom is connected again.";
    FB_TRY(emit("connected", st.principal.tenant_id, st.principal.user_id, saved->integration_id, reason));
    if (saved->previous_status == "reconnect_required" || saved->previous_failures > 0) {
      FB_TRY(emit("connection_recovered", st.principal.tenant_id, st.principal.user_id, saved->integration_id,
                  "reconnected by the user"));
    }
    return Status::Ok();
  });
  if (saved.ok() && !committed.ok()) saved = committed;
  if (!saved.ok()) {
    FB_LOG(kError, "oauth") << "storing the connection failed: " << saved.status();
    return fail(r, saved.code(), "storage_failed", "The connection could not be saved. Please try again.");
  }
  r.ok = true;
  r.integration_id = saved->integration_id;
  r.reconnected = !saved->created;
  r.code = Code::kOk;
  r.reason = r.reconnected ? "Fathom is connected again." : "Fathom is connected.";
  FB_LOG(kInfo, "oauth") << (r.reconnected ? "reconnected" : "connected") << " integration " << r.integration_id
                         << " after " << stats.attempts << " token request(s)";
  return r;
}

std::string OAuthFlow::popup_page_html(const CallbackResult& result) const {
  nlohmann::json msg = {{"source", kMessageSource}, {"status", result.ok ? "connected" : "error"}};
  if (!result.ok) msg["error"] = result.error;
  if (result.ok) msg["integration_id"] = result.integration_id;  // the contract in fathom_bridge.h
  auto origin = url_origin(options_.frontend_url);
  const std::string title = result.ok ? "Fathom connected" : "Fathom connection failed";
  const std::string text = result.ok ? result.reason : result.reason.empty() ? result.error : result.reason;
  std::string back;
  if (origin.ok()) {
    back = "<p id=\"back\" hidden><a href=\"" + html_escape(join_url(options_.frontend_url, options_.success_path)) +
           "\">Return to the CRM</a></p>";
  }
  std::string script;
  // Without a frontend origin there is nobody to tell: never fall back to '*'.
  if (origin.ok()) {
    script = "<script>\n(function () {\n  var message = " + script_json(msg) + ";\n  var origin = " +
             script_json(*origin) +
             ";\n"
             "  var opener = null;\n"
             "  try { opener = window.opener; } catch (e) { opener = null; }\n"
             "  if (opener && !opener.closed) {\n"
             "    try { opener.postMessage(message, origin); } catch (e) {}\n"
             "    setTimeout(function () { window.close(); }, " +
             std::to_string(options_.popup_close_ms) +
             ");\n"
             "  } else {\n"
             "    var back = document.getElementById('back');\n"
             "    if (back) back.hidden = false;\n"
             "  }\n"
             "})();\n</script>\n";
  }
  return "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
         "<meta name=\"referrer\" content=\"no-referrer\">\n"
         "<title>" + html_escape(title) + "</title>\n"
         "<style>\n"
         "html,body{margin:0;height:100%}\n"
         "body{display:flex;align-items:center;justify-content:center;background:#5636D3;color:#fff;"
         "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}\n"
         "main{max-width:28rem;padding:2rem;text-align:center}\n"
         "h1{font-size:1.4rem;margin:0 0 .75rem}\n"
         "p{margin:.5rem 0;line-height:1.4}\n"
         "a{color:#fff}\n"
         ".error h1::before{content:'\\26A0  '}\n"
         "</style>\n</head>\n<body>\n<main class=\"" + std::string(result.ok ? "success" : "error") + "\">\n"
         "<h1>" + html_escape(title) + "</h1>\n<p id=\"message\">" + html_escape(text) + "</p>\n" +
         "<p><small>This window closes by itself.</small></p>\n" + back + "\n</main>\n" + script +
         "</body>\n</html>\n";
}

Result<std::string> OAuthFlow::redirect_location(const CallbackResult& result) const {
  if (options_.frontend_url.empty()) {
    return Status::Config("setting 'frontend.url' (FRONTEND_URL) is missing: nowhere to redirect to");
  }
  std::string url = join_url(options_.frontend_url, options_.success_path);
  url += url.find('?') == std::string::npos ? '?' : '&';
  if (result.ok) {
    url += "fathom=connected";
  } else {
    url += "fathom=error&reason=" + url_encode(result.error.empty() ? "unknown" : result.error);
  }
  return url;
}

Result<int64_t> OAuthFlow::connect_api_key(const Principal& principal, const SecretString& api_key) {
  FB_TRY(validate_principal(principal));
  if (api_key.empty()) return Status::InvalidArgument("api_key is empty");
  if (api_key.size() > 1024 || !printable_ascii(api_key.reveal())) {
    return Status::InvalidArgument("api_key must be printable ASCII without spaces, at most 1024 bytes");
  }
  HttpRequest req;
  req.method = "GET";
  req.url = join_url(options_.api_base, "/teams");
  req.headers = {{"X-Api-Key", api_key.reveal()}, {"Accept", "application/json"}};
  auto res = transport_.send(req);
  req.headers.clear();
  if (!res.ok()) return Status(res.code(), "could not reach Fathom to check the API key: " + res.status().message());
  const int status = res->status;
  FB_LOG(kDebug, "oauth") << "API key check: GET /teams -> HTTP " << status;
  if (status == 401 || status == 403) {
    return Status::Unauthenticated("Fathom rejected the API key (HTTP " + std::to_string(status) + ")");
  }
  if (status == 429) return Status::RateLimited("Fathom rate-limited the API key check (HTTP 429); try again shortly");
  if (status >= 500) return Status::Unavailable("Fathom answered HTTP " + std::to_string(status) + " to the API key check");
  if (status < 200 || status >= 300) {
    return Status::FailedPrecondition("unexpected HTTP " + std::to_string(status) + " to the API key check");
  }
  ConnectOutcome saved;
  Status committed = store_.transaction([&]() -> Status {  // the connection and its events commit together (issue 13)
    FB_ASSIGN(saved, store_.save_api_key(principal, api_key));
    FB_TRY(emit("connected", principal.tenant_id, principal.user_id, saved.integration_id,
                "Fathom is connected (API key)."));
    if (saved.previous_status != "reconnect_required") return Status::Ok();
    return emit("connection_recovered", principal.tenant_id, principal.user_id, saved.integration_id,
                "reconnected with an API key");
  });
  FB_TRY(committed);
  FB_LOG(kInfo, "oauth") << "connected integration " << saved.integration_id << " with an API key";
  return saved.integration_id;
}

Status OAuthFlow::disconnect(const Principal& principal, int64_t integration_id) {
  return store_.transaction([&]() -> Status {  // the disconnection and its event commit together (issue 13)
    FB_ASSIGN(IntegrationRecord before, store_.disconnect(principal, integration_id));
    if (before.status == "disconnected") return Status::Ok();
    return emit("disconnected", before.tenant_id, before.user_id, before.id, "Fathom was disconnected.");
  });
}

Result<int> OAuthFlow::purge_states() {
  int n = 0;
  Db& db = store_.db();
  Status s = db.transaction([&]() -> Status {
    Stmt& q = db.prepare("DELETE FROM oauth_states WHERE expires_at < ?");
    q.bind(1, clock_.now_s() - 86400);
    FB_TRY(q.run());
    n = db.changes();
    return Status::Ok();
  });
  FB_TRY(s);
  return n;
}

}  // namespace fb::detail
