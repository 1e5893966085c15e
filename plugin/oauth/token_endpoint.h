// token_endpoint.h: the client side of Fathom's OAuth token endpoint (fathom-api.md 1.3,
// RFC 6749 sections 4.1.3 and 6).
//
// Requests are application/x-www-form-urlencoded with client_id and client_secret in the body.
// Network errors, 429 and 5xx are retried with exponential backoff and full jitter (a random
// wait in [0, min(backoff_max, backoff_base * 2^n)]), at most max_attempts sends in total; a
// Retry-After header (seconds) is honoured instead of the jittered wait when present, up to
// max_retry_after_ms (beyond that the call gives up at once with kRateLimited).
//
// Result codes:
//   kInvalidGrant      the server said invalid_grant (code or refresh token dead, reused, revoked)
//   kUnauthenticated   invalid_client: the app's client_id/client_secret are wrong (a setting)
//   kInvalidArgument   another 4xx (invalid_request, unsupported_grant_type, ...)
//   kUnavailable / kTimeout / kRateLimited   retries exhausted on network errors, 5xx / 429
//   kMalformed         a 2xx whose body lacks access_token or a positive expires_in
//   kCancelled         before_attempt refused to go on (e.g. the refresh lease was lost)
// Messages carry the HTTP status and the OAuth error code and description, scrubbed of the
// code, refresh token and client secret; never a token.
//
// Thread-safe: no mutable state besides the transport, which is thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/random.h"
#include "core/secret.h"
#include "fathom_bridge/config.h"
#include "http/http_client.h"
#include "oauth/integration_store.h"

namespace fb::detail {

struct TokenEndpointOptions {
  std::string token_url;
  std::string client_id;
  SecretString client_secret;
  int max_attempts = 4;
  int backoff_base_ms = 500;
  int backoff_max_ms = 30000;
  int64_t max_retry_after_ms = 120000;
  // fathom.token_url, client_id, client_secret and the tokens.refresh_* settings.
  static TokenEndpointOptions from_config(const Config& config);
};

// What happened on the wire during one call, for logs and tests.
struct TokenCallStats {
  int attempts = 0;             // sends made
  int64_t waited_ms = 0;        // total backoff slept
  int last_http_status = 0;     // 0 when the last attempt got no HTTP answer
  std::string oauth_error;      // the last OAuth "error" value, "" when none
};

class TokenEndpoint {
 public:
  // transport, clock and random must outlive this object.
  TokenEndpoint(HttpTransport& transport, Clock& clock, Random& random, TokenEndpointOptions options);

  // Called before every send; a non-ok Status stops the call with that Status (code kept).
  using BeforeAttempt = std::function<Status(int attempt)>;

  // grant_type=authorization_code. code_verifier empty: no PKCE.
  Result<TokenGrant> exchange_code(const SecretString& code, const std::string& redirect_uri,
                                   const SecretString& code_verifier, TokenCallStats* stats = nullptr,
                                   const BeforeAttempt& before_attempt = {});
  // grant_type=refresh_token.
  Result<TokenGrant> refresh(const SecretString& refresh_token, TokenCallStats* stats = nullptr,
                             const BeforeAttempt& before_attempt = {});

  const TokenEndpointOptions& options() const { return options_; }

 private:
  Result<TokenGrant> post(const char* grant_type, std::vector<std::pair<std::string, std::string>> fields,
                          const std::vector<const SecretString*>& scrub, TokenCallStats* stats,
                          const BeforeAttempt& before_attempt);

  HttpTransport& transport_;
  Clock& clock_;
  Random& random_;
  const TokenEndpointOptions options_;
};

// Replaces every occurrence of each non-empty secret in text with "[redacted]".
std::string scrub_secrets(std::string text, const std::vector<const SecretString*>& secrets);

// The wait before retry number `retry` (0-based) with full jitter: uniform in
// [0, min(max_ms, base_ms * 2^retry)].
int64_t full_jitter_backoff_ms(int retry, int base_ms, int max_ms, Random& random);

}  // namespace fb::detail
