// lua_pipeline.h: the MeetingPipeline (core/pipeline.h) the sync engine and webhook workers call,
// backed by the admins' Lua scripts: on_meeting -> mapping.lua's on_meeting(meeting, ctx),
// on_webhook -> reactions.lua's on_webhook(meeting, ctx). A script error is Status::Script, so
// the caller retries or dead-letters the event; nothing is dropped. Thread-safe.
#pragma once

#include <memory>
#include <mutex>

#include "core/pipeline.h"
#include "fathom_bridge/crm.h"
#include "scripting/script_host.h"

namespace fb::detail {

class LuaPipeline final : public MeetingPipeline {
 public:
  // host must outlive the pipeline.
  explicit LuaPipeline(ScriptHost& host) : host_(host) {}
  Status on_meeting(const MeetingEvent& event) override { return host_.on_meeting(event); }
  Status on_webhook(const MeetingEvent& event) override { return host_.on_webhook(event); }
  Status on_meeting_then_webhook(const MeetingEvent& event, Status* reaction) override {
    return host_.on_meeting_then_webhook(event, reaction);
  }
  // The host's batch hooks (Bridge::set_crm_batch_hooks), around each batch's script calls.
  void set_batch_hooks(CrmBatchHooks hooks) {
    auto h = std::make_shared<const CrmBatchHooks>(std::move(hooks));
    std::lock_guard lock(mu_);
    hooks_ = std::move(h);
  }
  // The scripts' store writes of a batch go into the batch's transaction (take_batch_writes).
  Status begin_batch(size_t meetings) override {
    host_.begin_store_batch();
    auto h = hooks();
    return h && h->begin ? h->begin(meetings) : Status::Ok();
  }
  Status end_batch(bool ok) override {
    auto h = hooks();
    return h && h->end ? h->end(ok) : Status::Ok();
  }
  std::unique_ptr<BatchWrites> take_batch_writes() override { return host_.end_store_batch(); }

 private:
  std::shared_ptr<const CrmBatchHooks> hooks() {
    std::lock_guard lock(mu_);
    return hooks_;
  }
  ScriptHost& host_;
  std::mutex mu_;
  std::shared_ptr<const CrmBatchHooks> hooks_;  // guarded by mu_
};

}  // namespace fb::detail
