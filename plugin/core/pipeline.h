// pipeline.h: where a meeting goes once it is stored. The sync engine and the webhook workers
// hand each new or changed meeting (per content version) to a MeetingPipeline; the scripting
// layer implements it with the admins' Lua rules, tests implement it directly.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fathom_bridge/status.h"

namespace fb::detail {

class ParsedJson;  // core/parsed_json.h
class Db;          // store/db.h

// What a pipeline's batch left to write in the batch's own transaction (issue 11): the scripts'
// store.set/store.delete of the batch's hooks, which before were one write transaction each.
class BatchWrites {
 public:
  virtual ~BatchWrites() = default;
  // Makes the writes inside the caller's open transaction on db (they commit or roll back with
  // it). When db is another database than the writes belong to, they are committed there on
  // their own instead.
  virtual Status apply(Db& db) = 0;
  // Without a batch transaction to join: commits them now, in one transaction of their own.
  virtual Status apply_now() = 0;
};

struct MeetingEvent {
  int64_t integration_id = 0;
  std::string tenant_id;
  std::string user_id;
  int64_t recording_id = 0;
  int64_t content_version = 0;  // increases whenever the stored meeting's content changes
  std::string_view raw_json;    // the Meeting object as Fathom sent it (valid during the call)
  std::string source;           // "sync" or "webhook"
  // raw_json already parsed by the caller (a webhook worker parses each body once), or null. A
  // pipeline may read it instead of parsing raw_json again; valid during the call.
  const ParsedJson* parsed = nullptr;
};

class MeetingPipeline {
 public:
  virtual ~MeetingPipeline() = default;
  // Maps one meeting into the CRM. A non-ok Status means "retry later" (the caller keeps the
  // meeting unmapped, or retries/dead-letters the webhook event); the message explains why.
  // Thread-safe: called from several workers at once.
  virtual Status on_meeting(const MeetingEvent& event) = 0;
  // Reacts to a verified webhook delivery after its meeting was stored (reactions.lua).
  virtual Status on_webhook(const MeetingEvent& event) { (void)event; return Status::Ok(); }
  // on_meeting, then, when it succeeded, on_webhook for the same event (a webhook event that is
  // mapped and reacted to), whose outcome goes to *reaction. Returns on_meeting's. A pipeline may
  // share work between the two: the Lua pipeline runs both on one Lua state.
  virtual Status on_meeting_then_webhook(const MeetingEvent& event, Status* reaction) {
    Status mapped = on_meeting(event);
    if (mapped.ok()) *reaction = on_webhook(event);
    return mapped;
  }
  // Around the calls of one batch (issue 11): begin_batch before its first on_meeting/on_webhook,
  // end_batch after its last, on the same thread, so a host can make the CRM writes of a batch one
  // transaction of its own. end_batch(true) must make those writes durable before it returns (the
  // batch is recorded as mapped right after); end_batch(false) after begin_batch failed. A failed
  // begin_batch fails the whole batch (retried later); a failed end_batch(true) fails every
  // meeting the batch mapped (they are mapped again; the idempotency keys keep that harmless).
  virtual Status begin_batch(size_t meetings) { (void)meetings; return Status::Ok(); }
  virtual Status end_batch(bool ok) { (void)ok; return Status::Ok(); }
  // After end_batch, on the same thread: the writes the batch's calls left for the batch's
  // transaction (null: none). Between begin_batch and this call they are visible to the batch's
  // later calls only.
  virtual std::unique_ptr<BatchWrites> take_batch_writes() { return nullptr; }
};

// Which script versions made CRM operations (issue 15: "which rule made this contact"). While a
// CrmAttribution lives on a thread, every CRM operation the scripting layer makes on that thread
// adds its script version (ScriptVersionStore id; 0: the scripts folder) to `into`, once, for
// every CrmAttribution alive there (a sync run's and its meeting's). The job log and the webhook
// event records store what they collected.
class CrmAttribution {
 public:
  explicit CrmAttribution(std::vector<int64_t>* into) { stack().push_back(into); }
  ~CrmAttribution() { stack().pop_back(); }
  CrmAttribution(const CrmAttribution&) = delete;
  CrmAttribution& operator=(const CrmAttribution&) = delete;
  // Called for each CRM operation, on the thread that made it.
  static void record(int64_t script_version) {
    for (std::vector<int64_t>* v : stack()) {
      if (std::find(v->begin(), v->end(), script_version) == v->end()) v->push_back(script_version);
    }
  }
  // The versions as stored: a JSON array ("[3,4]"), or nullopt when no CRM operation was made.
  static std::optional<std::string> to_json(const std::vector<int64_t>& versions) {
    if (versions.empty()) return std::nullopt;
    std::string out = "[";
    for (int64_t v : versions) out += (out.size() > 1 ? "," : "") + std::to_string(v);
    return out + "]";
  }

 private:
  static std::vector<std::vector<int64_t>*>& stack() {
    thread_local std::vector<std::vector<int64_t>*> s;
    return s;
  }
};

// Read access to a recording's transcript and summary, through the cache and (when missing) the
// rate-limited API. Implemented by the sync layer; used by the scripting layer's `fathom` module.
class MeetingContentSource {
 public:
  virtual ~MeetingContentSource() = default;
  // JSON array of TranscriptItem, from cache or one API call.
  virtual Result<std::string> transcript_json(int64_t integration_id, int64_t recording_id) = 0;
  // JSON MeetingSummary object, from cache or one API call.
  virtual Result<std::string> summary_json(int64_t integration_id, int64_t recording_id) = 0;
};

}  // namespace fb::detail
