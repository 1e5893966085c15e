#include "sync/meeting_store.h"

#include <algorithm>
#include <array>
#include <set>

#include <nlohmann/json.hpp>

#include "core/utf8.h"
#include "sync/sync_schema.h"

namespace fb::detail {
namespace {

constexpr const char* kMeetingColumns =
    "integration_id, recording_id, title, meeting_title, url, share_url, created_at, scheduled_start, "
    "scheduled_end, recording_start, recording_end, recorded_by_email, recorded_by_name, recorded_by_team, "
    "invitees_domains_type, transcript_language, invitee_count, external_domains, raw_json, content_hash, "
    "content_version, mapped_version, mapped_at, map_error, map_attempts, first_source, last_source, "
    "first_seen_at, last_seen_at, updated_at, content_event_id, content_parts";

StoredMeeting read_meeting(const Stmt& q) {
  StoredMeeting m;
  int c = 0;
  m.integration_id = q.int64(c++);
  m.recording_id = q.int64(c++);
  m.title = q.text(c++);
  m.meeting_title = q.opt_text(c++);
  m.url = q.text(c++);
  m.share_url = q.text(c++);
  m.created_at = q.int64(c++);
  m.scheduled_start = q.int64(c++);
  m.scheduled_end = q.int64(c++);
  m.recording_start = q.int64(c++);
  m.recording_end = q.int64(c++);
  m.recorded_by_email = q.text(c++);
  m.recorded_by_name = q.text(c++);
  m.recorded_by_team = q.opt_text(c++);
  m.invitees_domains_type = q.text(c++);
  m.transcript_language = q.text(c++);
  m.invitee_count = q.int64(c++);
  m.external_domains = q.text(c++);
  m.raw_json = q.text(c++);
  m.content_hash = q.text(c++);
  m.content_version = q.int64(c++);
  m.mapped_version = q.int64(c++);
  m.mapped_at = q.int64(c++);
  m.map_error = q.opt_text(c++);
  m.map_attempts = q.int64(c++);
  m.first_source = q.text(c++);
  m.last_source = q.text(c++);
  m.first_seen_at = q.int64(c++);
  m.last_seen_at = q.int64(c++);
  m.updated_at = q.int64(c++);
  m.content_event_id = q.opt_int64(c++).value_or(0);
  m.content_parts = static_cast<int>(q.int64(c++));
  return m;
}

std::string external_domains(const Meeting& m) {
  std::set<std::string> domains;
  for (const auto& inv : m.calendar_invitees) {
    if (inv.is_external && inv.email_domain && !inv.email_domain->empty()) domains.insert(*inv.email_domain);
  }
  std::string out;
  for (const auto& d : domains) {
    if (!out.empty()) out.push_back(',');
    out += d;
  }
  return out;
}

// A meeting's text as its query columns hold it. PostgreSQL text holds no NUL (JSON's \u0000
// parses to one) and only well-formed UTF-8, so such characters become U+FFFD here, on both engines
// alike and in both writers (upsert, insert_new): a meeting is never refused for them. The content
// keeps every byte: the body log or raw_json (JSON text, where a NUL is the escape \u0000), which
// is what the mapping and content() read.
struct ColumnText {
  explicit ColumnText(const Meeting& m)
      : title(utf8_text(m.title)),
        meeting_title(opt(m.meeting_title)),
        url(utf8_text(m.url)),
        share_url(utf8_text(m.share_url)),
        recorded_by_email(utf8_text(m.recorded_by.email)),
        recorded_by_name(utf8_text(m.recorded_by.name)),
        recorded_by_team(opt(m.recorded_by.team)),
        invitees_domains_type(utf8_text(m.calendar_invitees_domains_type)),
        transcript_language(utf8_text(m.transcript_language)),
        external_domains(utf8_text(fb::detail::external_domains(m))) {}
  static std::optional<std::string> opt(const std::optional<std::string>& v) {
    return v ? std::optional<std::string>(utf8_text(*v)) : std::nullopt;
  }
  std::string title;
  std::optional<std::string> meeting_title;
  std::string url, share_url, recorded_by_email, recorded_by_name;
  std::optional<std::string> recorded_by_team;
  std::string invitees_domains_type, transcript_language, external_domains;
};

}  // namespace

const char* content_kind_name(ContentKind kind) {
  switch (kind) {
    case ContentKind::kTranscript: return "transcript";
    case ContentKind::kSummary: return "summary";
    case ContentKind::kActionItems: return "action_items";
    case ContentKind::kCrmMatches: return "crm_matches";
  }
  return "unknown";
}

int content_parts_of(const Meeting& m) {
  // parts_sent: what the parser saw (the only record with MeetingCopy::kNone); the strings: what a
  // Meeting built by hand carries.
  return m.parts_sent | (m.transcript_json.empty() ? 0 : content_part(ContentKind::kTranscript)) |
         (m.default_summary_json.empty() ? 0 : content_part(ContentKind::kSummary)) |
         (m.action_items_json.empty() ? 0 : content_part(ContentKind::kActionItems)) |
         (m.crm_matches_json.empty() ? 0 : content_part(ContentKind::kCrmMatches));
}

bool carries_parts(int parts, int of_parts) { return (parts & of_parts) == of_parts; }

bool richer_copy(int parts, int stored_parts) { return carries_parts(parts, stored_parts) && parts != stored_parts; }

namespace {

// Whether upserting m over st needs st's missed parts: m is a richer copy of the same core
// content, and brings only parts an endpoint serves (a copy-only part decides it alone). The
// common copies (the same, or poorer) need no read.
bool needs_missed(const Meeting& m, const MeetingState& st) {
  if (st.missed_known || !st.found || st.content_hash != m.core_hash) return false;
  const int parts = content_parts_of(m);
  return richer_copy(parts, st.content_parts) && (parts & ~st.content_parts & kCopyOnlyParts) == 0;
}

}  // namespace

bool next_version_copy(int parts, const MeetingState& st) {
  return richer_copy(parts, st.content_parts) && (parts & ~st.content_parts & (kCopyOnlyParts | st.missed_parts | st.missed_assumed)) != 0;
}

Result<std::unique_ptr<MeetingStore>> MeetingStore::open(Db& db, Clock& clock) {
  FB_TRY(migrate_sync_schema(db));
  return std::unique_ptr<MeetingStore>(new MeetingStore(db, clock));
}

Result<UpsertResult> MeetingStore::upsert(int64_t integration_id, std::string_view raw_meeting_json,
                                          std::string_view source) {
  FB_ASSIGN(Meeting m, parse_meeting(raw_meeting_json));
  return upsert(integration_id, m, source);
}

Result<UpsertResult> MeetingStore::upsert(int64_t integration_id, const Meeting& m, std::string_view source,
                                          int64_t content_event_id) {
  return upsert(integration_id, m, source, content_event_id, std::nullopt);
}

namespace {

// The UPDATE of a stored meeting whose core content is unchanged, by [swap][bump][mark][guard]:
// swap puts the richer copy in place, bump makes it the next version (SET reads the row's old
// values, so the mark then names content_version+1), mark records it mapped, guard writes only
// while the row is in the state the caller read (hash, version, parts).
const std::string& same_content_sql(bool swap, bool bump, bool mark, bool guard) {
  static const auto* sqls = [] {
    auto* out = new std::array<std::string, 16>();
    for (int i = 0; i < 16; ++i) {
      std::string& sql = (*out)[static_cast<size_t>(i)];
      const bool sw = i & 8, bu = i & 4, ma = i & 2, gu = i & 1;
      sql = "UPDATE sync_meetings SET ";
      if (sw) sql += "raw_json=?, content_event_id=?, content_parts=?, ";
      if (bu) sql += "updated_at=?, content_version=content_version+1, map_error=NULL, map_attempts=0, ";
      sql += "last_seen_at=?, last_source=?";
      if (ma) {
        sql += bu ? ", mapped_version=MAX(mapped_version, content_version+1), mapped_at=?"
                  : ", mapped_version=MAX(mapped_version, content_version), mapped_at=?, map_error=NULL, map_attempts=0";
      }
      sql += " WHERE integration_id=? AND recording_id=?";
      if (gu) sql += " AND content_hash=? AND content_version=? AND content_parts=?";
    }
    return out;
  }();
  return (*sqls)[(swap ? 8 : 0) | (bump ? 4 : 0) | (mark ? 2 : 0) | (guard ? 1 : 0)];
}

// The columns a new meeting or a new content version writes (new_content_sql, insert_new).
constexpr const char* kNewMeetingColumns =
    "integration_id, recording_id, title, meeting_title, url, share_url, created_at, scheduled_start, "
    "scheduled_end, recording_start, recording_end, recorded_by_email, recorded_by_name, recorded_by_team, "
    "invitees_domains_type, transcript_language, invitee_count, external_domains, raw_json, content_hash, "
    "content_version, first_source, last_source, first_seen_at, last_seen_at, updated_at, content_event_id, "
    "content_parts, mapped_version, mapped_at";

// A new meeting, or a new content version: one statement for both (an insert, or on conflict the
// new version); guard: only over the row in the state the caller read (not found: no row).
const std::string& new_content_sql(bool guard) {
  static const std::string kSql =
      std::string("INSERT INTO sync_meetings(") + kNewMeetingColumns + ") "
      "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
      "ON CONFLICT(integration_id, recording_id) DO UPDATE SET title=excluded.title, "
      "meeting_title=excluded.meeting_title, url=excluded.url, share_url=excluded.share_url, "
      "created_at=excluded.created_at, scheduled_start=excluded.scheduled_start, "
      "scheduled_end=excluded.scheduled_end, recording_start=excluded.recording_start, "
      "recording_end=excluded.recording_end, recorded_by_email=excluded.recorded_by_email, "
      "recorded_by_name=excluded.recorded_by_name, recorded_by_team=excluded.recorded_by_team, "
      "invitees_domains_type=excluded.invitees_domains_type, transcript_language=excluded.transcript_language, "
      "invitee_count=excluded.invitee_count, external_domains=excluded.external_domains, "
      "raw_json=excluded.raw_json, content_hash=excluded.content_hash, "
      "content_version=excluded.content_version, map_error=NULL, map_attempts=0, "
      "last_source=excluded.last_source, last_seen_at=excluded.last_seen_at, updated_at=excluded.updated_at, "
      "content_event_id=excluded.content_event_id, content_parts=excluded.content_parts, "
      "mapped_version=MAX(sync_meetings.mapped_version, excluded.mapped_version), "
      "mapped_at=COALESCE(excluded.mapped_at, sync_meetings.mapped_at)";
  static const std::string kGuarded =
      kSql + " WHERE sync_meetings.content_hash=? AND sync_meetings.content_version=?";
  return guard ? kGuarded : kSql;
}

}  // namespace

MeetingState state_after_upsert(MeetingState st, const Meeting& m) {
  const int parts = content_parts_of(m);
  if (st.found && st.content_hash == m.core_hash) {
    if (richer_copy(parts, st.content_parts)) {
      if (next_version_copy(parts, st)) ++st.content_version;
      st.content_parts = parts;
    }
    return st;
  }
  st.found = true;
  st.content_hash = m.core_hash;
  ++st.content_version;
  st.content_parts = parts;
  return st;
}

Result<UpsertResult> MeetingStore::upsert(int64_t integration_id, const Meeting& m, std::string_view source,
                                          int64_t content_event_id, std::optional<int64_t> mapped_at,
                                          const MeetingState* stored) {
  UpsertResult out;
  const int64_t now = clock_.now_s();
  const int parts = content_parts_of(m);
  // By pointer: the body log already holds these bytes, so the row gets none of them.
  const std::string_view raw = content_event_id > 0 ? std::string_view("") : std::string_view(m.raw_json);
  const std::optional<int64_t> pointer = content_event_id > 0 ? std::optional<int64_t>(content_event_id) : std::nullopt;
  // The one write over the stored state st. guarded: only while the row is still in st; false
  // when it was not (nothing written).
  bool marked = false;  // the write records this content mapped at mapped_at
  static const std::optional<int64_t> kNotMapped;
  // mark: mapped_at may be recorded (the row ends holding what was mapped, under its version).
  auto write = [&](MeetingState st, bool guarded, bool mark) -> Result<bool> {
    FB_TRY(read_missed(integration_id, m, st));
    const bool may_mark = mark && mapped_at.has_value();
    bool answers_misses = false;
    out = {};
    out.recording_id = m.recording_id;
    int n = 0;
    auto bind = [&n](Stmt& q, const auto&... v) { (q.bind(++n, v), ...); };
    Stmt* q = nullptr;
    if (st.found && st.content_hash == m.core_hash) {
      // Same core content: keep the stored copy unless this one carries strictly more parts; it
      // is then the next version, mapped again, when it brings what the mapping could not have had.
      const bool swap = richer_copy(parts, st.content_parts);
      const bool bump = next_version_copy(parts, st);
      answers_misses = bump && st.missed_parts != 0;
      out.content_version = st.content_version + (bump ? 1 : 0);
      out.changed = bump;
      out.needs_mapping = bump || st.mapped_version < st.content_version;
      // A poorer copy than the stored one does not mark the stored version mapped.
      marked = may_mark && carries_parts(parts, st.content_parts);
      q = &db_.prepare(same_content_sql(swap, bump, marked, guarded));
      if (swap) bind(*q, raw, pointer, parts);
      if (bump) bind(*q, now);
      bind(*q, now, source);
      if (marked) bind(*q, *mapped_at);
      bind(*q, integration_id, m.recording_id);
      if (guarded) bind(*q, st.content_hash, st.content_version, st.content_parts);
    } else {
      out.created = !st.found;
      out.changed = true;
      out.content_version = st.content_version + 1;
      out.needs_mapping = true;
      marked = may_mark;
      q = &db_.prepare(new_content_sql(guarded));
      const ColumnText t(m);
      bind(*q, integration_id, m.recording_id, t.title, t.meeting_title, t.url, t.share_url, m.created_at_s,
           m.scheduled_start_s, m.scheduled_end_s, m.recording_start_s, m.recording_end_s, t.recorded_by_email,
           t.recorded_by_name, t.recorded_by_team, t.invitees_domains_type, t.transcript_language,
           static_cast<int64_t>(m.calendar_invitees.size()), t.external_domains, raw, m.core_hash,
           out.content_version, source, source, now, now, now, pointer, parts,
           marked ? out.content_version : int64_t{0}, marked ? mapped_at : kNotMapped);
      // Not found: no stored row is in that state, so a row stored meanwhile is left alone.
      if (guarded) bind(*q, st.found ? st.content_hash : std::string(), st.found ? st.content_version : int64_t{0});
    }
    FB_TRY(q->run());
    if (guarded && db_.changes() == 0) return false;
    if (answers_misses) {  // the new version's copy brings what was missed: those misses are answered
      Stmt& d = db_.prepare(
          "DELETE FROM sync_meeting_content WHERE integration_id=? AND recording_id=? AND source='missed'");
      d.bind_all(integration_id, m.recording_id);
      FB_TRY(d.run());
    }
    return true;
  };
  Status s = db_.transaction([&]() -> Status {
    if (stored) {
      FB_ASSIGN(bool wrote, write(*stored, true, true));
      if (wrote) return Status::Ok();
      // Another process wrote the meeting after the caller read it: read it now, as below.
    }
    MeetingState st;
    FB_TRY(read_state(integration_id, m.recording_id, st));
    if (!stored || !mapped_at) return write(st, false, true).status();
    // The mapping ran under the idempotency keys of the version `stored` predicted. It is recorded
    // mapped only when the row ends at that version holding this very copy; otherwise another
    // process's content may hold (or have used) those keys, so the row is left unmapped at a
    // version above them, and the next sync's pending pass maps what is stored under keys of its own.
    const int64_t keyed = state_after_upsert(*stored, m).content_version;
    FB_TRY(read_missed(integration_id, m, st));
    const MeetingState after = state_after_upsert(st, m);
    const bool exact =
        st.content_hash == m.core_hash && after.content_version == keyed && after.content_parts == parts;
    FB_TRY(write(st, false, exact).status());
    if (exact || after.content_version > keyed) return Status::Ok();
    Stmt& u = db_.prepare(
        "UPDATE sync_meetings SET content_version=?, updated_at=?, map_error=NULL, map_attempts=0 "
        "WHERE integration_id=? AND recording_id=? AND content_version<=?");
    u.bind_all(keyed + 1, now, integration_id, m.recording_id, keyed);
    FB_TRY(u.run());
    out.content_version = keyed + 1;
    out.needs_mapping = true;
    return Status::Ok();
  });
  if (!s.ok()) return s.with_context("storing meeting " + std::to_string(m.recording_id));
  if (marked) out.needs_mapping = false;
  return out;
}

Status MeetingStore::read_state(int64_t integration_id, int64_t recording_id, MeetingState& st) {
  Stmt& q = db_.prepare(
      "SELECT content_hash, content_version, mapped_version, content_parts FROM sync_meetings "
      "WHERE integration_id=? AND recording_id=?");
  q.bind_all(integration_id, recording_id);
  return each_row(q, [&](const Stmt& r) {
    st.found = true;
    st.content_hash = r.text(0);
    st.content_version = r.int64(1);
    st.mapped_version = r.int64(2);
    st.content_parts = static_cast<int>(r.int64(3));
  });
}

Status MeetingStore::read_missed(int64_t integration_id, const Meeting& m, MeetingState& st) {
  if (!needs_missed(m, st)) return Status::Ok();
  Stmt& q = db_.prepare(
      "SELECT kind FROM sync_meeting_content WHERE integration_id=? AND recording_id=? AND source='missed'");
  q.bind_all(integration_id, m.recording_id);
  FB_TRY(each_row(q, [&](const Stmt& r) {
    const std::string kind = r.text(0);
    for (ContentKind k : {ContentKind::kTranscript, ContentKind::kSummary}) {  // kFetchableParts
      if (kind == content_kind_name(k)) st.missed_parts |= content_part(k);
    }
  }));
  st.missed_known = true;
  return Status::Ok();
}

Status MeetingStore::complete_state(int64_t integration_id, const Meeting& m, MeetingState& st) {
  if (!needs_missed(m, st)) return Status::Ok();  // no store connection for the common copies
  return db_.with([&] { return read_missed(integration_id, m, st); });
}

Status MeetingStore::note_missed(int64_t integration_id, int64_t recording_id, ContentKind kind) {
  return db_.transaction([&]() -> Status {
    Stmt& q = db_.prepare(
        "INSERT INTO sync_meeting_content(integration_id, recording_id, kind, json, source, fetched_at) "
        "VALUES(?,?,?,'','missed',?) ON CONFLICT(integration_id, recording_id, kind) DO NOTHING");
    q.bind_all(integration_id, recording_id, content_kind_name(kind), clock_.now_s());
    return q.run();
  });
}

Result<MeetingState> MeetingStore::state(int64_t integration_id, int64_t recording_id) {
  MeetingState st;
  FB_TRY(db_.with([&] { return read_state(integration_id, recording_id, st); }));
  return st;
}

Result<std::vector<bool>> MeetingStore::insert_new(const std::vector<NewMeeting>& rows) {
  std::vector<bool> inserted(rows.size(), false);
  if (rows.empty() || db_.engine() != Engine::kPostgres) return inserted;
  // The rows as one JSON array whose members are named as the table's columns, read back with the
  // table's own row type: new_content_sql's values, for a meeting at its first version.
  static const std::string kSql = std::string("INSERT INTO sync_meetings(") + kNewMeetingColumns + ") SELECT " +
                                  kNewMeetingColumns +
                                  " FROM json_populate_recordset(CAST(NULL AS sync_meetings), CAST(? AS JSON))"
                                  " ON CONFLICT(integration_id, recording_id) DO NOTHING"
                                  " RETURNING integration_id, recording_id";
  const int64_t now = clock_.now_s();
  auto opt = [](const std::optional<std::string>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
  std::string list = "[";
  std::map<std::pair<int64_t, int64_t>, size_t> index;  // (integration, recording) -> rows[i]
  for (size_t i = 0; i < rows.size(); ++i) {
    const NewMeeting& r = rows[i];
    const Meeting& m = *r.meeting;
    if (index.count({r.integration_id, m.recording_id})) continue;  // a second copy: upsert() decides it
    // A raw copy with a NUL byte is no JSON (parse_meeting refuses it): upsert() says so, by name.
    if (r.content_event_id <= 0 && m.raw_json.find('\0') != std::string::npos) continue;
    const ColumnText t(m);
    nlohmann::json row = {
        {"integration_id", r.integration_id}, {"recording_id", m.recording_id}, {"title", t.title},
        {"meeting_title", opt(t.meeting_title)}, {"url", t.url}, {"share_url", t.share_url},
        {"created_at", m.created_at_s}, {"scheduled_start", m.scheduled_start_s},
        {"scheduled_end", m.scheduled_end_s}, {"recording_start", m.recording_start_s},
        {"recording_end", m.recording_end_s}, {"recorded_by_email", t.recorded_by_email},
        {"recorded_by_name", t.recorded_by_name}, {"recorded_by_team", opt(t.recorded_by_team)},
        {"invitees_domains_type", t.invitees_domains_type}, {"transcript_language", t.transcript_language},
        {"invitee_count", static_cast<int64_t>(m.calendar_invitees.size())}, {"external_domains", t.external_domains},
        {"raw_json", r.content_event_id > 0 ? std::string() : m.raw_json}, {"content_hash", m.core_hash},
        {"content_version", 1}, {"first_source", r.source}, {"last_source", r.source}, {"first_seen_at", now},
        {"last_seen_at", now}, {"updated_at", now},
        {"content_event_id", r.content_event_id > 0 ? nlohmann::json(r.content_event_id) : nlohmann::json(nullptr)},
        {"content_parts", content_parts_of(m)}, {"mapped_version", r.mapped_at ? 1 : 0},
        {"mapped_at", r.mapped_at ? nlohmann::json(*r.mapped_at) : nlohmann::json(nullptr)}};
    std::string text;
    try {
      text = row.dump();  // strict: a raw copy that is not UTF-8 is upsert()'s to refuse, by name
    } catch (const nlohmann::json::exception&) {
      continue;
    }
    if (list.size() > 1) list += ',';
    list += text;
    index.emplace(std::make_pair(r.integration_id, m.recording_id), i);
  }
  list += ']';
  if (index.empty()) return inserted;
  FB_TRY(db_.transaction([&] {
    Stmt& q = db_.prepare(kSql);
    q.bind(1, list);
    return each_row(q, [&](const Stmt& row) {
      if (auto it = index.find({row.int64(0), row.int64(1)}); it != index.end()) inserted[it->second] = true;
    });
  }));
  return inserted;
}

Result<std::map<int64_t, MeetingState>> MeetingStore::states(int64_t integration_id,
                                                             const std::vector<int64_t>& recording_ids) {
  std::map<int64_t, MeetingState> out;
  if (recording_ids.empty()) return out;
  // The ids as one bound list (a PostgreSQL array, a JSON array for SQLite), so the statement is
  // prepared once whatever the batch's size.
  const bool pg = db_.engine() == Engine::kPostgres;
  std::string list(1, pg ? '{' : '[');
  for (size_t i = 0; i < recording_ids.size(); ++i) {
    if (i) list += ',';
    list += std::to_string(recording_ids[i]);
  }
  list += pg ? '}' : ']';
  FB_TRY(db_.with([&] {
    Stmt& q = db_.prepare(
        pg ? "SELECT recording_id, content_hash, content_version, mapped_version, content_parts FROM sync_meetings "
             "WHERE integration_id=? AND recording_id = ANY(CAST(? AS BIGINT[]))"
            : "SELECT recording_id, content_hash, content_version, mapped_version, content_parts FROM sync_meetings "
              "WHERE integration_id=? AND recording_id IN (SELECT value FROM json_each(?))");
    q.bind_all(integration_id, list);
    return each_row(q, [&](const Stmt& r) {
      MeetingState& st = out[r.int64(0)];
      st.found = true;
      st.content_hash = r.text(1);
      st.content_version = r.int64(2);
      st.mapped_version = r.int64(3);
      st.content_parts = static_cast<int>(r.int64(4));
    });
  }));
  return out;
}

Result<std::string> MeetingStore::resolve(std::string raw_json, int64_t content_event_id) {
  if (content_event_id <= 0) return raw_json;
  if (!loader_) {
    return Status::FailedPrecondition("the meeting's content is webhook event " + std::to_string(content_event_id) +
                                      "'s body, and this store has no content loader");
  }
  return loader_(content_event_id);
}

Result<std::string> MeetingStore::content_json(int64_t integration_id, int64_t recording_id) {
  std::string raw;
  int64_t pointer = 0;
  bool found = false;
  FB_TRY(db_.with([&]() -> Status {
    Stmt& q = db_.prepare("SELECT raw_json, content_event_id FROM sync_meetings WHERE integration_id=? AND recording_id=?");
    q.bind_all(integration_id, recording_id);
    return each_row(q, [&](const Stmt& r) {
      found = true;
      raw = r.text(0);
      pointer = r.opt_int64(1).value_or(0);
    });
  }));
  if (!found) {
    return Status::NotFound("meeting " + std::to_string(recording_id) + " of integration " +
                            std::to_string(integration_id) + " is not stored");
  }
  return resolve(std::move(raw), pointer);
}

Result<StoredMeeting> MeetingStore::get(int64_t integration_id, int64_t recording_id) {
  StoredMeeting out;
  bool found = false;
  FB_TRY(db_.with([&]() -> Status {
    Stmt& q = db_.prepare(std::string("SELECT ") + kMeetingColumns +
                          " FROM sync_meetings WHERE integration_id=? AND recording_id=?");
    q.bind_all(integration_id, recording_id);
    FB_ASSIGN(found, q.step());
    if (found) out = read_meeting(q);
    q.reset();
    return Status::Ok();
  }));
  if (!found) {
    return Status::NotFound("meeting " + std::to_string(recording_id) + " of integration " +
                            std::to_string(integration_id) + " is not stored");
  }
  FB_ASSIGN(out.raw_json, resolve(std::move(out.raw_json), out.content_event_id));
  return out;
}

Result<std::vector<StoredMeeting>> MeetingStore::list(int64_t integration_id, int limit, int offset) {
  return list_where(integration_id, 0, 0, limit, offset);
}

Result<std::vector<StoredMeeting>> MeetingStore::list_created(int64_t integration_id, int64_t since_s,
                                                              int64_t until_s, int limit) {
  return list_where(integration_id, since_s, until_s, limit, 0);
}

Result<std::vector<StoredMeeting>> MeetingStore::list_where(int64_t integration_id, int64_t since_s,
                                                            int64_t until_s, int limit, int offset) {
  std::vector<StoredMeeting> out;
  FB_TRY(db_.with([&]() -> Status {
    Stmt& q = db_.prepare(std::string("SELECT ") + kMeetingColumns +
                          " FROM sync_meetings WHERE integration_id=?1 AND created_at >= ?2 AND (?3 = 0 OR created_at < ?3) "
                          "ORDER BY created_at DESC, recording_id DESC LIMIT ?4 OFFSET ?5");
    q.bind_all(integration_id, since_s, until_s, limit, offset);
    return each_row(q, [&](const Stmt& r) { out.push_back(read_meeting(r)); });
  }));
  for (StoredMeeting& m : out) {
    FB_ASSIGN(m.raw_json, resolve(std::move(m.raw_json), m.content_event_id));
  }
  return out;
}

Result<int64_t> MeetingStore::count(int64_t integration_id) {
  int64_t n = 0;
  FB_TRY(db_.with([&]() -> Status {
    Stmt& q = db_.prepare("SELECT COUNT(*) FROM sync_meetings WHERE integration_id=?");
    q.bind(1, integration_id);
    FB_ASSIGN(bool row, q.step());
    if (row) n = q.int64(0);
    q.reset();
    return Status::Ok();
  }));
  return n;
}

Result<std::vector<int64_t>> MeetingStore::unmapped(int64_t integration_id, int limit) {
  return select_unmapped(db_, integration_id, limit);
}

Result<std::optional<std::string>> MeetingStore::cached_content(int64_t integration_id, int64_t recording_id,
                                                                ContentKind kind) {
  std::optional<std::string> out;
  int parts = 0;
  FB_TRY(db_.with([&]() -> Status {
    Stmt& p = db_.prepare("SELECT content_parts FROM sync_meetings WHERE integration_id=? AND recording_id=?");
    p.bind_all(integration_id, recording_id);
    Status read = each_row(p, [&](const Stmt& r) { parts = static_cast<int>(r.int64(0)); });
    if (!read.ok()) return read;
    if (parts & content_part(kind)) return Status::Ok();  // the meeting's own copy has it
    Stmt& q = db_.prepare(
        "SELECT json FROM sync_meeting_content WHERE integration_id=? AND recording_id=? AND kind=? "
        "AND source<>'missed'");
    q.bind_all(integration_id, recording_id, content_kind_name(kind));
    return each_row(q, [&](const Stmt& r) { out = r.text(0); });
  }));
  if (!(parts & content_part(kind))) return out;
  FB_ASSIGN(std::string raw, content_json(integration_id, recording_id));
  FB_ASSIGN(Meeting m, parse_meeting(raw));
  switch (kind) {
    case ContentKind::kTranscript: out = std::move(m.transcript_json); break;
    case ContentKind::kSummary: out = std::move(m.default_summary_json); break;
    case ContentKind::kActionItems: out = std::move(m.action_items_json); break;
    case ContentKind::kCrmMatches: out = std::move(m.crm_matches_json); break;
  }
  return out;
}

Status MeetingStore::put_content(int64_t integration_id, int64_t recording_id, ContentKind kind,
                                 std::string_view json, std::string_view source) {
  return db_.transaction([&]() -> Status {
    Stmt& q = db_.prepare(
        "INSERT INTO sync_meeting_content(integration_id, recording_id, kind, json, source, fetched_at) "
        "VALUES(?,?,?,?,?,?) ON CONFLICT(integration_id, recording_id, kind) DO UPDATE SET "
        "json=excluded.json, source=excluded.source, fetched_at=excluded.fetched_at");
    q.bind_all(integration_id, recording_id, content_kind_name(kind), json, source, clock_.now_s());
    return q.run();
  });
}

}  // namespace fb::detail
