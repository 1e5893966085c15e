// sim_sender.h: fathom-sim's outbound deliveries (webhooks and destination_url callbacks).
//
// A small scheduler: submit() queues attempt 1 now; a worker pool performs attempts, so a slow or
// silent receiver never blocks the admin API or other deliveries. A webhook message that fails
// (no 2xx within webhook_timeout_s) is retried with the same webhook-id on the Svix schedule
// (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h) multiplied by webhook_retry_scale.
// Every attempt is reported to the record callback; destinations that are not loopback are
// refused (reported, never contacted).
//
// Thread safety: all public methods are thread-safe. The callbacks are called from worker threads
// without any sender lock held.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/sim_knobs.h"

namespace fb::sim {

struct Delivery {
  std::string kind = "webhook";  // "webhook" | "transcript_callback" | "summary_callback"
  std::string message_id;        // webhook-id, stable across attempts
  std::string webhook_id;
  std::string url;
  std::string secret;            // whsec_...; empty for unsigned callbacks
  std::string body;              // exact bytes that are signed
  int64_t recording_id = 0;
  int attempt = 1;               // 1-based
  bool duplicate = false;        // a redelivery of a message that already succeeded
};

// The Svix schedule: seconds to wait before attempt n (index n-1), unscaled.
const std::vector<double>& retry_schedule_s();

// True when the URL's host is a loopback literal or "localhost" (no DNS lookup is made).
bool is_loopback_url(const std::string& url);

class Sender {
 public:
  using KnobsFn = std::function<Knobs()>;
  using RecordFn = std::function<void(const nlohmann::json& attempt)>;

  Sender(size_t threads, KnobsFn knobs, RecordFn record);
  ~Sender();
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;

  void submit(Delivery d);
  // Drops pending work and joins the workers. Idempotent.
  void stop();
  // Deliveries queued or in flight.
  size_t pending() const;

 private:
  using TimePoint = std::chrono::steady_clock::time_point;
  void worker();
  void attempt(Delivery d);
  void schedule(Delivery d, TimePoint due);

  KnobsFn knobs_;
  RecordFn record_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<TimePoint, Delivery> queue_;
  size_t in_flight_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace fb::sim
