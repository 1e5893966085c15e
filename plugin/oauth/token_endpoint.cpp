#include "oauth/token_endpoint.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "crypto/encoding.h"

namespace fb::detail {
namespace {

// Keeps only what can safely appear in an error message: printable ASCII, bounded.
std::string printable(std::string_view s, size_t max) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  }
  return out;
}

bool transient_status(int status) { return status == 429 || status >= 500; }

// A gateway that gave up waiting for the server: the server may still have done the work.
bool unknown_outcome_status(int status) { return status == 504; }

void wipe(std::string& s) { std::fill(s.begin(), s.end(), '\0'); }

// An access token goes out in an Authorization header: visible ASCII only (RFC 6750 2.1's b64token
// is stricter; this refuses what could break or inject into the header: controls, CR/LF, spaces,
// non-ASCII bytes), at most 16 KiB.
bool sendable_token(const std::string& t) {
  if (t.empty() || t.size() > 16384) return false;
  for (unsigned char c : t) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

// The access token's lifetime when the answer gives none we can use.
constexpr int64_t kAssumedExpiresInS = 3600;

// expires_in as a number or a numeric string (some servers quote it); 0 when absent or unusable.
int64_t expires_in_seconds(const nlohmann::json& body) {
  auto it = body.find("expires_in");
  if (it == body.end()) return 0;
  double v = 0;
  if (it->is_number()) {
    v = it->get<double>();
  } else if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    char* end = nullptr;
    v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0') return 0;
  }
  // Bounded before the conversion (a double beyond int64 is undefined behaviour): ten years.
  if (!(v >= 1)) return 0;
  return static_cast<int64_t>(std::min(v, 10.0 * 365 * 86400));
}

}  // namespace

TokenEndpointOptions TokenEndpointOptions::from_config(const Config& c) {
  TokenEndpointOptions o;
  o.token_url = c.fathom.token_url;
  o.client_id = c.fathom.client_id;
  o.client_secret = SecretString(c.fathom.client_secret);
  o.max_attempts = c.tokens.refresh_max_attempts;
  o.backoff_base_ms = c.tokens.refresh_backoff_base_ms;
  o.backoff_max_ms = c.tokens.refresh_backoff_max_ms;
  return o;
}

std::string scrub_secrets(std::string text, const std::vector<const SecretString*>& secrets) {
  for (const SecretString* s : secrets) {
    if (!s || s->empty()) continue;
    const std::string& v = s->reveal();
    for (size_t pos = text.find(v); pos != std::string::npos; pos = text.find(v, pos)) {
      text.replace(pos, v.size(), SecretString::kRedacted);
      pos += SecretString::kRedacted.size();
    }
  }
  return text;
}

bool is_bearer_token_type(std::string_view t) { return t.empty() || ascii_iequals(t, "bearer"); }

int64_t full_jitter_backoff_ms(int retry, int base_ms, int max_ms, Random& random) {
  double cap = static_cast<double>(std::max(0, base_ms)) * static_cast<double>(int64_t{1} << std::min(retry, 30));
  cap = std::min(cap, static_cast<double>(std::max(0, max_ms)));
  return static_cast<int64_t>(random.next_unit() * cap);
}


TokenEndpoint::TokenEndpoint(HttpTransport& transport, Clock& clock, Random& random, TokenEndpointOptions options)
    : transport_(transport), clock_(clock), random_(random), options_(std::move(options)) {}

Result<TokenGrant> TokenEndpoint::exchange_code(const SecretString& code, const std::string& redirect_uri,
                                                const SecretString& code_verifier, TokenCallStats* stats,
                                                int timeout_ms) {
  std::vector<std::pair<std::string, std::string>> fields = {{"code", code.reveal()}, {"redirect_uri", redirect_uri}};
  if (!code_verifier.empty()) fields.emplace_back("code_verifier", code_verifier.reveal());
  // One send: a code is single use, and re-sending one the server already spent gets invalid_grant
  // at best and the grant revoked at worst.
  auto grant = post("authorization_code", std::move(fields), {&code, &code_verifier}, stats, {}, 1, timeout_ms);
  // Nothing is stored yet, so an unusable answer simply fails the connect.
  if (grant.ok() && !grant->unusable.empty()) return Status::Malformed(grant->unusable);
  return grant;
}

Result<TokenGrant> TokenEndpoint::refresh(const SecretString& refresh_token, TokenCallStats* stats,
                                          const BeforeAttempt& before_attempt) {
  if (refresh_token.empty()) return Status::FailedPrecondition("no refresh token stored");
  return post("refresh_token", {{"refresh_token", refresh_token.reveal()}}, {&refresh_token}, stats, before_attempt,
              options_.max_attempts, 0);
}

Result<TokenGrant> TokenEndpoint::post(const char* grant_type, std::vector<std::pair<std::string, std::string>> fields,
                                       const std::vector<const SecretString*>& scrub_in, TokenCallStats* stats,
                                       const BeforeAttempt& before_attempt, int max_attempts_in, int timeout_ms) {
  TokenCallStats local;
  TokenCallStats& st = stats ? *stats : local;
  st = TokenCallStats{};
  if (options_.client_id.empty()) {
    return Status::Config("setting 'fathom.client_id' (FATHOM_CLIENT_ID) is missing: OAuth is not configured");
  }
  if (options_.client_secret.empty()) {
    return Status::Config("setting 'fathom.client_secret' (FATHOM_CLIENT_SECRET) is missing: OAuth is not configured");
  }
  std::vector<const SecretString*> scrub = scrub_in;
  scrub.push_back(&options_.client_secret);

  fields.insert(fields.begin(), {"grant_type", grant_type});
  fields.emplace_back("client_id", options_.client_id);
  fields.emplace_back("client_secret", options_.client_secret.reveal());
  HttpRequest req;
  req.method = "POST";
  req.url = options_.token_url;
  req.content_type = "application/x-www-form-urlencoded";
  req.headers.emplace_back("Accept", "application/json");
  req.body = form_encode(fields);
  req.timeout_ms = timeout_ms;
  for (auto& [k, v] : fields) wipe(v);
  struct BodyWiper {
    std::string& b;
    ~BodyWiper() { wipe(b); }
  } wiper{req.body};

  int max_attempts = std::max(1, max_attempts_in);
  Status last = Status::Unavailable("token endpoint not reached");
  for (int attempt = 1; attempt <= max_attempts; ++attempt) {
    if (before_attempt) {
      Status go = before_attempt(attempt);
      if (!go.ok()) return go;
    }
    ++st.attempts;
    auto sent = transport_.send(req);
    int64_t wait_ms = -1;
    bool unknown = false;
    if (!sent.ok()) {
      st.last_http_status = 0;
      unknown = sent.code() == Code::kTimeout;
      last = unknown ? Status::Timeout("token endpoint did not answer in time (the request may have been processed): " +
                                       scrub_secrets(sent.status().message(), scrub))
                     : Status(sent.code(), "token endpoint unreachable: " + scrub_secrets(sent.status().message(), scrub));
      FB_LOG(kDebug, "oauth") << "token request grant_type=" << grant_type << " attempt " << attempt << "/"
                              << max_attempts << ": no answer (" << code_name(sent.code()) << ")";
    } else {
      HttpResponse& res = sent.value();
      st.last_http_status = res.status;
      auto body = nlohmann::json::parse(res.body, nullptr, /*allow_exceptions=*/false);
      FB_LOG(kDebug, "oauth") << "token request grant_type=" << grant_type << " attempt " << attempt << "/"
                              << max_attempts << ": HTTP " << res.status << " (" << res.body.size() << " bytes)";
      // An error answer (RFC 6749 5.2) on a 2xx status, as some servers send (GitHub's): no token in
      // it, an "error" code. Read as the 400 it means, so that an invalid_grant ends the grant
      // instead of being retried after every cool-down forever.
      const bool error_on_2xx = res.status >= 200 && res.status < 300 && body.is_object() &&
                                !body.contains("access_token") && !body.contains("refresh_token") &&
                                body.contains("error") && body["error"].is_string() &&
                                !body["error"].get_ref<const std::string&>().empty();
      const int status = error_on_2xx ? 400 : res.status;
      if (status >= 200 && status < 300) {
        // A 2xx answer may have rotated the refresh token even when its access token is unusable:
        // the refresh token it carries is read first, so the caller can keep it (RFC 6749 6).
        std::string unusable;
        if (!body.is_object()) {
          unusable = "a body that is not a JSON object";
        } else if (!body.contains("access_token") || !body["access_token"].is_string() ||
                   body["access_token"].get_ref<const std::string&>().empty()) {
          unusable = "no access_token";
        } else if (!sendable_token(body["access_token"].get_ref<const std::string&>())) {
          unusable = "an access_token that cannot be sent as a Bearer token (control, space or non-ASCII bytes)";
        }
        if (!unusable.empty()) {
          TokenGrant g;
          g.unusable = "token endpoint answered HTTP " + std::to_string(res.status) + " with " + unusable;
          g.rotation_unknown = !body.is_object();
          if (body.is_object()) {
            if (auto rt = body.find("refresh_token"); rt != body.end() && rt->is_string()) {
              g.refresh_token = SecretString(rt->get<std::string>());
            }
          }
          wipe(res.body);
          return g;
        }
        // expires_in is only RECOMMENDED (RFC 6749 5.1). Refusing an answer without a usable one
        // would throw away a refresh token the server has already rotated, and with it the grant:
        // assume a lifetime instead (a shorter real one ends in a 401, which refreshes).
        int64_t expires_in = expires_in_seconds(body);
        if (expires_in <= 0) {
          FB_LOG(kWarn, "oauth") << "token endpoint answered grant_type=" << grant_type
                                 << " without a positive expires_in; assuming " << kAssumedExpiresInS << " s";
          expires_in = kAssumedExpiresInS;
        }
        TokenGrant g;
        g.access_token = SecretString(body["access_token"].get<std::string>());
        if (body.contains("refresh_token") && body["refresh_token"].is_string()) {
          g.refresh_token = SecretString(body["refresh_token"].get<std::string>());
        }
        g.expires_at = clock_.now_s() + expires_in;
        if (auto t = body.find("token_type"); t != body.end()) {
          g.token_type = t->is_string() ? printable(t->get_ref<const std::string&>(), 40) : printable(t->dump(), 40);
        }
        wipe(res.body);
        return g;
      }
      std::string error, description;
      if (body.is_object()) {
        if (body.contains("error") && body["error"].is_string()) error = body["error"].get<std::string>();
        if (body.contains("error_description") && body["error_description"].is_string()) {
          description = body["error_description"].get<std::string>();
        } else if (body.contains("message") && body["message"].is_string()) {
          description = body["message"].get<std::string>();
        }
      }
      st.oauth_error = printable(error, 64);
      std::string msg = "token endpoint answered HTTP " + std::to_string(res.status);
      if (!error.empty()) msg += " " + printable(error, 64);
      if (!description.empty()) msg += ": " + printable(scrub_secrets(description, scrub), 200);
      // RFC 6749 5.2 answers errors with 400: an invalid_grant on a 5xx (or any non-4xx) status is
      // a server fault, not a verdict on the grant, and is handled by its status below.
      if (error == "invalid_grant" && status >= 400 && status < 500) {
        if (st.outcome_unknown) msg += " (after an earlier request of this call got no answer)";
        return Status::InvalidGrant(msg);
      }
      if (!transient_status(status)) {
        if (error == "invalid_client" || status == 401) {
          return Status::Unauthenticated(
              "Fathom refused this app's client credentials: check the settings 'fathom.client_id' and "
              "'fathom.client_secret' (FATHOM_CLIENT_ID, FATHOM_CLIENT_SECRET); " + msg);
        }
        return Status::InvalidArgument(msg);
      }
      unknown = unknown_outcome_status(status);
      last = Status(status == 429 ? Code::kRateLimited : unknown ? Code::kTimeout : Code::kUnavailable, msg);
      wait_ms = parse_retry_after_ms(res.header("Retry-After"), clock_.now_ms());
      if (wait_ms > options_.max_retry_after_ms) {
        return Status::RateLimited(msg + " (Retry-After " + std::to_string(wait_ms / 1000) + " s is too long to wait)");
      }
    }
    if (unknown) {
      // The server may have spent what this request carried: one confirming send, then stop.
      if (!st.outcome_unknown) max_attempts = std::min(max_attempts, attempt + 1);
      else max_attempts = attempt;
      st.outcome_unknown = true;
    }
    if (attempt >= max_attempts) break;
    if (wait_ms < 0) wait_ms = full_jitter_backoff_ms(attempt - 1, options_.backoff_base_ms, options_.backoff_max_ms, random_);
    st.waited_ms += wait_ms;
    clock_.sleep_ms(wait_ms);
  }
  return last.with_context("after " + std::to_string(st.attempts) + " attempt(s)");
}

}  // namespace fb::detail
