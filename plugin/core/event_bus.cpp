#include "core/event_bus.h"

#include "core/log.h"

namespace fb::detail {

void EventBus::subscribe(EventSink sink) {
  std::lock_guard lock(mu_);
  sinks_.push_back(std::move(sink));
}

void EventBus::set_recorder(std::function<void(Event&)> recorder) {
  std::lock_guard lock(mu_);
  recorder_ = std::move(recorder);
}

void EventBus::emit(const Event& emitted) const {
  std::vector<EventSink> sinks;
  std::function<void(Event&)> recorder;
  {
    std::lock_guard lock(mu_);
    sinks = sinks_;
    recorder = recorder_;
  }
  Event event = emitted;
  if (recorder) {
    try {
      recorder(event);
    } catch (const std::exception& e) {
      FB_LOG(kError, "events") << "event recorder threw: " << e.what();
    }
  }
  FB_LOG(kInfo, "events") << event.type << " integration=" << event.integration_id << " " << event.detail;
  for (const auto& s : sinks) {
    try {
      s(event);
    } catch (const std::exception& e) {
      FB_LOG(kError, "events") << "event listener threw: " << e.what();
    }
  }
}

}  // namespace fb::detail
