#include "fathom/fathom_client.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "crypto/encoding.h"

namespace fb::detail {
namespace {

thread_local CallScope* t_scope = nullptr;

void add_param(std::string* q, std::string_view name, std::string_view value) {
  q->append(q->empty() ? "?" : "&");
  q->append(name);  // names are ours and URL-safe (brackets included, as Fathom documents them)
  q->push_back('=');
  q->append(url_encode(value));
}

// A response body made safe for an error message: bounded, printable, never echoing the
// credential even if a server reflects it.
std::string body_excerpt(const std::string& body, const Credential& cred, size_t max) {
  std::string b = body;
  const std::string& secret = cred.value.reveal();
  if (!secret.empty()) {
    for (size_t pos = b.find(secret); pos != std::string::npos; pos = b.find(secret, pos)) {
      b.replace(pos, secret.size(), SecretString::kRedacted);
    }
  }
  bool cut = b.size() > max;
  if (cut) b.resize(max);
  for (char& c : b) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  if (b.empty()) return "(empty body)";
  return cut ? b + "..." : b;
}

std::string path_only(const std::string& path_and_query) {
  return path_and_query.substr(0, path_and_query.find('?'));
}

Code code_for_status(int status) {
  switch (status) {
    case 400: return Code::kInvalidArgument;
    case 401: return Code::kUnauthenticated;
    case 403: return Code::kPermissionDenied;
    case 404: return Code::kNotFound;
    case 409: return Code::kConflict;
    case 413: return Code::kTooLarge;
    case 429: return Code::kRateLimited;
    default: return status >= 500 ? Code::kUnavailable : Code::kInvalidArgument;
  }
}

}  // namespace

// --- CallScope ---

CallScope::CallScope(const std::atomic<bool>* cancel) : outer_(t_scope), cancel_(cancel) { t_scope = this; }
CallScope::~CallScope() { t_scope = outer_; }

void CallScope::count_call() {
  for (CallScope* s = t_scope; s; s = s->outer_) ++s->calls_;
}

bool CallScope::cancelled() {
  for (CallScope* s = t_scope; s; s = s->outer_) {
    if (s->cancel_ && s->cancel_->load()) return true;
  }
  return false;
}

// --- MeetingQuery ---

std::string MeetingQuery::to_query_string() const {
  std::string q;
  if (created_after > 0) add_param(&q, "created_after", format_iso8601(created_after));
  if (created_before > 0) add_param(&q, "created_before", format_iso8601(created_before));
  for (const auto& v : recorded_by) add_param(&q, "recorded_by[]", v);
  for (const auto& v : teams) add_param(&q, "teams[]", v);
  for (const auto& v : calendar_invitees_domains) add_param(&q, "calendar_invitees_domains[]", v);
  if (!calendar_invitees_domains_type.empty()) {
    add_param(&q, "calendar_invitees_domains_type", calendar_invitees_domains_type);
  }
  if (include_transcript) add_param(&q, "include_transcript", "true");
  if (include_summary) add_param(&q, "include_summary", "true");
  if (include_action_items) add_param(&q, "include_action_items", "true");
  if (include_crm_matches) add_param(&q, "include_crm_matches", "true");
  return q;
}

std::string MeetingQuery::to_json() const {
  nlohmann::json j = {{"created_after", created_after},
                      {"created_before", created_before},
                      {"recorded_by", recorded_by},
                      {"teams", teams},
                      {"calendar_invitees_domains", calendar_invitees_domains},
                      {"calendar_invitees_domains_type", calendar_invitees_domains_type},
                      {"include_transcript", include_transcript},
                      {"include_summary", include_summary},
                      {"include_action_items", include_action_items},
                      {"include_crm_matches", include_crm_matches}};
  return j.dump();
}

Result<MeetingQuery> MeetingQuery::from_json(std::string_view json) {
  auto j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Malformed("meeting query: invalid JSON");
  MeetingQuery q;
  try {
    q.created_after = j.value("created_after", int64_t{0});
    q.created_before = j.value("created_before", int64_t{0});
    q.recorded_by = j.value("recorded_by", std::vector<std::string>{});
    q.teams = j.value("teams", std::vector<std::string>{});
    q.calendar_invitees_domains = j.value("calendar_invitees_domains", std::vector<std::string>{});
    q.calendar_invitees_domains_type = j.value("calendar_invitees_domains_type", std::string{});
    q.include_transcript = j.value("include_transcript", false);
    q.include_summary = j.value("include_summary", false);
    q.include_action_items = j.value("include_action_items", false);
    q.include_crm_matches = j.value("include_crm_matches", false);
  } catch (const std::exception& e) {
    return Status::Malformed(std::string("meeting query: ") + e.what());
  }
  return q;
}

// --- FathomClient ---

FathomClientOptions FathomClientOptions::from_config(const Config& config) {
  FathomClientOptions o;
  o.api_base = config.fathom.api_base;
  o.oauth_include_content_on_list = config.fathom.oauth_include_content_on_list;
  o.max_attempts = config.sync.max_attempts;
  o.backoff_base_ms = config.sync.backoff_base_ms;
  o.backoff_max_ms = config.sync.backoff_max_ms;
  return o;
}

namespace {

FathomClientOptions normalized(FathomClientOptions o) {
  while (!o.api_base.empty() && o.api_base.back() == '/') o.api_base.pop_back();
  if (o.max_attempts < 1) o.max_attempts = 1;
  return o;
}

}  // namespace

FathomClient::FathomClient(HttpTransport& transport, CredentialSource& credentials, RateLimiterRegistry& limiters,
                           Clock& clock, FathomClientOptions options, Random& random)
    : transport_(transport),
      credentials_(credentials),
      limiters_(limiters),
      clock_(clock),
      options_(normalized(std::move(options))),
      random_(random) {}

Status FathomClient::backoff(int attempt) {
  int64_t cap = options_.backoff_base_ms;
  for (int i = 1; i < attempt && cap < options_.backoff_max_ms; ++i) cap *= 2;
  cap = std::min<int64_t>(cap, options_.backoff_max_ms);
  // Full jitter: callers that failed together do not come back together.
  int64_t wait = static_cast<int64_t>(random_.next_unit() * static_cast<double>(cap));
  while (wait > 0) {
    if (CallScope::cancelled()) return Status::Cancelled("cancelled during retry backoff");
    int64_t slice = std::min<int64_t>(wait, 200);
    clock_.sleep_ms(slice);
    wait -= slice;
  }
  return Status::Ok();
}

Result<HttpResponse> FathomClient::call(int64_t integration_id, const std::string& method,
                                        const std::string& path_and_query, const std::string& json_body) {
  return call_with(integration_id, method, [&](const Credential&) { return path_and_query; }, json_body);
}

// The request path may depend on the credential's kind (OAuth callers may not ask /meetings for
// content), so it is built per attempt from the credential in use, which a 401 may replace.
FathomCallCounts FathomClient::call_counts() const {
  auto at = [this](size_t i) { return outcomes_[i].load(std::memory_order_relaxed); };
  return {at(0), at(1), at(2), at(3), at(4)};
}

void FathomClient::count_outcome(int http_status) {
  size_t i = http_status == 0     ? 4
             : http_status == 429 ? 2
             : http_status >= 500 ? 3
             : http_status >= 400 ? 1
                                  : 0;
  outcomes_[i].fetch_add(1, std::memory_order_relaxed);
}

Result<HttpResponse> FathomClient::call_with(int64_t integration_id, const std::string& method,
                                             const std::function<std::string(const Credential&)>& path_fn,
                                             const std::string& json_body) {
  FB_ASSIGN(Credential cred, credentials_.credential(integration_id));
  RateLimiter& limiter = limiters_.for_account(integration_id);
  int failures = 0;
  int rate_limited = 0;
  bool refreshed = false;
  for (;;) {
    if (CallScope::cancelled()) return Status::Cancelled("Fathom call cancelled");
    FB_TRY(limiter.acquire([] { return CallScope::cancelled(); }));
    std::string path = path_fn(cred);
    std::string what = "Fathom " + method + " " + path_only(path);
    HttpRequest req;
    req.method = method;
    req.url = options_.api_base + path;
    req.headers.emplace_back("Accept", "application/json");
    if (!options_.user_agent.empty()) req.headers.emplace_back("User-Agent", options_.user_agent);
    if (cred.kind == Credential::Kind::kBearer) {
      req.headers.emplace_back("Authorization", "Bearer " + cred.value.reveal());
    } else {
      req.headers.emplace_back("X-Api-Key", cred.value.reveal());
    }
    if (!json_body.empty()) {
      req.body = json_body;
      req.content_type = "application/json";
    }
    CallScope::count_call();
    ++total_calls_;
    auto res = transport_.send(req);
    count_outcome(res.ok() ? res->status : 0);
    if (!res.ok()) {
      limiter.on_no_response();
      Status s = res.status().with_context(what);
      if (++failures >= options_.max_attempts) return s;
      FB_LOG(kWarn, "fathom") << what << ": " << res.status().message() << "; retry " << failures;
      FB_TRY(backoff(failures));
      continue;
    }
    limiter.on_response(*res);
    const int st = res->status;
    if (st >= 200 && st < 300) return std::move(res).value();
    std::string detail = what + ": HTTP " + std::to_string(st) + ": " +
                         body_excerpt(res->body, cred, options_.error_body_max);
    if (st == 401) {
      if (refreshed) return Status::Unauthenticated(detail + " (after a token refresh)");
      refreshed = true;
      FB_LOG(kInfo, "fathom") << what << ": 401, refreshing the credential of integration " << integration_id;
      FB_ASSIGN(cred, credentials_.refresh_after_unauthorized(integration_id, cred));
      continue;
    }
    if (st == 429) {
      // The limiter now holds this account until the server's wait is over; the next acquire()
      // waits it out, so this loop never sends into the limit.
      if (++rate_limited > options_.max_rate_limited_retries) return Status::RateLimited(detail);
      continue;
    }
    if (st >= 500) {
      if (++failures >= options_.max_attempts) {
        return Status::Unavailable(detail + " (after " + std::to_string(failures) + " attempts)");
      }
      FB_LOG(kWarn, "fathom") << what << ": HTTP " << st << "; retry " << failures;
      FB_TRY(backoff(failures));
      continue;
    }
    return Status(code_for_status(st), detail);
  }
}

Result<Page<Meeting>> FathomClient::list_meetings(int64_t integration_id, const MeetingQuery& query,
                                                  const std::string& cursor) {
  auto res = call_with(integration_id, "GET", [&](const Credential& cred) {
    MeetingQuery q = query;
    if (cred.kind == Credential::Kind::kBearer && !options_.oauth_include_content_on_list) {
      q.include_transcript = false;  // fathom-api.md 1.5: not available to OAuth apps
      q.include_summary = false;
    }
    std::string qs = q.to_query_string();
    if (!cursor.empty()) add_param(&qs, "cursor", cursor);
    return "/meetings" + qs;
  });
  if (!res.ok()) return res.status();
  return parse_meeting_page(res->body);
}

Status FathomClient::for_each_meeting_page(int64_t integration_id, const MeetingQuery& query,
                                           const std::string& cursor,
                                           const std::function<Status(const Page<Meeting>&)>& on_page) {
  std::string next = cursor;
  for (;;) {
    FB_ASSIGN(Page<Meeting> page, list_meetings(integration_id, query, next));
    FB_TRY(on_page(page));
    if (page.last()) return Status::Ok();
    if (page.next_cursor == next) {
      return Status::Malformed("Fathom GET /meetings returned the cursor it was given; stopping to avoid a loop");
    }
    next = page.next_cursor;
  }
}

Result<std::vector<TranscriptItem>> FathomClient::get_transcript(int64_t integration_id, int64_t recording_id,
                                                                 std::string* raw_json) {
  FB_ASSIGN(HttpResponse res,
            call(integration_id, "GET", "/recordings/" + std::to_string(recording_id) + "/transcript"));
  return parse_transcript_response(res.body, raw_json);
}

Result<Summary> FathomClient::get_summary(int64_t integration_id, int64_t recording_id, std::string* raw_json) {
  FB_ASSIGN(HttpResponse res, call(integration_id, "GET", "/recordings/" + std::to_string(recording_id) + "/summary"));
  return parse_summary_response(res.body, raw_json);
}

Result<Page<Team>> FathomClient::list_teams(int64_t integration_id, const std::string& cursor) {
  std::string qs;
  if (!cursor.empty()) add_param(&qs, "cursor", cursor);
  FB_ASSIGN(HttpResponse res, call(integration_id, "GET", "/teams" + qs));
  return parse_team_page(res.body);
}

Result<Page<TeamMember>> FathomClient::list_team_members(int64_t integration_id, const std::string& team,
                                                         const std::string& cursor) {
  std::string qs;
  if (!team.empty()) add_param(&qs, "team", team);
  if (!cursor.empty()) add_param(&qs, "cursor", cursor);
  FB_ASSIGN(HttpResponse res, call(integration_id, "GET", "/team_members" + qs));
  return parse_team_member_page(res.body);
}

Result<Webhook> FathomClient::create_webhook(int64_t integration_id, const WebhookSpec& spec) {
  if (spec.destination_url.empty()) return Status::InvalidArgument("webhook destination_url is empty");
  if (spec.triggered_for.empty()) return Status::InvalidArgument("webhook triggered_for is empty");
  if (!spec.include_transcript && !spec.include_summary && !spec.include_action_items && !spec.include_crm_matches) {
    return Status::InvalidArgument("webhook needs at least one include_* flag (Fathom requires it)");
  }
  nlohmann::json body = {{"destination_url", spec.destination_url},
                         {"triggered_for", spec.triggered_for},
                         {"include_transcript", spec.include_transcript},
                         {"include_summary", spec.include_summary},
                         {"include_action_items", spec.include_action_items},
                         {"include_crm_matches", spec.include_crm_matches}};
  FB_ASSIGN(HttpResponse res, call(integration_id, "POST", "/webhooks", body.dump()));
  return parse_webhook(res.body);
}

Status FathomClient::delete_webhook(int64_t integration_id, const std::string& webhook_id) {
  if (webhook_id.empty()) return Status::InvalidArgument("webhook id is empty");
  return call(integration_id, "DELETE", "/webhooks/" + url_encode(webhook_id)).status();
}

}  // namespace fb::detail
