// lua_pipeline.h: the MeetingPipeline (core/pipeline.h) the sync engine and webhook workers call,
// backed by the admins' Lua scripts: on_meeting -> mapping.lua's on_meeting(meeting, ctx),
// on_webhook -> reactions.lua's on_webhook(meeting, ctx). A script error is Status::Script, so
// the caller retries or dead-letters the event; nothing is dropped. Thread-safe.
#pragma once

#include "core/pipeline.h"
#include "scripting/script_host.h"

namespace fb::detail {

class LuaPipeline final : public MeetingPipeline {
 public:
  // host must outlive the pipeline.
  explicit LuaPipeline(ScriptHost& host) : host_(host) {}
  Status on_meeting(const MeetingEvent& event) override { return host_.on_meeting(event); }
  Status on_webhook(const MeetingEvent& event) override { return host_.on_webhook(event); }

 private:
  ScriptHost& host_;
};

}  // namespace fb::detail
