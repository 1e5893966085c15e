#include "webhooks/meeting_handler.h"

#include <map>

namespace fb::detail {

namespace {

class RecordMeetings final : public InboxBatchWork {
 public:
  RecordMeetings(MeetingDispatcher& dispatcher, MeetingStore& store, std::vector<BatchItem> items, BatchLease lease)
      : dispatcher_(dispatcher), store_(store), items_(std::move(items)), lease_(std::move(lease)) {}
  Status record() override { return dispatcher_.record_batch(items_, store_); }

 private:
  MeetingDispatcher& dispatcher_;
  MeetingStore& store_;
  std::vector<BatchItem> items_;
  BatchLease lease_;  // released when the worker is done with the batch
};

}  // namespace

ContentLoader inbox_content_loader(Inbox& inbox) {
  return [&inbox](int64_t event_id) -> Result<std::string> {
    FB_ASSIGN(InboxEvent e, inbox.get(event_id, true));
    return std::move(e.body);
  };
}

Status MeetingEventHandler::handle(const InboxEvent& e) {
  std::vector<Status> results(1);
  auto work = handle_batch({&e}, &results);
  if (work) FB_TRY(store_.db().transaction([&] { return work->record(); }).with_context("storing the meeting"));
  return results[0];
}

std::unique_ptr<InboxBatchWork> MeetingEventHandler::handle_batch(const std::vector<const InboxEvent*>& events,
                                                                  std::vector<Status>* results) {
  std::vector<BatchItem> items;
  std::vector<size_t> where;
  std::map<int64_t, Result<IntegrationInfo>> integrations;  // looked up once per batch
  for (size_t i = 0; i < events.size(); ++i) {
    const InboxEvent& e = *events[i];
    auto it = integrations.find(e.integration_id);
    if (it == integrations.end()) it = integrations.emplace(e.integration_id, directory_.get(e.integration_id)).first;
    const Result<IntegrationInfo>& info = it->second;
    if (!info.ok()) {
      (*results)[i] = info.code() == Code::kNotFound
                          ? Status::FailedPrecondition("integration " + std::to_string(e.integration_id) +
                                                       " no longer exists")
                          : info.status();
      continue;
    }
    if (!info->active) {
      (*results)[i] = Status::FailedPrecondition("integration " + std::to_string(e.integration_id) +
                                                 " is not active (" + info->status + ")");
      continue;
    }
    auto meeting = parse_meeting(e.body);  // the one parse of this body on our side
    if (!meeting.ok()) {
      (*results)[i] = meeting.status().with_context("storing the meeting");
      continue;
    }
    BatchItem item;
    item.integration = *info;
    item.meeting = std::move(*meeting);
    item.content_event_id = e.id;
    item.source = "webhook";
    item.react = true;
    items.push_back(std::move(item));
    where.push_back(i);
  }
  if (items.empty()) return nullptr;
  auto lease = dispatcher_.map_batch(items, store_, pipeline_);
  if (!lease.ok()) {
    for (size_t i : where) (*results)[i] = lease.status().with_context("dispatching the meeting");
    return nullptr;
  }
  for (size_t k = 0; k < items.size(); ++k) (*results)[where[k]] = items[k].status;
  return std::make_unique<RecordMeetings>(dispatcher_, store_, std::move(items), std::move(*lease));
}

}  // namespace fb::detail
