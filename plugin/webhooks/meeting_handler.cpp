#include "webhooks/meeting_handler.h"

#include <map>

#include "core/parsed_json.h"

namespace fb::detail {

namespace {

// The parsed bodies of the batch a thread is handling: each body is parsed once, and the meeting
// parser and both Lua hooks read that one parse (issue 11). The documents go back to a per-thread
// pool afterwards, so their buffers are reused batch after batch instead of allocated per body.
class ParsedBodies {
 public:
  explicit ParsedBodies(size_t n) {
    auto& pool = this_thread_pool();
    while (docs_.size() < n && !pool.empty()) {
      docs_.push_back(std::move(pool.back()));
      pool.pop_back();
    }
    while (docs_.size() < n) docs_.push_back(std::make_unique<ParsedJson>());
  }
  ~ParsedBodies() {
    auto& pool = this_thread_pool();
    for (auto& d : docs_) {
      // A document sized for a very large body is let go rather than kept per thread.
      if (pool.size() < kMaxPooled && d->text().size() <= kMaxPooledBytes) pool.push_back(std::move(d));
    }
  }
  ParsedBodies(const ParsedBodies&) = delete;
  ParsedBodies& operator=(const ParsedBodies&) = delete;
  ParsedJson& operator[](size_t i) { return *docs_[i]; }

 private:
  static constexpr size_t kMaxPooled = 64;
  static constexpr size_t kMaxPooledBytes = 256 << 10;
  static std::vector<std::unique_ptr<ParsedJson>>& this_thread_pool() {
    thread_local std::vector<std::unique_ptr<ParsedJson>> pool;
    return pool;
  }
  std::vector<std::unique_ptr<ParsedJson>> docs_;
};

class RecordMeetings final : public InboxBatchWork {
 public:
  RecordMeetings(MeetingDispatcher& dispatcher, MeetingStore& store, std::vector<BatchItem> items, BatchLease lease)
      : dispatcher_(dispatcher), store_(store), items_(std::move(items)), lease_(std::move(lease)) {}
  Status record() override { return dispatcher_.record_batch(items_, store_, &lease_); }
  // Which script versions made each event's CRM operations (issue 15), for its inbox row: the
  // worker's marks write them, in the batch's transaction (the store is on the inbox's Db), before
  // the batch's meetings and script store writes (on PostgreSQL a store key every batch sets then
  // stays locked only until the commit: issue 12), with no statement of their own.
  void annotate(std::vector<EventOutcome>& outcomes) const override {
    std::map<int64_t, std::string> by_event;  // the last item of an event counts, as set_script_versions
    for (const BatchItem& it : items_) {
      if (it.given_up || it.script_versions.empty()) continue;
      by_event[it.content_event_id] = *CrmAttribution::to_json(it.script_versions);
    }
    for (EventOutcome& o : outcomes) {
      if (auto v = by_event.find(o.event_id); v != by_event.end()) o.script_versions = v->second;
    }
  }
  std::vector<BatchItem>& items() { return items_; }
  BatchLease& lease() { return lease_; }

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
  if (work) {
    // No marks here (the caller marks, if it is an inbox's): the versions are written with the work.
    std::vector<EventOutcome> outcome(1);
    outcome[0].event_id = e.id;
    work->annotate(outcome);
    std::vector<std::pair<int64_t, std::string>> versions;
    if (!outcome[0].script_versions.empty()) versions.emplace_back(e.id, std::move(outcome[0].script_versions));
    Status recorded = store_.db().transaction([&]() -> Status {
      FB_TRY(set_script_versions(store_.db(), versions));
      return work->record();
    });
    FB_TRY(recorded.with_context("storing the meeting"));
  }
  return results[0];
}

std::unique_ptr<InboxBatchWork> MeetingEventHandler::handle_batch(const std::vector<const InboxEvent*>& events,
                                                                  std::vector<Status>* results) {
  std::vector<InboxEvent> none;
  BatchClaim claim(none);  // guards nothing: every event is this caller's
  return handle_claimed(events, results, claim);
}

std::unique_ptr<InboxBatchWork> MeetingEventHandler::handle_claimed(const std::vector<const InboxEvent*>& events,
                                                                    std::vector<Status>* results, BatchClaim& claim) {
  std::vector<BatchItem> items;
  std::vector<size_t> where;
  std::map<int64_t, Result<IntegrationInfo>> integrations;  // looked up once per batch
  ParsedBodies bodies(events.size());  // outlives run_batch below
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
    // The one parse of this body on our side: the meeting's fields come from it, and the hooks
    // get it too. Nothing of the body is copied: it stays in e.body (and in the body log, which
    // the stored meeting points at).
    ParsedJson& doc = bodies[i];
    Status parsed = doc.parse(e.body);
    auto meeting = parsed.ok() ? parse_meeting(doc, MeetingCopy::kNone) : Result<Meeting>(parsed);
    if (!meeting.ok()) {
      (*results)[i] = meeting.status().with_context("storing the meeting");
      continue;
    }
    BatchItem item;
    item.integration = *info;
    item.meeting = std::move(*meeting);
    item.raw = e.body;
    item.parsed = &doc;
    item.content_event_id = e.id;
    item.source = "webhook";
    item.react = true;
    item.take = [&claim, id = e.id] { return claim.take(id); };
    items.push_back(std::move(item));
    where.push_back(i);
  }
  if (items.empty()) return nullptr;
  auto lease = dispatcher_.prepare_batch(items, store_);
  if (!lease.ok()) {
    for (size_t i : where) (*results)[i] = lease.status().with_context("dispatching the meeting");
    return nullptr;
  }
  // The work owns the items and the lease from here (stable addresses while the claim may call in).
  auto work = std::make_unique<RecordMeetings>(dispatcher_, store_, std::move(items), std::move(*lease));
  claim.on_give_up([lease = &work->lease()](const std::vector<int64_t>& given_up) {
    for (int64_t id : given_up) lease->release_integration(id);
  });
  try {
    dispatcher_.run_batch(work->items(), pipeline_, &work->lease());
  } catch (...) {
    claim.on_give_up(nullptr);  // the lease goes with this frame
    throw;
  }
  for (size_t k = 0; k < work->items().size(); ++k) {
    BatchItem& it = work->items()[k];
    (*results)[where[k]] = it.status;
    it.raw = {};  // the bodies and their parses are not the work's: record() stores by pointer
    it.parsed = nullptr;
  }
  return work;
}

}  // namespace fb::detail
