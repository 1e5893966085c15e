#include "webhooks/meeting_handler.h"

namespace fb::detail {

Status MeetingEventHandler::handle(const InboxEvent& e) {
  auto info = directory_.get(e.integration_id);
  if (!info.ok()) {
    if (info.code() == Code::kNotFound) {
      return Status::FailedPrecondition("integration " + std::to_string(e.integration_id) + " no longer exists");
    }
    return info.status();
  }
  if (!info->active) {
    return Status::FailedPrecondition("integration " + std::to_string(e.integration_id) + " is not active (" +
                                      info->status + ")");
  }
  auto up = store_.upsert(e.integration_id, e.body, "webhook");
  if (!up.ok()) return up.status().with_context("storing the meeting");

  auto d = dispatcher_.dispatch(*info, up->recording_id, pipeline_, "webhook");
  if (!d.ok()) return d.status().with_context("dispatching the meeting");
  if (d->outcome == DispatchOutcome::kFailed) return d->error.with_context("mapping pipeline");

  MeetingEvent ev;
  ev.integration_id = e.integration_id;
  ev.tenant_id = info->tenant_id;
  ev.user_id = info->user_id;
  ev.recording_id = up->recording_id;
  ev.content_version = up->content_version;
  ev.raw_json = e.body;
  ev.source = "webhook";
  Status r = pipeline_.on_webhook(ev);
  if (!r.ok()) return r.with_context("webhook reaction");
  return Status::Ok();
}

}  // namespace fb::detail
