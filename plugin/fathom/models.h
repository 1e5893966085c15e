// models.h: typed views of Fathom's JSON objects (fathom-api.md section 4), and their parsers.
//
// Every parsed object keeps the JSON it came from (`raw_json`), so fields this code does not know
// survive into storage and into the mapping scripts. Missing optional fields are tolerated; a
// field of the wrong type fails with kMalformed and a message naming it, for example
// "meeting.recording_id: expected integer, got string". Required fields that Fathom documents as
// nullable are std::optional. Parsing is pure: no I/O, thread-safe, simdjson underneath.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/parsed_json.h"
#include "core/secret.h"
#include "fathom_bridge/status.h"

namespace fb::detail {

struct Invitee {
  std::optional<std::string> name;
  std::optional<std::string> matched_speaker_display_name;  // only with include_transcript
  std::optional<std::string> email;
  std::optional<std::string> email_domain;
  bool is_external = false;
};

struct FathomUser {  // Meeting.recorded_by
  std::string name;
  std::string email;
  std::string email_domain;  // older payloads may lack it: then "" (or derived from email)
  std::optional<std::string> team;
};

struct TranscriptItem {
  std::string speaker_display_name;
  std::optional<std::string> speaker_email;  // speaker.matched_calendar_invitee_email
  std::string text;
  std::string timestamp;  // "HH:MM:SS" from the start of the meeting
};

struct Summary {  // MeetingSummary
  std::optional<std::string> template_name;
  std::optional<std::string> markdown_formatted;
};

struct Assignee {
  std::optional<std::string> name;
  std::optional<std::string> email;
  std::optional<std::string> team;
};

struct ActionItem {
  std::string description;
  bool user_generated = false;
  bool completed = false;
  std::string recording_timestamp;
  std::string recording_playback_url;
  Assignee assignee;
};

struct Meeting {
  int64_t recording_id = 0;
  std::string title;
  std::optional<std::string> meeting_title;
  std::string url;
  std::string share_url;
  // ISO 8601 text as sent, plus the parsed Unix seconds (0 when absent).
  std::string created_at;
  int64_t created_at_s = 0;
  std::string scheduled_start_time, scheduled_end_time, recording_start_time, recording_end_time;
  int64_t scheduled_start_s = 0, scheduled_end_s = 0, recording_start_s = 0, recording_end_s = 0;
  std::string calendar_invitees_domains_type;  // "only_internal" | "one_or_more_external" | ...
  std::string transcript_language;
  std::vector<Invitee> calendar_invitees;
  FathomUser recorded_by;

  // The include_* parts. Each is the raw JSON text of that key when the key was present and not
  // null ("" otherwise); `has_*` says whether the key was present at all.
  bool has_transcript = false, has_default_summary = false, has_action_items = false, has_crm_matches = false;
  std::string transcript_json;       // JSON array of TranscriptItem
  std::string default_summary_json;  // JSON MeetingSummary object
  std::string action_items_json;     // JSON array of ActionItem
  std::string crm_matches_json;      // JSON CRMMatches object
  // Which of the four parts were sent (present and not null), one bit each in the order above
  // (transcript 1, default_summary 2, action_items 4, crm_matches 8: ContentKind's order). Set by
  // every parser; with MeetingCopy::kNone it is the only record of the parts (the strings stay "").
  int parts_sent = 0;

  // SHA-256 (hex) over the meeting's core fields only: every key except transcript,
  // default_summary, action_items and crm_matches, and without
  // calendar_invitees[].matched_speaker_display_name (which Fathom fills only with
  // include_transcript). Keys are sorted, so key order does not matter. A list call (which may
  // omit the include_* parts) and a webhook (which carries them) of the same meeting therefore
  // yield the same hash.
  std::string core_hash;
  std::string raw_json;  // the whole object as received (list items: minified)
};

struct Team {
  std::string name;
  std::string created_at;
  std::string raw_json;
};

struct TeamMember {
  std::string name;
  std::string email;
  std::string created_at;
  std::string raw_json;
};

struct Webhook {
  std::string id;
  std::string url;
  SecretString secret;  // "whsec_..." signing secret; never logged
  std::string created_at;
  bool include_transcript = false;
  bool include_summary = false;
  bool include_action_items = false;
  bool include_crm_matches = false;
  std::vector<std::string> triggered_for;
  // No raw_json: the response carries the secret, which must not be stored in plaintext.
};

// An item of a meetings page that did not parse (a real page had one without recording_id).
// parse_meeting_page leaves it out and says why, instead of failing the page: one bad item must
// never block the rest of the page, nor the pages after it.
struct SkippedItem {
  int64_t index = 0;         // its position in items
  int64_t recording_id = 0;  // when it had a usable one, else 0
  std::string reason;        // names the field, e.g. "meetings.items[0].recording_id: missing"
};

// One page of a cursor-paged list. `next_cursor` is empty when this was the last page, whether
// Fathom sent null, "" or left the key out.
template <typename T>
struct Page {
  std::vector<T> items;
  std::vector<SkippedItem> skipped;  // items that did not parse (meeting pages only; see SkippedItem)
  std::string next_cursor;
  int64_t limit = 0;  // as reported (0 when null or absent)
  bool last() const { return next_cursor.empty(); }
};

// Parsers. `what` prefixes field paths in error messages.
Result<Meeting> parse_meeting(std::string_view json);
// What parse_meeting(const ParsedJson&, ...) copies out of the text.
enum class MeetingCopy {
  kAll,   // raw_json and the include parts as text, as parse_meeting(text) does
  kNone,  // neither: for a caller that keeps the text (a webhook body stays in the body log and the
          // hooks read the parsed document); raw_json and the *_json parts stay "", parts_sent and
          // has_* say what was sent. Every field check and the core hash are the same.
};
// The meeting in an already parsed text (issue 11: parsed once per webhook delivery). The same
// checks, messages and fields as parse_meeting(json.text()), less what `copy` leaves out.
// REQUIRES: json.ok().
Result<Meeting> parse_meeting(const ParsedJson& json, MeetingCopy copy);
// Fails only when the page itself is malformed; a bad item goes to Page::skipped. Each item has its
// raw_json (minified) but not its parts as separate text (the *_json strings stay ""; parts_sent
// and has_* say what was listed).
Result<Page<Meeting>> parse_meeting_page(std::string_view json);
// Body of GET /recordings/{id}/transcript: {"transcript": [...]}. raw_out (optional) receives the
// JSON array text.
Result<std::vector<TranscriptItem>> parse_transcript_response(std::string_view json, std::string* raw_out);
// A bare JSON array of TranscriptItem (as cached or as in a webhook payload).
Result<std::vector<TranscriptItem>> parse_transcript_items(std::string_view json);
// Body of GET /recordings/{id}/summary: {"summary": {...}}. raw_out receives the object text.
Result<Summary> parse_summary_response(std::string_view json, std::string* raw_out);
Result<Summary> parse_summary(std::string_view json);
Result<std::vector<ActionItem>> parse_action_items(std::string_view json);
Result<Page<Team>> parse_team_page(std::string_view json);
Result<Page<TeamMember>> parse_team_member_page(std::string_view json);
Result<Webhook> parse_webhook(std::string_view json);

}  // namespace fb::detail
