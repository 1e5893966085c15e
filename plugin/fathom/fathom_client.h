// fathom_client.h: typed, rate-limited calls to Fathom's REST API (fathom-api.md sections 2-3).
//
// Every call of an integration goes through that account's RateLimiter (shared through the
// RateLimiterRegistry), authenticates with the integration's Credential (Bearer for OAuth,
// X-Api-Key for API keys), and is retried when that can help:
//   - network errors and 5xx: up to max_attempts sends in total, exponential backoff with full
//     jitter (a random wait in [0, min(backoff_max, backoff_base * 2^n)]);
//   - 429: the limiter holds every caller of the account until Retry-After / RateLimit-Reset,
//     then the call is sent again (bounded by max_rate_limited_retries);
//   - 401: CredentialSource::refresh_after_unauthorized once, then one more send;
//   - other 4xx: never retried; the Status carries the HTTP status and the start of the body.
// Codes: 400 kInvalidArgument, 401 kUnauthenticated, 403 kPermissionDenied, 404 kNotFound,
// 429 (retries exhausted) kRateLimited, 5xx/network kUnavailable (or kTimeout), undecodable body
// kMalformed, kReconnectRequired from the credential source, kCancelled from a CallScope.
// No message ever contains a credential; response bodies are truncated and scrubbed of it.
//
// Thread-safe: one FathomClient may serve every thread of the process.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/random.h"
#include "fathom_bridge/config.h"
#include "fathom/credential_source.h"
#include "fathom/models.h"
#include "fathom/rate_limiter.h"
#include "http/http_client.h"

namespace fb::detail {

struct FathomClientOptions {
  std::string api_base = "https://api.fathom.ai/external/v1";  // fathom.api_base
  int max_attempts = 5;            // sync.max_attempts: sends per call on 5xx / network errors
  int backoff_base_ms = 500;       // sync.backoff_base_ms
  int backoff_max_ms = 30'000;     // sync.backoff_max_ms
  int max_rate_limited_retries = 5;  // 429s waited out per call before giving up with kRateLimited
  // Sent as User-Agent on every call (the transport's own is used when empty).
  std::string user_agent = "fathom-bridge/0.1";
  // fathom.oauth_include_content_on_list: OAuth apps may not ask /meetings for transcripts or
  // summaries (fathom-api.md 1.5), so by default those flags are dropped for Bearer credentials.
  bool oauth_include_content_on_list = false;
  size_t error_body_max = 300;  // bytes of a 4xx/5xx body kept in the error message
  // fathom.api_base, fathom.oauth_include_content_on_list, sync.max_attempts, sync.backoff_*.
  static FathomClientOptions from_config(const Config& config);
};

// Filters of GET /meetings. Times are Unix seconds (0 = not set), sent as ISO 8601.
struct MeetingQuery {
  int64_t created_after = 0;
  int64_t created_before = 0;
  std::vector<std::string> recorded_by;               // recorded_by[]
  std::vector<std::string> teams;                     // teams[]
  std::vector<std::string> calendar_invitees_domains;  // calendar_invitees_domains[]
  std::string calendar_invitees_domains_type;         // "", "all", "only_internal", "one_or_more_external"
  bool include_transcript = false;
  bool include_summary = false;
  bool include_action_items = false;
  bool include_crm_matches = false;

  // The query string (without cursor), in a stable order: used to send and to checkpoint.
  std::string to_query_string() const;
  // Lossless JSON form, for storing filters beside a checkpoint cursor.
  std::string to_json() const;
  static Result<MeetingQuery> from_json(std::string_view json);
};

// Body of POST /webhooks.
struct WebhookSpec {
  std::string destination_url;
  std::vector<std::string> triggered_for;  // my_recordings, shared_external_recordings, ...
  bool include_transcript = false;
  bool include_summary = false;
  bool include_action_items = false;
  bool include_crm_matches = false;
};

// Counts the API calls (HTTP sends, retries included) made by the current thread while it lives,
// and lets a caller cancel waits (rate-limit and backoff) of calls on this thread. Scopes nest:
// every live scope on the thread counts each call. Not shared across threads.
class CallScope {
 public:
  explicit CallScope(const std::atomic<bool>* cancel = nullptr);
  ~CallScope();
  CallScope(const CallScope&) = delete;
  CallScope& operator=(const CallScope&) = delete;
  int64_t calls() const { return calls_; }
  // Internal: called by FathomClient for each send on this thread.
  static void count_call();
  // True when the cancel flag of any live scope on this thread is set.
  static bool cancelled();

 private:
  CallScope* outer_;
  const std::atomic<bool>* cancel_;
  int64_t calls_ = 0;
};

// Answers to this client's sends, by outcome (lifetime, all threads), for /metrics.
struct FathomCallCounts {
  int64_t ok = 0;             // 2xx
  int64_t client_error = 0;   // 4xx other than 429 (401s included)
  int64_t rate_limited = 0;   // 429
  int64_t server_error = 0;   // 5xx
  int64_t network_error = 0;  // no HTTP answer (refused, timeout, TLS)
};

class FathomClient {
 public:
  // All references must outlive the client.
  FathomClient(HttpTransport& transport, CredentialSource& credentials, RateLimiterRegistry& limiters, Clock& clock,
               FathomClientOptions options = {}, Random& random = system_random());

  // GET /meetings: one page. `cursor` empty = first page. Filters are sent with every cursor.
  Result<Page<Meeting>> list_meetings(int64_t integration_id, const MeetingQuery& query,
                                      const std::string& cursor = "");
  // Pages through GET /meetings from `cursor` until next_cursor is null, "" or missing, calling
  // on_page(page) after each page; a non-ok Status from on_page stops the paging and is returned.
  // The filters are re-sent with each cursor.
  Status for_each_meeting_page(int64_t integration_id, const MeetingQuery& query, const std::string& cursor,
                               const std::function<Status(const Page<Meeting>&)>& on_page);
  // GET /recordings/{id}/transcript. raw_json (optional) receives the transcript array's JSON.
  Result<std::vector<TranscriptItem>> get_transcript(int64_t integration_id, int64_t recording_id,
                                                     std::string* raw_json = nullptr);
  // GET /recordings/{id}/summary. raw_json (optional) receives the summary object's JSON.
  Result<Summary> get_summary(int64_t integration_id, int64_t recording_id, std::string* raw_json = nullptr);
  // GET /teams: one page.
  Result<Page<Team>> list_teams(int64_t integration_id, const std::string& cursor = "");
  // GET /team_members[?team=]: one page.
  Result<Page<TeamMember>> list_team_members(int64_t integration_id, const std::string& team = "",
                                             const std::string& cursor = "");
  // POST /webhooks. The result's secret is a SecretString.
  Result<Webhook> create_webhook(int64_t integration_id, const WebhookSpec& spec);
  // DELETE /webhooks/{id}. A 404 is kNotFound (the caller may treat it as already gone).
  Status delete_webhook(int64_t integration_id, const std::string& webhook_id);

  // One authenticated, rate-limited, retried call; `path_and_query` is relative to api_base
  // (e.g. "/teams?cursor=x"). Returns the 2xx response; failures as described above.
  Result<HttpResponse> call(int64_t integration_id, const std::string& method, const std::string& path_and_query,
                            const std::string& json_body = "");

  const FathomClientOptions& options() const { return options_; }
  RateLimiterRegistry& limiters() { return limiters_; }
  // Lifetime count of HTTP sends by this client (all threads).
  int64_t total_calls() const { return total_calls_.load(); }
  FathomCallCounts call_counts() const;

 private:
  Status backoff(int attempt);
  void count_outcome(int http_status);  // 0: no HTTP answer
  // call() with a path built per attempt from the credential in use.
  Result<HttpResponse> call_with(int64_t integration_id, const std::string& method,
                                 const std::function<std::string(const Credential&)>& path_fn,
                                 const std::string& json_body = "");

  HttpTransport& transport_;
  CredentialSource& credentials_;
  RateLimiterRegistry& limiters_;
  Clock& clock_;
  const FathomClientOptions options_;
  Random& random_;
  std::atomic<int64_t> total_calls_{0};
  // By outcome, in FathomCallCounts' order.
  std::array<std::atomic<int64_t>, 5> outcomes_{};
};

}  // namespace fb::detail
