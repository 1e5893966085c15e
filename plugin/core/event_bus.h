// event_bus.h: fan-out of host events (events.h) to the host's sink and to internal listeners
// (the scripting layer's on_token_failure, for example). Thread-safe.
#pragma once

#include <functional>
#include <mutex>
#include <vector>

#include "fathom_bridge/events.h"
#include "fathom_bridge/status.h"

namespace fb::detail {

class EventBus {
 public:
  // Hands an event, with its stored id, to the listeners.
  using Deliver = std::function<void(const Event&)>;
  // Stores an emitted event before any listener sees it (the durable feed): it calls deliver once
  // the event is committed, and never when its transaction rolls back (issue 13).
  using Recorder = std::function<Status(const Event&, Deliver deliver)>;

  // Adds a listener; listeners are called in the order added, on the emitting thread.
  void subscribe(EventSink sink);
  // Stores the event through the recorder (inside the caller's open transaction, if any, so it
  // commits with its cause) and delivers it to the listeners after that commit; without a recorder,
  // at once. A cause that emits inside its transaction returns the error to roll back with it.
  Status emit(const Event& event) const;
  // One recorder; a later call replaces it.
  void set_recorder(Recorder recorder);

 private:
  mutable std::mutex mu_;
  std::vector<EventSink> sinks_;  // guarded by mu_
  Recorder recorder_;             // guarded by mu_
};

}  // namespace fb::detail
