// meeting_handler.h: what a webhook worker does with a verified delivery in production.
//
//   1. upsert the Meeting JSON into the meetings repository (MeetingStore), which also fills the
//      content cache with the transcript / summary / action items / CRM matches the payload
//      carries, so no API call is needed for them;
//   2. dispatch the meeting to the mapping pipeline (MeetingDispatcher: exactly once per content
//      version, shared with the sync engine; a version already mapped is not mapped again);
//   3. run the webhook reaction (MeetingPipeline::on_webhook) with the raw payload.
// Any failure is returned (the worker retries with backoff, then dead-letters); a retry skips what
// already succeeded in step 2, since the dispatcher remembers the mapped version. An event of an
// unknown or inactive integration fails with kFailedPrecondition (replayable after a reconnect).
//
// Thread-safe. All references must outlive the handler.
#pragma once

#include "core/integration_directory.h"
#include "core/pipeline.h"
#include "sync/meeting_dispatcher.h"
#include "sync/meeting_store.h"
#include "webhooks/worker.h"

namespace fb::detail {

class MeetingEventHandler final : public InboxEventHandler {
 public:
  MeetingEventHandler(MeetingStore& store, MeetingDispatcher& dispatcher, IntegrationDirectory& directory,
                      MeetingPipeline& pipeline)
      : store_(store), dispatcher_(dispatcher), directory_(directory), pipeline_(pipeline) {}

  Status handle(const InboxEvent& event) override;

 private:
  MeetingStore& store_;
  MeetingDispatcher& dispatcher_;
  IntegrationDirectory& directory_;
  MeetingPipeline& pipeline_;
};

}  // namespace fb::detail
