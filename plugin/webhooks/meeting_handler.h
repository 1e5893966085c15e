// meeting_handler.h: what a webhook worker does with a batch of verified deliveries in production.
//
//   1. parse each body once (a ParsedJson that the meeting parser and both Lua hooks read; nothing
//      of the body is copied) and look up its integration (unknown or inactive:
//      kFailedPrecondition, replayable after a reconnect; a body that does not parse: kMalformed,
//      dead-lettered);
//   2. map the batch (MeetingDispatcher::map_batch): each meeting's content version is worked out
//      from what is stored, the pipeline's on_meeting runs for each version not mapped yet (exactly
//      once per content version, shared with the sync engine) and on_webhook (the reaction) with
//      the raw payload, all between the pipeline's begin_batch/end_batch;
//   3. return what to record in the worker's one transaction: the meetings (their content by
//      pointer to the delivery's body in the body log, never copied) and the mapped versions.
// A failure of one event is that event's (the worker retries with backoff, then dead-letters); a
// retry skips the mapping when the version was recorded mapped.
//
// REQUIRES: store is opened on the inbox's Db (the worker's transaction is on that connection).
// Thread-safe. All references must outlive the handler.
#pragma once

#include "core/integration_directory.h"
#include "core/pipeline.h"
#include "sync/meeting_dispatcher.h"
#include "sync/meeting_store.h"
#include "webhooks/inbox.h"
#include "webhooks/worker.h"

namespace fb::detail {

// Reads meetings stored by pointer (MeetingStore, MeetingDispatcher) from the inbox's body log.
// The inbox must outlive the loader.
ContentLoader inbox_content_loader(Inbox& inbox);

class MeetingEventHandler final : public InboxEventHandler {
 public:
  MeetingEventHandler(MeetingStore& store, MeetingDispatcher& dispatcher, IntegrationDirectory& directory,
                      MeetingPipeline& pipeline)
      : store_(store), dispatcher_(dispatcher), directory_(directory), pipeline_(pipeline) {}

  // One event as a batch of one, recorded in its own transaction.
  Status handle(const InboxEvent& event) override;
  std::unique_ptr<InboxBatchWork> handle_batch(const std::vector<const InboxEvent*>& events,
                                               std::vector<Status>* results) override;
  // The worker's path: each meeting is taken from the claim right before its CRM calls; a meeting
  // given up meanwhile is skipped, and its recording's lock let go of at once.
  std::unique_ptr<InboxBatchWork> handle_claimed(const std::vector<const InboxEvent*>& events,
                                                 std::vector<Status>* results, BatchClaim& claim) override;

 private:
  MeetingStore& store_;
  MeetingDispatcher& dispatcher_;
  IntegrationDirectory& directory_;
  MeetingPipeline& pipeline_;
};

}  // namespace fb::detail
