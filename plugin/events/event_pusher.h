// event_pusher.h: pushes the durable event feed to the CRM (events.push_url), signed with
// Standard Webhooks, retried with backoff, every attempt visible in the delivery log.
//
// Each event after the moment push was first configured gets a row in event_deliveries, in the
// same database; a thread posts due rows oldest first:
//   POST push_url  {"id", "type", ..., "created_at"}  (the event's JSON, as the feed has it)
//   webhook-id: evt_<id>  webhook-timestamp: <unix s>  webhook-signature: v1,<base64 HMAC-SHA256>
// A 2xx marks the row delivered; anything else (or no answer) retries after push_backoff_ms,
// doubling up to push_backoff_max_ms, until push_max_attempts, then the row is failed. The
// webhook-id stays the same on every retry so the receiver can drop repeats.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/clock.h"
#include "events/event_store.h"
#include "fathom_bridge/config.h"
#include "http/http_client.h"
#include "store/db.h"

namespace fb::detail {

// The Standard Webhooks headers for one message: webhook-id, webhook-timestamp and
// webhook-signature ("v1," + base64 of HMAC-SHA256(key, id + "." + timestamp + "." + body)).
Headers standard_webhook_headers(std::string_view key, const std::string& id, int64_t timestamp_s, std::string_view body);
// The signing key of a "whsec_<base64>" secret; kConfig naming `setting` when it is not one.
Result<std::string> parse_whsec(const std::string& secret, const char* setting);

class EventPusher {
 public:
  static Result<std::unique_ptr<EventPusher>> open(Db& db, EventStore& store, HttpTransport& http, Clock& clock,
                                                   const EventsConfig& config);
  ~EventPusher();  // stop()
  // Starts the delivery thread (woken by every append, and when a retry is due).
  void start();
  void stop();
  // Queues the events not queued yet and attempts the due deliveries; returns how many were attempted.
  Result<int> run_once();
  // The delivery log, newest first: [{"event_id", "status", "attempts", "last_status",
  // "last_error", "next_attempt_at", "updated_at"}].
  Result<std::string> deliveries_json(int limit);

 private:
  EventPusher(Db& db, EventStore& store, HttpTransport& http, Clock& clock, EventsConfig config, std::string key)
      : db_(db), store_(store), http_(http), clock_(clock), config_(std::move(config)), key_(std::move(key)) {}
  Status enqueue_new();
  int64_t next_due_ms();
  Db& db_;
  EventStore& store_;
  HttpTransport& http_;
  Clock& clock_;
  const EventsConfig config_;
  const std::string key_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool wake_ = false;     // guarded by mu_
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace fb::detail
