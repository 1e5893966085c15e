// parsed_json.h: a JSON text parsed once and read by several consumers (issue 11).
//
// A webhook worker parses each delivery's body once into a ParsedJson and hands it to the meeting
// parser (parse_meeting_parsed, fathom/models.h) and to both Lua hooks (MeetingEvent::parsed:
// mapping.lua's on_meeting and reactions.lua's on_webhook build their meeting table from it, and a
// long transcript left out of the table is built from it on first read). Before, each of the three
// parsed the same 20 KB again.
//
// The DOM (simdjson's tape and string buffer) belongs to this object; root() is valid until the
// next parse() or the object's destruction. text() is a view of the caller's text, which must
// outlive the reads of it. Not thread-safe: one reader at a time (a worker and the hooks it calls).
#pragma once

#include <simdjson.h>

#include <string>
#include <string_view>

#include "fathom_bridge/status.h"

namespace fb::detail {

class ParsedJson {
 public:
  ParsedJson() = default;
  ParsedJson(const ParsedJson&) = delete;
  ParsedJson& operator=(const ParsedJson&) = delete;

  // Parses text (kept by the caller). kMalformed "<what>: invalid JSON (...)" when it is not JSON,
  // the same message the meeting parser gives.
  Status parse(std::string_view text, const char* what = "meeting") {
    text_ = {};
    ok_ = false;
    thread_local simdjson::dom::parser parser;  // scratch only: the result lives in doc_
    auto err = parser.parse_into_document(doc_, text.data(), text.size()).get(root_);
    if (err) return Status::Malformed(std::string(what) + ": invalid JSON (" + simdjson::error_message(err) + ")");
    text_ = text;
    ok_ = true;
    return Status::Ok();
  }
  bool ok() const { return ok_; }
  std::string_view text() const { return text_; }
  // REQUIRES: ok().
  simdjson::dom::element root() const { return root_; }

 private:
  simdjson::dom::document doc_;
  simdjson::dom::element root_;
  std::string_view text_;
  bool ok_ = false;
};

}  // namespace fb::detail
