// event_bus.h: fan-out of host events (events.h) to the host's sink and to internal listeners
// (the scripting layer's on_token_failure, for example). Thread-safe.
#pragma once

#include <mutex>
#include <vector>

#include "fathom_bridge/events.h"

namespace fb::detail {

class EventBus {
 public:
  // Adds a listener; listeners are called in the order added, on the emitting thread.
  void subscribe(EventSink sink);
  void emit(const Event& event) const;
  // Runs before the listeners on each emitted event (the durable feed: it stores the event and
  // sets its id, so every listener sees the stored id). One recorder; a later call replaces it.
  void set_recorder(std::function<void(Event&)> recorder);

 private:
  mutable std::mutex mu_;
  std::vector<EventSink> sinks_;  // guarded by mu_
  std::function<void(Event&)> recorder_;  // guarded by mu_
};

}  // namespace fb::detail
