// receiver.h: the host-agnostic entry point for webhook deliveries.
//
// handle(path, headers, raw_body) decides what to answer. The C ABI (fb_webhook_receive), the
// built-in HTTP server and any host's own server all call it with the bytes exactly as received.
//
//   unknown path                                   404 "unknown endpoint"
//   body over webhooks.max_body_bytes              413 "payload too large"
//   a webhook-id/-timestamp/-signature missing     400 "missing header webhook-id" (...)
//   webhook-id over 1024 bytes or not visible      400 "malformed header webhook-id" (the inbox
//   ASCII (kMaxWebhookIdBytes)                         keys on it; PostgreSQL cannot index it)
//   timestamp not decimal seconds                  400 "malformed timestamp"
//   timestamp too old / too new (tolerance_s)      401 "stale timestamp" / "future timestamp"
//   no v1 signature matches a current key          401 "bad signature"
//   the inbox could not commit within              503 "storage unavailable" (the sender retries)
//   webhooks.commit_timeout_ms, or the endpoint
//   could not be read (database, sealing key)
//   committed (or already there)                   200 "accepted" / "duplicate"
//   committed, but not a Meeting (see below)       200 "accepted as unprocessable"
//
// A rejection stores nothing, is counted per reason and logged (throttled to one line per reason
// per second) with the reason, the integration when known and the body size: never a secret, a
// signature, a path token or a body. A 2xx is returned only after the delivery is durable.
//
// A verified delivery is never refused for its content: refusing it would only make the sender
// retry the same bytes and then drop them. One that is not a Meeting (not JSON, not an object, no
// integer recording_id) is stored as a dead letter whose last_error says why ("malformed JSON"
// only when it is not JSON; "not a Meeting: recording_id is missing", ...), listed with the
// other dead letters and replayable once the handler can take it. A UTF-8 byte order mark before
// the JSON (RFC 8259 section 8.1 lets a parser ignore one) is covered by the signature and then
// dropped: the stored body is the JSON text.
//
// Threading: thread-safe; every method may be called from many threads at once.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/log.h"
#include "fathom_bridge/config.h"
#include "fathom_bridge/status.h"
#include "webhooks/inbox.h"
#include "webhooks/registry.h"
#include "webhooks/verifier.h"

namespace fb::detail {

enum class Rejection : int {
  kNone = 0,
  kUnknownEndpoint,
  kTooLarge,
  kMissingHeader,
  kMalformedTimestamp,
  kStaleTimestamp,
  kFutureTimestamp,
  kBadSignature,
  kMalformedJson,  // no longer answered (a verified body is kept, see above); its counter stays
  kStorage,
  kMalformedId,  // webhook-id too long or not visible ASCII
  kCount,
};

// "unknown_endpoint", "too_large", ... (stable names for counters and JSON).
const char* rejection_name(Rejection r);

struct ReceiveResult {
  int http_status = 500;
  std::string_view reason;  // static text, safe to send and to log
  Rejection rejection = Rejection::kNone;
  int64_t event_id = 0;     // the inbox event (also for a duplicate)
  bool duplicate = false;
  int64_t integration_id = 0;  // 0 when the path was unknown
  std::string_view unprocessable;  // accepted, but stored as a dead letter for this (static) reason
  bool accepted() const { return rejection == Rejection::kNone; }
  // kOk, kNotFound, kTooLarge, kRejected (headers, timestamp, signature), kMalformed, kUnavailable.
  Code code() const;
};

struct ReceiverStats {
  int64_t accepted = 0;    // new events committed
  int64_t duplicates = 0;  // acknowledged repeats
  int64_t unprocessable = 0;  // new events that were stored as dead letters (not a Meeting)
  std::array<int64_t, static_cast<size_t>(Rejection::kCount)> rejected{};  // by Rejection
  int64_t rejected_total() const;
  std::string to_json() const;
};

class Receiver {
 public:
  // Registry and Inbox must outlive the Receiver.
  Receiver(Registry& registry, Inbox& inbox, Clock& clock, const WebhookConfig& config);

  // path: the request path ("{path_prefix}/{token}"; a query string is ignored).
  ReceiveResult handle(std::string_view path, const DeliveryHeaders& headers, std::string_view raw_body);
  ReceiveResult handle(std::string_view path, const std::vector<std::pair<std::string, std::string>>& headers,
                       std::string_view raw_body);
  // The same for an event-loop server: the answer goes to done, exactly once: on this thread for a
  // rejection, on the inbox's writer thread once the delivery is committed. headers and raw_body
  // must stay valid until then; done must be quick (it runs before the inbox's next batch).
  using ReceiveCallback = std::function<void(const ReceiveResult&)>;
  void handle_async(std::string_view path, const DeliveryHeaders& headers, std::string_view raw_body,
                    ReceiveCallback done);
  // For a server that refuses an oversized body before reading it: counts and logs the rejection
  // and returns the 413 answer.
  ReceiveResult reject_too_large(int64_t content_length);

  int64_t max_body_bytes() const { return max_body_bytes_; }
  const std::string& path_prefix() const { return prefix_; }
  ReceiverStats stats() const;

 private:
  // Everything before the inbox: a rejection, or accepted() with *d filled.
  ReceiveResult check(std::string_view path, const DeliveryHeaders& headers, std::string_view raw_body, Delivery* d);
  ReceiveResult committed(const Delivery& d, const Result<Appended>& appended);
  ReceiveResult reject(Rejection r, std::string_view reason, int64_t integration_id, size_t body_bytes);

  Registry& registry_;
  Inbox& inbox_;
  Clock& clock_;
  std::string prefix_;  // path_prefix + "/"
  int64_t tolerance_s_;
  int64_t max_body_bytes_;

  std::atomic<int64_t> accepted_{0};
  std::atomic<int64_t> duplicates_{0};
  std::atomic<int64_t> unprocessable_{0};
  std::array<std::atomic<int64_t>, static_cast<size_t>(Rejection::kCount)> rejected_{};
  std::array<LogThrottle, static_cast<size_t>(Rejection::kCount)> log_throttles_;  // 1 s each
};

// What a delivery body is: a JSON object with an integer recording_id (simdjson, full
// validation), after a UTF-8 byte order mark if there is one.
struct MeetingCheck {
  int64_t recording_id = 0;
  std::string_view problem;  // "" for a Meeting; else a short static reason that never quotes the body
  std::string_view json;     // the body without its byte order mark
};
MeetingCheck check_meeting_json(std::string_view body);

}  // namespace fb::detail
