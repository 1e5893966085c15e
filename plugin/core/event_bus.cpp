#include "core/event_bus.h"

#include "core/log.h"

namespace fb::detail {

void EventBus::subscribe(EventSink sink) {
  std::lock_guard lock(mu_);
  sinks_.push_back(std::move(sink));
}

void EventBus::set_recorder(Recorder recorder) {
  std::lock_guard lock(mu_);
  recorder_ = std::move(recorder);
}

Status EventBus::emit(const Event& event) const {
  std::vector<EventSink> sinks;
  Recorder recorder;
  {
    std::lock_guard lock(mu_);
    sinks = sinks_;
    recorder = recorder_;
  }
  Deliver deliver = [sinks = std::move(sinks)](const Event& e) {
    FB_LOG(kInfo, "events") << e.type << " integration=" << e.integration_id << " " << e.detail;
    for (const auto& s : sinks) {
      try {
        s(e);
      } catch (const std::exception& ex) {
        FB_LOG(kError, "events") << "event listener threw: " << ex.what();
      }
    }
  };
  if (!recorder) {
    deliver(event);
    return Status::Ok();
  }
  try {
    return recorder(event, std::move(deliver));
  } catch (const std::exception& e) {
    return Status::Internal(std::string("event recorder threw: ") + e.what());
  }
}

}  // namespace fb::detail
