#include "fathom/models.h"

#include <simdjson.h>

#include <algorithm>
#include <utility>

#include "core/clock.h"
#include "crypto/encoding.h"
#include "crypto/hash.h"

namespace fb::detail {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

const char* type_name(element_type t) {
  switch (t) {
    case element_type::ARRAY: return "array";
    case element_type::OBJECT: return "object";
    case element_type::INT64:
    case element_type::UINT64: return "integer";
    case element_type::DOUBLE: return "number";
    case element_type::STRING: return "string";
    case element_type::BOOL: return "boolean";
    case element_type::NULL_VALUE: return "null";
  }
  return "unknown";
}

// Typed views of an element whose type was checked first. get(out) copies into a local, which
// avoids binding references into simdjson's temporary result objects.
simdjson::dom::array as_array(const element& el) {
  simdjson::dom::array a;
  if (el.get_array().get(a)) return {};
  return a;
}
simdjson::dom::object as_object(const element& el) {
  simdjson::dom::object o;
  if (el.get_object().get(o)) return {};
  return o;
}
std::string_view as_string(const element& el) {
  std::string_view v;
  if (el.get_string().get(v)) return {};
  return v;
}

Status type_error(const std::string& path, const char* expected, const element& el) {
  return Status::Malformed(path + ": expected " + expected + ", got " + type_name(el.type()));
}

// simdjson's DOM parser is reusable but not thread-safe: one per thread. Elements handed out
// stay valid until this thread's next parse, so every parser function finishes its work before
// returning.
Result<element> parse_doc(std::string_view json, const char* what) {
  thread_local simdjson::dom::parser parser;
  element doc;
  auto err = parser.parse(json.data(), json.size(), true).get(doc);
  if (err) {
    return Status::Malformed(std::string(what) + ": invalid JSON (" + simdjson::error_message(err) + ")");
  }
  return doc;
}

// Field access on one JSON object, naming each field by its path in errors.
class Obj {
 public:
  Obj(simdjson::dom::object o, std::string path) : o_(o), path_(std::move(path)) {}
  static Result<Obj> of(const element& el, const std::string& path) {
    if (el.type() != element_type::OBJECT) return type_error(path, "object", el);
    return Obj(as_object(el), path);
  }

  std::string path(const char* key) const { return path_ + "." + key; }
  // The element at key, or nullopt when the key is absent or null.
  std::optional<element> find(const char* key) const {
    element el;
    if (o_.at_key(key).get(el)) return std::nullopt;
    if (el.type() == element_type::NULL_VALUE) return std::nullopt;
    return el;
  }
  bool has(const char* key) const {
    element el;
    return !o_.at_key(key).get(el);
  }

  // Absent or null gives "" (tolerated); any other non-string is an error.
  Status str(const char* key, std::string* out, bool required = false) const {
    auto el = find(key);
    if (!el) {
      if (required) return Status::Malformed(path(key) + ": missing");
      out->clear();
      return Status::Ok();
    }
    if (el->type() != element_type::STRING) return type_error(path(key), "string", *el);
    *out = std::string(as_string(*el));
    return Status::Ok();
  }
  Status opt_str(const char* key, std::optional<std::string>* out) const {
    auto el = find(key);
    if (!el) {
      out->reset();
      return Status::Ok();
    }
    if (el->type() != element_type::STRING) return type_error(path(key), "string", *el);
    *out = std::string(as_string(*el));
    return Status::Ok();
  }
  Status boolean(const char* key, bool* out) const {
    auto el = find(key);
    if (!el) {
      *out = false;
      return Status::Ok();
    }
    if (el->type() != element_type::BOOL) return type_error(path(key), "boolean", *el);
    if (el->get_bool().get(*out)) *out = false;
    return Status::Ok();
  }
  Status integer(const char* key, int64_t* out, bool required) const {
    auto el = find(key);
    if (!el) {
      if (required) return Status::Malformed(path(key) + ": missing");
      *out = 0;
      return Status::Ok();
    }
    if (el->type() == element_type::INT64) {
      if (el->get_int64().get(*out)) *out = 0;
      return Status::Ok();
    }
    if (el->type() == element_type::UINT64) return Status::Malformed(path(key) + ": integer out of range");
    return type_error(path(key), "integer", *el);
  }
  // An ISO 8601 timestamp: the text and its Unix seconds.
  Status time(const char* key, std::string* text, int64_t* unix_s, bool required = false) const {
    FB_TRY(str(key, text, required));
    *unix_s = 0;
    if (text->empty()) return Status::Ok();
    if (!parse_iso8601(*text, unix_s)) {
      return Status::Malformed(path(key) + ": malformed timestamp '" + text->substr(0, 40) + "'");
    }
    return Status::Ok();
  }
  // Calls fn(element, path) for each entry of the array at key (absent/null: no calls).
  template <typename F>
  Status each(const char* key, F&& fn) const {
    auto el = find(key);
    if (!el) return Status::Ok();
    if (el->type() != element_type::ARRAY) return type_error(path(key), "array", *el);
    size_t i = 0;
    for (element item : as_array(*el)) {
      FB_TRY(fn(item, path(key) + "[" + std::to_string(i) + "]"));
      ++i;
    }
    return Status::Ok();
  }

 private:
  simdjson::dom::object o_;
  std::string path_;
};

// Canonical JSON for hashing: keys sorted, null-valued keys dropped (absent and null mean the
// same to us), scalars as simdjson minifies them. `skip` names keys to leave out of this object.
void canonical(const element& el, std::string* out, std::initializer_list<std::string_view> skip = {});

// An object's non-null fields except `skip`, sorted by key.
std::vector<std::pair<std::string_view, element>> sorted_fields(const element& el,
                                                                std::initializer_list<std::string_view> skip) {
  std::vector<std::pair<std::string_view, element>> fields;
  for (auto field : as_object(el)) {
    if (field.value.type() == element_type::NULL_VALUE) continue;
    if (std::find(skip.begin(), skip.end(), field.key) != skip.end()) continue;
    fields.emplace_back(field.key, field.value);
  }
  std::sort(fields.begin(), fields.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return fields;
}

void canonical(const element& el, std::string* out, std::initializer_list<std::string_view> skip) {
  switch (el.type()) {
    case element_type::OBJECT: {
      auto fields = sorted_fields(el, skip);
      out->push_back('{');
      for (size_t i = 0; i < fields.size(); ++i) {
        if (i) out->push_back(',');
        out->push_back('"');
        out->append(fields[i].first);  // keys are compared raw; escaping is irrelevant for hashing
        out->append("\":");
        canonical(fields[i].second, out);
      }
      out->push_back('}');
      break;
    }
    case element_type::ARRAY: {
      out->push_back('[');
      bool first = true;
      for (element item : as_array(el)) {
        if (!first) out->push_back(',');
        first = false;
        canonical(item, out);
      }
      out->push_back(']');
      break;
    }
    default:
      out->append(simdjson::minify(el));
  }
}

// The meeting's core: the top-level object without the include_* parts, and invitees without
// the transcript-dependent matched_speaker_display_name.
std::string meeting_core_hash(const element& meeting) {
  std::string canon;
  canon.reserve(1024);
  auto fields = sorted_fields(meeting, {"transcript", "default_summary", "action_items", "crm_matches"});
  canon.push_back('{');
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i) canon.push_back(',');
    canon.push_back('"');
    canon.append(fields[i].first);
    canon.append("\":");
    const element& v = fields[i].second;
    if (fields[i].first == "calendar_invitees" && v.type() == element_type::ARRAY) {
      canon.push_back('[');
      bool first = true;
      for (element inv : as_array(v)) {
        if (!first) canon.push_back(',');
        first = false;
        if (inv.type() == element_type::OBJECT) canonical(inv, &canon, {"matched_speaker_display_name"});
        else canonical(inv, &canon);
      }
      canon.push_back(']');
    } else {
      canonical(v, &canon);
    }
  }
  canon.push_back('}');
  return hex_encode(sha256(canon));
}

Result<Invitee> invitee_from(const element& el, const std::string& path) {
  FB_ASSIGN(Obj o, Obj::of(el, path));
  Invitee v;
  FB_TRY(o.opt_str("name", &v.name));
  FB_TRY(o.opt_str("matched_speaker_display_name", &v.matched_speaker_display_name));
  FB_TRY(o.opt_str("email", &v.email));
  FB_TRY(o.opt_str("email_domain", &v.email_domain));
  FB_TRY(o.boolean("is_external", &v.is_external));
  return v;
}

Result<TranscriptItem> transcript_item_from(const element& el, const std::string& path) {
  FB_ASSIGN(Obj o, Obj::of(el, path));
  TranscriptItem t;
  if (auto sp = o.find("speaker")) {
    FB_ASSIGN(Obj s, Obj::of(*sp, o.path("speaker")));
    FB_TRY(s.str("display_name", &t.speaker_display_name));
    FB_TRY(s.opt_str("matched_calendar_invitee_email", &t.speaker_email));
  }
  FB_TRY(o.str("text", &t.text));
  FB_TRY(o.str("timestamp", &t.timestamp));
  return t;
}

Result<Summary> summary_from(const element& el, const std::string& path) {
  FB_ASSIGN(Obj o, Obj::of(el, path));
  Summary s;
  FB_TRY(o.opt_str("template_name", &s.template_name));
  FB_TRY(o.opt_str("markdown_formatted", &s.markdown_formatted));
  return s;
}

Result<ActionItem> action_item_from(const element& el, const std::string& path) {
  FB_ASSIGN(Obj o, Obj::of(el, path));
  ActionItem a;
  FB_TRY(o.str("description", &a.description));
  FB_TRY(o.boolean("user_generated", &a.user_generated));
  FB_TRY(o.boolean("completed", &a.completed));
  FB_TRY(o.str("recording_timestamp", &a.recording_timestamp));
  FB_TRY(o.str("recording_playback_url", &a.recording_playback_url));
  if (auto as = o.find("assignee")) {
    FB_ASSIGN(Obj s, Obj::of(*as, o.path("assignee")));
    FB_TRY(s.opt_str("name", &a.assignee.name));
    FB_TRY(s.opt_str("email", &a.assignee.email));
    FB_TRY(s.opt_str("team", &a.assignee.team));
  }
  return a;
}

// Keeps the raw text of an include_* part (unless copy is kNone) and checks its shape; sets the
// part's bit in *sent when it is there and not null.
Status include_part(const Obj& o, const char* key, element_type want, const char* want_name, bool* has,
                    std::string* raw, int bit, int* sent, MeetingCopy copy) {
  *has = o.has(key);
  raw->clear();
  auto el = o.find(key);
  if (!el) return Status::Ok();
  if (el->type() != want) return type_error(o.path(key), want_name, *el);
  *sent |= bit;
  if (copy == MeetingCopy::kAll) *raw = simdjson::minify(*el);
  return Status::Ok();
}

// Whether a string member is absent, null or a string: what Obj::str and Obj::opt_str accept.
bool string_or_absent(const simdjson::dom::object& o, const char* key) {
  element v;
  if (o.at_key(key).get(v)) return true;
  return v.type() == element_type::STRING || v.type() == element_type::NULL_VALUE;
}

// transcript_item_from's checks without building the item or any path: a 20 KB payload has
// hundreds of lines, and the worker only needs to know they are well formed. On false the caller
// runs transcript_item_from for the message.
bool transcript_item_ok(const element& el) {
  if (el.type() != element_type::OBJECT) return false;
  // One pass over the members; as Obj::find (at_key), only the first member of a name counts.
  bool speaker = false, text = false, timestamp = false;
  auto string_or_null = [](const element& v) {
    return v.type() == element_type::STRING || v.type() == element_type::NULL_VALUE;
  };
  for (auto field : as_object(el)) {
    if (!speaker && field.key == "speaker") {
      speaker = true;
      const element& sp = field.value;
      if (sp.type() == element_type::NULL_VALUE) continue;
      if (sp.type() != element_type::OBJECT) return false;
      simdjson::dom::object s = as_object(sp);
      if (!string_or_absent(s, "display_name") || !string_or_absent(s, "matched_calendar_invitee_email")) return false;
    } else if (!text && field.key == "text") {
      text = true;
      if (!string_or_null(field.value)) return false;
    } else if (!timestamp && field.key == "timestamp") {
      timestamp = true;
      if (!string_or_null(field.value)) return false;
    }
  }
  return true;
}

Result<Meeting> meeting_from(const element& el, const std::string& path, std::string raw,
                             MeetingCopy copy = MeetingCopy::kAll) {
  FB_ASSIGN(Obj o, Obj::of(el, path));
  Meeting m;
  FB_TRY(o.integer("recording_id", &m.recording_id, true));
  if (m.recording_id <= 0) return Status::Malformed(o.path("recording_id") + ": must be positive");
  FB_TRY(o.str("title", &m.title));
  FB_TRY(o.opt_str("meeting_title", &m.meeting_title));
  FB_TRY(o.str("url", &m.url));
  FB_TRY(o.str("share_url", &m.share_url));
  FB_TRY(o.time("created_at", &m.created_at, &m.created_at_s, true));
  FB_TRY(o.time("scheduled_start_time", &m.scheduled_start_time, &m.scheduled_start_s));
  FB_TRY(o.time("scheduled_end_time", &m.scheduled_end_time, &m.scheduled_end_s));
  FB_TRY(o.time("recording_start_time", &m.recording_start_time, &m.recording_start_s));
  FB_TRY(o.time("recording_end_time", &m.recording_end_time, &m.recording_end_s));
  FB_TRY(o.str("calendar_invitees_domains_type", &m.calendar_invitees_domains_type));
  FB_TRY(o.str("transcript_language", &m.transcript_language));
  FB_TRY(o.each("calendar_invitees", [&](const element& item, const std::string& p) -> Status {
    FB_ASSIGN(Invitee inv, invitee_from(item, p));
    m.calendar_invitees.push_back(std::move(inv));
    return Status::Ok();
  }));
  if (auto rb = o.find("recorded_by")) {
    FB_ASSIGN(Obj u, Obj::of(*rb, o.path("recorded_by")));
    FB_TRY(u.str("name", &m.recorded_by.name));
    FB_TRY(u.str("email", &m.recorded_by.email));
    FB_TRY(u.str("email_domain", &m.recorded_by.email_domain));
    FB_TRY(u.opt_str("team", &m.recorded_by.team));
    if (m.recorded_by.email_domain.empty()) {
      size_t at = m.recorded_by.email.rfind('@');
      if (at != std::string::npos) m.recorded_by.email_domain = m.recorded_by.email.substr(at + 1);
    }
  }
  FB_TRY(include_part(o, "transcript", element_type::ARRAY, "array", &m.has_transcript, &m.transcript_json, 1,
                      &m.parts_sent, copy));
  FB_TRY(include_part(o, "default_summary", element_type::OBJECT, "object", &m.has_default_summary,
                      &m.default_summary_json, 2, &m.parts_sent, copy));
  FB_TRY(include_part(o, "action_items", element_type::ARRAY, "array", &m.has_action_items, &m.action_items_json, 4,
                      &m.parts_sent, copy));
  FB_TRY(include_part(o, "crm_matches", element_type::OBJECT, "object", &m.has_crm_matches, &m.crm_matches_json, 8,
                      &m.parts_sent, copy));
  // Validate the shapes of the content parts now, so a bad payload fails here, named. The
  // transcript is checked cheaply first; only a bad one is walked again for the message.
  bool transcript_ok = true;
  if (auto t = o.find("transcript")) {
    for (element item : as_array(*t)) transcript_ok = transcript_ok && transcript_item_ok(item);
  }
  if (!transcript_ok) {
    FB_TRY(o.each("transcript", [](const element& item, const std::string& p) {
      return transcript_item_from(item, p).status();
    }));
  }
  if (auto s = o.find("default_summary")) FB_TRY(summary_from(*s, o.path("default_summary")).status());
  FB_TRY(o.each("action_items", [](const element& item, const std::string& p) {
    return action_item_from(item, p).status();
  }));
  m.core_hash = meeting_core_hash(el);
  m.raw_json = std::move(raw);
  return m;
}

// Reads {limit, next_cursor, items} and calls item_fn(element, path) for each item. An item that
// fails fails the page, or with skip_bad_items goes to page.skipped.
template <typename T, typename F>
Result<Page<T>> page_from(std::string_view json, const char* what, F&& item_fn, bool skip_bad_items = false) {
  FB_ASSIGN(element doc, parse_doc(json, what));
  FB_ASSIGN(Obj o, Obj::of(doc, what));
  Page<T> page;
  FB_TRY(o.integer("limit", &page.limit, false));
  FB_TRY(o.str("next_cursor", &page.next_cursor));  // null, "" and absent all end the paging
  if (!o.has("items")) return Status::Malformed(o.path("items") + ": missing");
  int64_t index = 0;
  FB_TRY(o.each("items", [&](const element& item, const std::string& p) -> Status {
    const int64_t i = index++;
    auto v = item_fn(item, p);
    if (v.ok()) {
      page.items.push_back(std::move(*v));
      return Status::Ok();
    }
    if (!skip_bad_items) return v.status();
    SkippedItem skipped{i, 0, v.status().message()};
    int64_t id = 0;
    if (item.type() == element_type::OBJECT && !as_object(item)["recording_id"].get(id) && id > 0) {
      skipped.recording_id = id;
    }
    page.skipped.push_back(std::move(skipped));
    return Status::Ok();
  }));
  return page;
}

template <typename T, typename F>
Result<std::vector<T>> array_from(std::string_view json, const char* what, F&& item_fn) {
  FB_ASSIGN(element doc, parse_doc(json, what));
  if (doc.type() != element_type::ARRAY) return type_error(what, "array", doc);
  std::vector<T> out;
  size_t i = 0;
  for (element item : as_array(doc)) {
    FB_ASSIGN(T v, item_fn(item, std::string(what) + "[" + std::to_string(i++) + "]"));
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace

Result<Meeting> parse_meeting(std::string_view json) {
  FB_ASSIGN(element doc, parse_doc(json, "meeting"));
  return meeting_from(doc, "meeting", std::string(json));
}

Result<Meeting> parse_meeting(const ParsedJson& json, MeetingCopy copy) {
  return meeting_from(json.root(), "meeting", copy == MeetingCopy::kAll ? std::string(json.text()) : std::string(),
                      copy);
}

Result<Page<Meeting>> parse_meeting_page(std::string_view json) {
  return page_from<Meeting>(
      json, "meetings",
      // raw_json is the stored copy; the parts are in it, so they are not minified a second time
      // each (parts_sent says which were listed).
      [](const element& item, const std::string& path) {
        return meeting_from(item, path, simdjson::minify(item), MeetingCopy::kNone);
      },
      true);
}

Result<std::vector<TranscriptItem>> parse_transcript_items(std::string_view json) {
  return array_from<TranscriptItem>(json, "transcript", transcript_item_from);
}

Result<std::vector<TranscriptItem>> parse_transcript_response(std::string_view json, std::string* raw_out) {
  FB_ASSIGN(element doc, parse_doc(json, "transcript response"));
  FB_ASSIGN(Obj o, Obj::of(doc, "transcript_response"));
  auto arr = o.find("transcript");
  if (!arr) return Status::Malformed("transcript_response.transcript: missing");
  if (arr->type() != element_type::ARRAY) return type_error(o.path("transcript"), "array", *arr);
  std::vector<TranscriptItem> out;
  FB_TRY(o.each("transcript", [&](const element& item, const std::string& p) -> Status {
    FB_ASSIGN(TranscriptItem t, transcript_item_from(item, p));
    out.push_back(std::move(t));
    return Status::Ok();
  }));
  if (raw_out) *raw_out = simdjson::minify(*arr);
  return out;
}

Result<Summary> parse_summary(std::string_view json) {
  FB_ASSIGN(element doc, parse_doc(json, "summary"));
  return summary_from(doc, "summary");
}

Result<Summary> parse_summary_response(std::string_view json, std::string* raw_out) {
  FB_ASSIGN(element doc, parse_doc(json, "summary response"));
  FB_ASSIGN(Obj o, Obj::of(doc, "summary_response"));
  auto s = o.find("summary");
  if (!s) return Status::Malformed("summary_response.summary: missing");
  FB_ASSIGN(Summary out, summary_from(*s, o.path("summary")));
  if (raw_out) *raw_out = simdjson::minify(*s);
  return out;
}

Result<std::vector<ActionItem>> parse_action_items(std::string_view json) {
  return array_from<ActionItem>(json, "action_items", action_item_from);
}

Result<Page<Team>> parse_team_page(std::string_view json) {
  return page_from<Team>(json, "teams", [](const element& item, const std::string& path) -> Result<Team> {
    FB_ASSIGN(Obj o, Obj::of(item, path));
    Team t;
    FB_TRY(o.str("name", &t.name));
    FB_TRY(o.str("created_at", &t.created_at));
    t.raw_json = simdjson::minify(item);
    return t;
  });
}

Result<Page<TeamMember>> parse_team_member_page(std::string_view json) {
  return page_from<TeamMember>(
      json, "team_members", [](const element& item, const std::string& path) -> Result<TeamMember> {
        FB_ASSIGN(Obj o, Obj::of(item, path));
        TeamMember t;
        FB_TRY(o.str("name", &t.name));
        FB_TRY(o.str("email", &t.email));
        FB_TRY(o.str("created_at", &t.created_at));
        t.raw_json = simdjson::minify(item);
        return t;
      });
}

Result<Webhook> parse_webhook(std::string_view json) {
  FB_ASSIGN(element doc, parse_doc(json, "webhook"));
  FB_ASSIGN(Obj o, Obj::of(doc, "webhook"));
  Webhook w;
  FB_TRY(o.str("id", &w.id, true));
  FB_TRY(o.str("url", &w.url));
  std::string secret;
  FB_TRY(o.str("secret", &secret));
  w.secret = SecretString(std::move(secret));
  FB_TRY(o.str("created_at", &w.created_at));
  FB_TRY(o.boolean("include_transcript", &w.include_transcript));
  FB_TRY(o.boolean("include_summary", &w.include_summary));
  FB_TRY(o.boolean("include_action_items", &w.include_action_items));
  FB_TRY(o.boolean("include_crm_matches", &w.include_crm_matches));
  FB_TRY(o.each("triggered_for", [&](const element& item, const std::string& p) -> Status {
    if (item.type() != element_type::STRING) return type_error(p, "string", item);
    w.triggered_for.emplace_back(as_string(item));
    return Status::Ok();
  }));
  return w;
}

}  // namespace fb::detail
