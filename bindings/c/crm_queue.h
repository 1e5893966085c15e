// crm_queue.h: queued CRM operations for the C ABI (fb_register_crm_operation_queued,
// fb_crm_next, fb_crm_complete).
//
// A host whose code runs on one event loop (Node, Python's asyncio) cannot answer a CRM call on
// the library thread that makes it. Instead, the library thread puts the call in this queue and
// waits; the host takes calls with fb_crm_next (blocking, so it runs that on a worker thread of
// its own) and answers each with fb_crm_complete whenever its asynchronous work is done.
// Closing the handle cancels: waiting calls fail with kCancelled and fb_crm_next returns
// FB_CANCELLED, and close waits until no fb_crm_next is inside the queue any more.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "fathom_bridge/crm.h"
#include "fathom_bridge/status.h"

namespace fb::detail {

class CrmQueue {
 public:
  // How long a library thread waits for the host's answer to one call.
  explicit CrmQueue(int64_t answer_timeout_ms = 120'000) : answer_timeout_ms_(answer_timeout_ms) {}

  // On a library thread: queues the call (call_json gains "call_id") and waits for its answer.
  Result<std::string> call(const CrmCall& call, const std::string& call_json_without_id) {
    std::unique_lock lock(mu_);
    if (cancelled_) return Status::Cancelled("the bridge is closing; CRM operation '" + call.operation + "' was not run");
    const int64_t id = ++next_id_;
    std::string json = call_json_without_id;
    // call_json_without_id is an object: insert the id as its first member.
    json.insert(1, "\"call_id\":" + std::to_string(id) + (json.size() > 2 ? "," : ""));
    auto slot = std::make_shared<Slot>();
    slots_[id] = slot;
    pending_.push_back(std::move(json));
    takers_cv_.notify_one();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(answer_timeout_ms_);
    answered_cv_.wait_until(lock, deadline, [&] { return slot->done || cancelled_; });
    slots_.erase(id);
    if (slot->done) return std::move(slot->result);
    if (cancelled_) return Status::Cancelled("the bridge is closing; CRM operation '" + call.operation + "' was not answered");
    return Status::Timeout("the host did not answer CRM operation '" + call.operation + "' (call " + std::to_string(id) +
                           ") within " + std::to_string(answer_timeout_ms_ / 1000) + " s");
  }

  // On a host thread: the next queued call's JSON, waiting up to timeout_ms.
  Result<std::string> next(int64_t timeout_ms) {
    std::unique_lock lock(mu_);
    ++takers_;
    takers_cv_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(0, timeout_ms)),
                        [&] { return cancelled_ || !pending_.empty(); });
    Result<std::string> out = Status::Timeout("no CRM call within " + std::to_string(timeout_ms) + " ms");
    if (cancelled_) {
      out = Status::Cancelled("the bridge is closing");
    } else if (!pending_.empty()) {
      out = std::move(pending_.front());
      pending_.pop_front();
    }
    if (--takers_ == 0) idle_cv_.notify_all();
    return out;
  }

  // On a host thread: the answer to call id. kNotFound when no library thread waits for it (it
  // timed out, was answered already, or never existed).
  Status complete(int64_t id, Result<std::string> result) {
    std::lock_guard lock(mu_);
    auto it = slots_.find(id);
    if (it == slots_.end() || it->second->done) {
      return Status::NotFound("no CRM call " + std::to_string(id) + " is waiting for an answer");
    }
    it->second->result = std::move(result);
    it->second->done = true;
    answered_cv_.notify_all();
    return Status::Ok();
  }

  // Fails every waiting call and wakes every fb_crm_next; returns once none is inside next().
  void cancel() {
    std::unique_lock lock(mu_);
    cancelled_ = true;
    pending_.clear();
    answered_cv_.notify_all();
    takers_cv_.notify_all();
    idle_cv_.wait(lock, [&] { return takers_ == 0; });
  }

 private:
  struct Slot {
    bool done = false;
    Result<std::string> result = Status::Internal("unanswered");
  };
  const int64_t answer_timeout_ms_;
  std::mutex mu_;
  std::condition_variable answered_cv_, takers_cv_, idle_cv_;
  std::deque<std::string> pending_;                   // guarded by mu_: calls not taken yet
  std::map<int64_t, std::shared_ptr<Slot>> slots_;    // guarded by mu_: calls waiting for an answer
  int64_t next_id_ = 0;                               // guarded by mu_
  int takers_ = 0;                                    // guarded by mu_
  bool cancelled_ = false;                            // guarded by mu_
};

}  // namespace fb::detail
