#include "webhooks/receiver.h"

#include <simdjson.h>

#include <nlohmann/json.hpp>

#include "core/log.h"

namespace fb::detail {

namespace {

constexpr size_t kIndex(Rejection r) { return static_cast<size_t>(r); }

// Parsers keep their buffers between documents, so each request thread reuses one; bodies larger
// than this get a parser of their own so that a few huge transcripts do not pin memory per thread.
constexpr size_t kReusableParserBytes = 1 << 20;

}  // namespace

const char* rejection_name(Rejection r) {
  switch (r) {
    case Rejection::kNone: return "none";
    case Rejection::kUnknownEndpoint: return "unknown_endpoint";
    case Rejection::kTooLarge: return "too_large";
    case Rejection::kMissingHeader: return "missing_header";
    case Rejection::kMalformedTimestamp: return "malformed_timestamp";
    case Rejection::kStaleTimestamp: return "stale_timestamp";
    case Rejection::kFutureTimestamp: return "future_timestamp";
    case Rejection::kBadSignature: return "bad_signature";
    case Rejection::kMalformedJson: return "malformed_json";
    case Rejection::kStorage: return "storage";
    case Rejection::kMalformedId: return "malformed_id";
    case Rejection::kCount: break;
  }
  return "unknown";
}

Code ReceiveResult::code() const {
  switch (rejection) {
    case Rejection::kNone: return Code::kOk;
    case Rejection::kUnknownEndpoint: return Code::kNotFound;
    case Rejection::kTooLarge: return Code::kTooLarge;
    case Rejection::kMalformedJson: return Code::kMalformed;
    case Rejection::kStorage: return Code::kUnavailable;
    default: return Code::kRejected;
  }
}

int64_t ReceiverStats::rejected_total() const {
  int64_t n = 0;
  for (int64_t v : rejected) n += v;
  return n;
}

std::string ReceiverStats::to_json() const {
  nlohmann::json r = nlohmann::json::object();
  for (size_t i = 1; i < rejected.size(); ++i) r[rejection_name(static_cast<Rejection>(i))] = rejected[i];
  return nlohmann::json{{"accepted", accepted}, {"duplicates", duplicates}, {"unprocessable", unprocessable},
                        {"rejected", r}}
      .dump();
}

MeetingCheck check_meeting_json(std::string_view body) {
  MeetingCheck out;
  constexpr std::string_view kBom = "\xEF\xBB\xBF";
  out.json = body.substr(body.starts_with(kBom) ? kBom.size() : 0);
  thread_local simdjson::dom::parser reusable;
  std::unique_ptr<simdjson::dom::parser> own;
  simdjson::dom::parser* parser = &reusable;
  if (out.json.size() > kReusableParserBytes) {
    own = std::make_unique<simdjson::dom::parser>();
    parser = own.get();
  }
  simdjson::dom::element doc;
  if (auto err = parser->parse(out.json.data(), out.json.size(), true).get(doc); err != simdjson::SUCCESS) {
    out.problem = err == simdjson::UTF8_ERROR ? "malformed JSON: invalid UTF-8" : "malformed JSON";
    return out;
  }
  simdjson::dom::object obj;
  if (doc.get(obj) != simdjson::SUCCESS) {
    out.problem = "not a Meeting: the JSON is not an object";
    return out;
  }
  simdjson::dom::element id;
  if (obj["recording_id"].get(id) != simdjson::SUCCESS) {
    out.problem = "not a Meeting: recording_id is missing";
  } else if (id.get(out.recording_id) != simdjson::SUCCESS) {
    // The sync path's wording (fathom/models.cpp): an id past int64 is an integer, out of range.
    // (problem is a view: static text only.)
    using simdjson::dom::element_type;
    switch (id.type()) {
      case element_type::UINT64: out.problem = "not a Meeting: recording_id: integer out of range"; break;
      case element_type::DOUBLE: out.problem = "not a Meeting: recording_id: expected integer, got number"; break;
      case element_type::STRING: out.problem = "not a Meeting: recording_id: expected integer, got string"; break;
      case element_type::BOOL: out.problem = "not a Meeting: recording_id: expected integer, got boolean"; break;
      case element_type::NULL_VALUE: out.problem = "not a Meeting: recording_id: expected integer, got null"; break;
      case element_type::ARRAY: out.problem = "not a Meeting: recording_id: expected integer, got array"; break;
      case element_type::OBJECT: out.problem = "not a Meeting: recording_id: expected integer, got object"; break;
      case element_type::INT64: break;
    }
    if (out.problem.empty()) out.problem = "not a Meeting: recording_id: expected integer";
  }
  return out;
}

Receiver::Receiver(Registry& registry, Inbox& inbox, Clock& clock, const WebhookConfig& config)
    : registry_(registry),
      inbox_(inbox),
      clock_(clock),
      prefix_(registry.config().path_prefix + "/"),
      tolerance_s_(config.tolerance_s),
      max_body_bytes_(config.max_body_bytes) {}

ReceiveResult Receiver::reject(Rejection r, std::string_view reason, int64_t integration_id, size_t body_bytes) {
  size_t i = kIndex(r);
  rejected_[i].fetch_add(1, std::memory_order_relaxed);
  // One line per reason per second at most: a flood of forged deliveries must not flood the log.
  if (int64_t more = 0; log_throttles_[i].admit(clock_.mono_ms(), &more)) {
    FB_LOG(kWarn, "webhooks") << "rejected a webhook delivery: " << reason << " (integration "
                              << (integration_id ? std::to_string(integration_id) : std::string("unknown")) << ", "
                              << body_bytes << " bytes)"
                              << (more ? "; " + std::to_string(more) + " more like it since the last report" : "");
  }
  int status = 400;
  switch (r) {
    case Rejection::kUnknownEndpoint: status = 404; break;
    case Rejection::kTooLarge: status = 413; break;
    case Rejection::kStaleTimestamp:
    case Rejection::kFutureTimestamp:
    case Rejection::kBadSignature: status = 401; break;
    case Rejection::kStorage: status = 503; break;
    default: status = 400; break;
  }
  ReceiveResult out;
  out.http_status = status;
  out.reason = reason;
  out.rejection = r;
  out.integration_id = integration_id;
  return out;
}

ReceiveResult Receiver::reject_too_large(int64_t content_length) {
  return reject(Rejection::kTooLarge, "payload too large", 0, static_cast<size_t>(content_length));
}

ReceiveResult Receiver::handle(std::string_view path, const std::vector<std::pair<std::string, std::string>>& headers,
                               std::string_view raw_body) {
  return handle(path, find_delivery_headers(headers), raw_body);
}

ReceiveResult Receiver::handle(std::string_view path, const DeliveryHeaders& headers, std::string_view raw_body) {
  Delivery d;
  ReceiveResult r = check(path, headers, raw_body, &d);
  if (!r.accepted()) return r;
  return committed(d, inbox_.append(d));
}

void Receiver::handle_async(std::string_view path, const DeliveryHeaders& headers, std::string_view raw_body,
                            ReceiveCallback done) {
  Delivery d;
  ReceiveResult r = check(path, headers, raw_body, &d);
  if (!r.accepted()) {
    done(r);
    return;
  }
  inbox_.append_async(d, [this, d, done = std::move(done)](Result<Appended> appended) {
    done(committed(d, appended));
  });
}

ReceiveResult Receiver::check(std::string_view path, const DeliveryHeaders& headers, std::string_view raw_body,
                              Delivery* d) {
  if (size_t q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  std::shared_ptr<const Endpoint> ep;
  if (path.size() > prefix_.size() && path.compare(0, prefix_.size(), prefix_) == 0) {
    auto found = registry_.lookup(path.substr(prefix_.size()));
    if (!found.ok()) return reject(Rejection::kStorage, "storage unavailable", 0, raw_body.size());
    ep = std::move(*found);
  }
  if (!ep) return reject(Rejection::kUnknownEndpoint, "unknown endpoint", 0, raw_body.size());
  const int64_t integration = ep->integration_id;
  if (static_cast<int64_t>(raw_body.size()) > max_body_bytes_) {
    return reject(Rejection::kTooLarge, "payload too large", integration, raw_body.size());
  }

  int64_t now_s = clock_.now_s();
  const SigningKey* keys[2];
  size_t n_keys = ep->keys(now_s, keys);
  const char* missing = nullptr;
  VerifyResult v = verify_delivery(headers, raw_body, keys, n_keys, {now_s, tolerance_s_}, &missing);
  switch (v) {
    case VerifyResult::kOk: break;
    case VerifyResult::kMissingHeader: {
      std::string_view m = missing;
      std::string_view reason = m == "webhook-id"          ? "missing header webhook-id"
                                : m == "webhook-timestamp" ? "missing header webhook-timestamp"
                                                           : "missing header webhook-signature";
      return reject(Rejection::kMissingHeader, reason, integration, raw_body.size());
    }
    case VerifyResult::kMalformedId:
      return reject(Rejection::kMalformedId, "malformed header webhook-id", integration, raw_body.size());
    case VerifyResult::kMalformedTimestamp:
      return reject(Rejection::kMalformedTimestamp, "malformed timestamp", integration, raw_body.size());
    case VerifyResult::kStaleTimestamp:
      return reject(Rejection::kStaleTimestamp, "stale timestamp", integration, raw_body.size());
    case VerifyResult::kFutureTimestamp:
      return reject(Rejection::kFutureTimestamp, "future timestamp", integration, raw_body.size());
    case VerifyResult::kBadSignature:
      return reject(Rejection::kBadSignature, "bad signature", integration, raw_body.size());
  }

  // Verified: from here on the delivery is kept, whatever its content.
  MeetingCheck meeting = check_meeting_json(raw_body);
  d->integration_id = integration;
  d->registration_id = ep->registration_id;
  d->webhook_id = headers.id;
  d->recording_id = meeting.problem.empty() ? meeting.recording_id : 0;
  d->body = meeting.json;
  d->unprocessable = meeting.problem;
  ReceiveResult ok;
  ok.http_status = 200;
  ok.integration_id = integration;
  return ok;
}

ReceiveResult Receiver::committed(const Delivery& d, const Result<Appended>& appended) {
  if (!appended.ok()) return reject(Rejection::kStorage, "storage unavailable", d.integration_id, d.body.size());
  ReceiveResult out;
  out.http_status = 200;
  out.integration_id = d.integration_id;
  out.event_id = appended->event_id;
  out.duplicate = appended->duplicate;
  out.unprocessable = d.unprocessable;
  out.reason = out.duplicate ? "duplicate" : d.unprocessable.empty() ? "accepted" : "accepted as unprocessable";
  (out.duplicate ? duplicates_ : accepted_).fetch_add(1, std::memory_order_relaxed);
  if (!out.duplicate && !d.unprocessable.empty()) {
    unprocessable_.fetch_add(1, std::memory_order_relaxed);
    FB_LOG(kWarn, "webhooks") << "stored webhook event " << out.event_id << " as a dead letter: " << d.unprocessable
                              << " (integration " << d.integration_id << ", " << d.body.size() << " bytes)";
  }
  return out;
}

ReceiverStats Receiver::stats() const {
  ReceiverStats s;
  s.accepted = accepted_.load();
  s.duplicates = duplicates_.load();
  s.unprocessable = unprocessable_.load();
  for (size_t i = 0; i < s.rejected.size(); ++i) s.rejected[i] = rejected_[i].load();
  return s;
}

}  // namespace fb::detail
