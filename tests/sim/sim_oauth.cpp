// OAuth 2.0 authorization-code flow of fathom-api.md 1 and 7 (items 1-6), RFC 6749 and RFC 7636.
#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <thread>

#include "crypto/encoding.h"
#include "crypto/hash.h"
#include "sim/sim_server.h"

namespace fb::sim {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;
using fb::detail::html_escape;

// The one value of `key`; "" when absent. *dup is set when it occurs more than once.
std::string field(const Fields& f, const std::string& key, bool* present = nullptr, bool* dup = nullptr) {
  std::string v;
  int n = 0;
  for (const auto& [k, val] : f) {
    if (k == key) {
      if (n++ == 0) v = val;
    }
  }
  if (present) *present = n > 0;
  if (dup && n > 1) *dup = true;
  return v;
}

std::string media_type(const std::string& content_type) {
  std::string t = content_type.substr(0, content_type.find(';'));
  t.erase(std::remove_if(t.begin(), t.end(), [](unsigned char c) { return std::isspace(c); }), t.end());
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  return t;
}

std::string append_query(const std::string& uri, const Fields& params) {
  std::string out = uri;
  char sep = uri.find('?') == std::string::npos ? '?' : '&';
  for (const auto& [k, v] : params) {
    out += sep;
    out += fb::detail::url_encode(k) + "=" + fb::detail::url_encode(v);
    sep = '&';
  }
  return out;
}

std::string page(const std::string& title, const std::string& body) {
  return "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + html_escape(title) +
         "</title><style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}"
         "button{font-size:1rem;padding:.5rem 1.2rem;margin-right:.5rem}select{font-size:1rem}"
         ".deny{background:#eee}.approve{background:#2b6cb0;color:#fff;border:0}</style></head><body>\n" +
         body + "\n</body></html>\n";
}

// RFC 7636 4.1: 43..128 characters of [A-Za-z0-9-._~].
bool valid_verifier(const std::string& v) {
  if (v.size() < 43 || v.size() > 128) return false;
  return std::all_of(v.begin(), v.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
  });
}

}  // namespace

void Simulator::install_oauth_routes() {
  const std::string base = "/external/v1/oauth2";
  svr_->Get(base + "/authorize", [this](const httplib::Request& req, httplib::Response& res) {
    handle_authorize(req, res, false);
  });
  svr_->Post(base + "/authorize", [this](const httplib::Request& req, httplib::Response& res) {
    handle_authorize(req, res, true);
  });
  svr_->Post(base + "/token", [this](const httplib::Request& req, httplib::Response& res) {
    if (!pre_request(req, res)) return;
    handle_token(req, res);
    // The work is done (and counted); only the answer is held back.
    int64_t late = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (knobs_.token_late_ms > 0 && knobs_.token_late_count != 0) {
        late = knobs_.token_late_ms;
        if (knobs_.token_late_count > 0) --knobs_.token_late_count;
        ++token_late_answers_;
      }
    }
    if (late > 0) std::this_thread::sleep_for(std::chrono::milliseconds(late));
  });
}

void Simulator::handle_authorize(const httplib::Request& req, httplib::Response& res, bool post) {
  // Parameters come from the query (GET) or the form body (POST from the page), byte-exact.
  std::string raw = post ? req.body : (req.target.find('?') == std::string::npos ? "" : req.target.substr(req.target.find('?') + 1));
  auto parsed = fb::detail::form_decode(raw);
  auto error_page = [&](int status, const std::string& why) {
    std::lock_guard<std::mutex> lock(mu_);
    ++authorize_["errors"];
    res.status = status;
    res.set_content(page("Authorization error", "<h1>Authorization error</h1><p>" + html_escape(why) +
                                                    "</p><p>The application sent an invalid request; nothing was "
                                                    "authorized.</p>"),
                    "text/html; charset=utf-8");
  };
  if (!parsed) return error_page(400, "malformed percent-encoding in the request");
  if (post && media_type(req.get_header_value("Content-Type")) != "application/x-www-form-urlencoded") {
    return error_page(400, "the decision must be posted as application/x-www-form-urlencoded");
  }
  const Fields& f = *parsed;
  bool dup = false, has_state = false;
  std::string client_id = field(f, "client_id", nullptr, &dup);
  std::string redirect_uri = field(f, "redirect_uri", nullptr, &dup);
  std::string response_type = field(f, "response_type", nullptr, &dup);
  std::string scope = field(f, "scope", nullptr, &dup);
  std::string state = field(f, "state", &has_state, &dup);
  std::string challenge = field(f, "code_challenge", nullptr, &dup);
  std::string method = field(f, "code_challenge_method", nullptr, &dup);

  // RFC 6749 4.1.2.1: never redirect to an unverified redirect_uri.
  if (client_id.empty()) return error_page(400, "missing client_id");
  if (client_id != opts_.client_id) return error_page(400, "unknown client_id '" + client_id + "'");
  if (redirect_uri.empty()) return error_page(400, "missing redirect_uri");
  if (std::find(opts_.redirect_uris.begin(), opts_.redirect_uris.end(), redirect_uri) == opts_.redirect_uris.end()) {
    return error_page(400, "redirect_uri '" + redirect_uri + "' is not registered for this application (exact match)");
  }
  const std::string issuer = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    return knobs_.issuer;
  }();
  auto redirect = [&](Fields params) {
    if (has_state) params.emplace_back("state", state);
    if (!issuer.empty()) params.emplace_back("iss", issuer);
    res.status = 302;
    res.set_header("Location", append_query(redirect_uri, params));
    res.set_header("Cache-Control", "no-store");
  };
  auto redirect_error = [&](const std::string& error, const std::string& description) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++authorize_["errors"];
    }
    redirect({{"error", error}, {"error_description", description}});
  };
  if (dup) return redirect_error("invalid_request", "a parameter was sent more than once");
  if (response_type != "code") return redirect_error("unsupported_response_type", "response_type must be 'code'");
  if (!scope.empty()) {
    size_t pos = 0;
    while (pos <= scope.size()) {
      size_t sp = scope.find(' ', pos);
      std::string s = scope.substr(pos, sp == std::string::npos ? std::string::npos : sp - pos);
      if (!s.empty() && s != "public_api") return redirect_error("invalid_scope", "the only scope is 'public_api'");
      if (sp == std::string::npos) break;
      pos = sp + 1;
    }
  }
  if (!method.empty() && challenge.empty()) {
    return redirect_error("invalid_request", "code_challenge_method without code_challenge");
  }
  if (!challenge.empty()) {
    if (method.empty()) method = "plain";  // RFC 7636 4.3 default
    if (method != "plain" && method != "S256") {
      return redirect_error("invalid_request", "code_challenge_method must be S256 or plain");
    }
  }
  Knobs k;
  std::vector<User> users;
  {
    std::lock_guard<std::mutex> lock(mu_);
    k = knobs_;
    users = users_;
  }
  if (k.pkce_required && challenge.empty()) return redirect_error("invalid_request", "code_challenge is required");

  if (!post) {
    std::lock_guard<std::mutex> lock(mu_);
    ++authorize_["shown"];
    std::string hidden;
    for (const auto& [key, value] : f) {
      if (key == "user" || key == "decision") continue;
      hidden += "<input type=\"hidden\" name=\"" + html_escape(key) + "\" value=\"" + html_escape(value) + "\">\n";
    }
    std::string options;
    for (const auto& u : users) {
      options += "<option value=\"" + html_escape(u.email) + "\">" + html_escape(u.name + " <" + u.email + ">") +
                 "</option>\n";
    }
    std::string body = "<h1>Authorize " + html_escape(client_id) + "</h1>\n"
                       "<p><strong>" + html_escape(client_id) + "</strong> wants to access your Fathom meetings, "
                       "transcripts and summaries (scope <code>public_api</code>) and to manage webhooks.</p>\n"
                       "<form method=\"post\" action=\"/external/v1/oauth2/authorize\">\n" + hidden +
                       "<p><label for=\"user\">Signed in as</label>\n<select id=\"user\" name=\"user\">\n" + options +
                       "</select></p>\n<p><button class=\"approve\" type=\"submit\" name=\"decision\" value=\"approve\">"
                       "Approve</button>\n<button class=\"deny\" type=\"submit\" name=\"decision\" value=\"deny\">Deny"
                       "</button></p>\n</form>\n<p><small>fathom-sim: a local Fathom simulator. Redirects to " +
                       html_escape(redirect_uri) + "</small></p>";
    res.status = 200;
    res.set_header("Cache-Control", "no-store");
    res.set_content(page("Authorize " + client_id + " - Fathom", body), "text/html; charset=utf-8");
    return;
  }

  std::string decision = field(f, "decision");
  std::string user = field(f, "user");
  if (decision != "approve" && decision != "deny") return error_page(400, "decision must be 'approve' or 'deny'");
  std::lock_guard<std::mutex> lock(mu_);
  if (!find_user(user)) {
    ++authorize_["errors"];
    res.status = 400;
    res.set_content(page("Authorization error", "<h1>Unknown user</h1><p>" + html_escape(user) + "</p>"),
                    "text/html; charset=utf-8");
    return;
  }
  if (decision == "deny") {
    ++authorize_["denied"];
    return redirect({{"error", "access_denied"}});
  }
  ++authorize_["approved"];
  std::string code = new_token("fa_code_");
  codes_[code] = AuthCode{user, client_id, redirect_uri, challenge, method, now_ms() + k.code_ttl_s * 1000, false, 0};
  redirect({{"code", code}});
}

void Simulator::token_error(httplib::Response& res, int status, const std::string& error, const std::string& description) {
  ++token_errors_[error];
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(nlohmann::json({{"error", error}, {"error_description", description}}).dump(), "application/json");
}

void Simulator::revoke_grant(int64_t grant_id) {
  grants_[grant_id].revoked = true;
  for (auto& [t, a] : access_tokens_) {
    if (a.grant_id == grant_id) a.revoked = true;
  }
  for (auto& [t, r] : refresh_tokens_) {
    if (r.grant_id == grant_id) r.used = true;
  }
}

nlohmann::json Simulator::issue_tokens(int64_t grant_id) {
  std::string access = new_token("fa_at_");
  std::string refresh = new_token("fa_rt_");
  access_tokens_[access] = AccessToken{grant_id, now_ms() + knobs_.token_ttl_s * 1000, false};
  refresh_tokens_[refresh] = RefreshToken{grant_id, false};
  return {{"access_token", access}, {"refresh_token", refresh}, {"expires_in", knobs_.token_ttl_s},
          {"token_type", "Bearer"}, {"scope", "public_api"}};
}

void Simulator::handle_token(const httplib::Request& req, httplib::Response& res) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string type = media_type(req.get_header_value("Content-Type"));
  if (type != "application/x-www-form-urlencoded") {
    ++token_requests_["invalid_content_type"];
    return token_error(res, 400, "invalid_request",
                       "the token endpoint accepts only application/x-www-form-urlencoded bodies (got '" +
                           (type.empty() ? std::string("none") : type) + "')");
  }
  auto parsed = fb::detail::form_decode(req.body);
  if (!parsed) {
    ++token_requests_["malformed"];
    return token_error(res, 400, "invalid_request", "malformed form body");
  }
  const Fields& f = *parsed;
  bool dup = false;
  std::string grant_type = field(f, "grant_type", nullptr, &dup);
  std::string client_id = field(f, "client_id", nullptr, &dup);
  std::string client_secret = field(f, "client_secret", nullptr, &dup);
  ++token_requests_[grant_type.empty() ? "missing" : grant_type];

  RateDecision rd = token_limiter_.hit(client_id, knobs_.token_rate_limit, knobs_.token_rate_window_s,
                                       knobs_.rate_window_mode == "sliding", mono_ms());
  set_rate_headers(res, rd, !rd.allowed);
  if (!rd.allowed) {
    ++token_rate_limited_;
    return token_error(res, 429, "rate_limit_exceeded", "too many token requests for this client_id");
  }
  if (dup) return token_error(res, 400, "invalid_request", "a parameter was sent more than once");
  if (client_id.empty() || client_secret.empty()) {
    return token_error(res, 401, "invalid_client", "client_id and client_secret are required in the form body");
  }
  if (client_id != opts_.client_id || !fb::detail::constant_time_equal(client_secret, opts_.client_secret)) {
    return token_error(res, 401, "invalid_client", "client authentication failed");
  }
  if (grant_type.empty()) return token_error(res, 400, "invalid_request", "missing grant_type");

  if (grant_type == "authorization_code") {
    std::string code = field(f, "code");
    if (code.empty()) return token_error(res, 400, "invalid_request", "missing code");
    auto it = codes_.find(code);
    if (it == codes_.end()) return token_error(res, 400, "invalid_grant", "unknown authorization code");
    AuthCode& c = it->second;
    if (c.used) {
      if (knobs_.revoke_grant_on_reuse && c.grant_id) revoke_grant(c.grant_id);
      return token_error(res, 400, "invalid_grant", "authorization code already used");
    }
    if (now_ms() >= c.expires_ms) return token_error(res, 400, "invalid_grant", "authorization code expired");
    if (c.client_id != client_id) return token_error(res, 400, "invalid_grant", "code was issued to another client");
    if (field(f, "redirect_uri") != c.redirect_uri) {
      return token_error(res, 400, "invalid_grant", "redirect_uri does not match the authorization request");
    }
    if (!c.challenge.empty() && knobs_.pkce_verify) {
      std::string verifier = field(f, "code_verifier");
      if (!valid_verifier(verifier)) return token_error(res, 400, "invalid_grant", "missing or malformed code_verifier");
      std::string expected =
          c.challenge_method == "S256" ? fb::detail::base64url_encode(fb::detail::sha256(verifier)) : verifier;
      if (!fb::detail::constant_time_equal(expected, c.challenge)) {
        return token_error(res, 400, "invalid_grant", "code_verifier does not match code_challenge");
      }
    }
    c.used = true;
    int64_t gid = next_grant_id_++;
    grants_[gid] = Grant{c.user, client_id, false};
    c.grant_id = gid;
    res.set_header("Cache-Control", "no-store");
    res.set_header("Pragma", "no-cache");
    return send_json(res, 200, issue_tokens(gid));
  }

  if (grant_type == "refresh_token") {
    std::string token = field(f, "refresh_token");
    if (token.empty()) return token_error(res, 400, "invalid_request", "missing refresh_token");
    auto it = refresh_tokens_.find(token);
    if (it == refresh_tokens_.end()) return token_error(res, 400, "invalid_grant", "unknown refresh token");
    RefreshToken& r = it->second;
    Grant& g = grants_[r.grant_id];
    if (g.revoked) return token_error(res, 400, "invalid_grant", "the grant was revoked");
    if (r.used) {
      if (knobs_.revoke_grant_on_reuse) revoke_grant(r.grant_id);
      return token_error(res, 400, "invalid_grant", "refresh token already used");
    }
    if (g.client_id != client_id) return token_error(res, 400, "invalid_grant", "refresh token belongs to another client");
    r.used = true;
    int64_t gid = r.grant_id;
    if (knobs_.revoke_access_on_refresh) {
      for (auto& [t, a] : access_tokens_) {
        if (a.grant_id == gid) a.revoked = true;
      }
    }
    res.set_header("Cache-Control", "no-store");
    res.set_header("Pragma", "no-cache");
    return send_json(res, 200, issue_tokens(gid));
  }
  return token_error(res, 400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token");
}

}  // namespace fb::sim
