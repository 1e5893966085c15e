// meeting_store.h: the meetings repository shared by sync and the webhook workers.
//
// One row per (integration_id, recording_id) in sync_meetings: where the Meeting JSON is, the
// columns the CRM needs, a content hash and two versions:
//   content_version  starts at 1 and grows by one each time the meeting's core content changes,
//                    or a richer copy brings what its mapping could not have had (see below);
//   mapped_version   the highest content_version the mapping pipeline accepted (0 = never).
// The hash covers the core fields only (Meeting::core_hash): the include_* parts (transcript,
// default_summary, action_items, crm_matches) are left out, because OAuth list calls omit them
// while webhook payloads carry them, so the same meeting delivered by webhook and then listed by
// sync is one version.
//
// Content once (issue 11): the meeting's JSON is on disk in exactly one place. A webhook
// delivery's meeting stays in the webhook body log: the row keeps a pointer (content_event_id, the
// webhook_inbox row whose body it is) and raw_json is ''. A meeting from sync (or an upsert
// without a pointer) is written once into raw_json. content_parts records which include_* parts
// that copy carries; cached_content() reads a part out of it, and sync_meeting_content holds only
// what the API's own endpoints returned (put_content). When the hash is unchanged the stored
// content is kept (a later, poorer copy never replaces a richer one) and only last_seen_at and
// last_source move, unless the new copy carries strictly more parts: then it replaces the stored
// copy. It is also the next content version, mapped again, when it brings a part the mapping of
// the stored copy could not have had: action items or CRM matches (no endpoint serves them), or a
// transcript or summary the mapping asked the API for and did not get (note_missed: a summary not
// yet written when a sync mapped the meeting, which the webhook then brings). A richer copy that
// brings only what the mapping could fetch (and did, or never asked for) maps nothing again. A
// copy lacking a part of the stored one never maps the stored version (it is not that content),
// and never marks it mapped.
//
// Thread-safe: every method runs in Db::transaction (nesting joins an outer transaction, so a
// caller may upsert a whole page and its checkpoint atomically).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "fathom/models.h"
#include "fathom_bridge/status.h"
#include "store/db.h"

namespace fb::detail {

struct UpsertResult {
  int64_t recording_id = 0;
  int64_t content_version = 0;
  bool created = false;  // first time this integration saw the meeting
  bool changed = false;  // created, or the core content differs from what was stored
  bool needs_mapping = false;  // mapped_version < content_version after the upsert
};

struct StoredMeeting {
  int64_t integration_id = 0;
  int64_t recording_id = 0;
  std::string title;
  std::optional<std::string> meeting_title;
  std::string url, share_url;
  int64_t created_at = 0;  // Unix seconds
  int64_t scheduled_start = 0, scheduled_end = 0, recording_start = 0, recording_end = 0;
  std::string recorded_by_email, recorded_by_name;
  std::optional<std::string> recorded_by_team;
  std::string invitees_domains_type;  // calendar_invitees_domains_type
  std::string transcript_language;
  int64_t invitee_count = 0;
  std::string external_domains;  // comma-separated, sorted, distinct email domains of external invitees
  std::string raw_json;           // resolved through the content loader when the body log has it
  int64_t content_event_id = 0;   // >0: the content is that webhook_inbox row's body
  int content_parts = 0;          // ContentPart bits of the stored copy
  std::string content_hash;
  int64_t content_version = 0;
  int64_t mapped_version = 0;
  int64_t mapped_at = 0;
  std::optional<std::string> map_error;  // why the last mapping attempt failed
  int64_t map_attempts = 0;              // failed attempts since the last success or change
  std::string first_source, last_source;  // "sync", "webhook", ...
  int64_t first_seen_at = 0, last_seen_at = 0, updated_at = 0;
};

enum class ContentKind { kTranscript, kSummary, kActionItems, kCrmMatches };
const char* content_kind_name(ContentKind kind);  // "transcript", "summary", "action_items", "crm_matches"
// A part as a bit of content_parts.
constexpr int content_part(ContentKind kind) { return 1 << static_cast<int>(kind); }
// The parts an API endpoint serves (GET /recordings/{id}/transcript and /summary); the others come
// only in a copy of the meeting (a listing or a webhook).
constexpr int kFetchableParts = content_part(ContentKind::kTranscript) | content_part(ContentKind::kSummary);
constexpr int kCopyOnlyParts = content_part(ContentKind::kActionItems) | content_part(ContentKind::kCrmMatches);
// The include_* parts a parsed meeting carries, as bits (content_part).
int content_parts_of(const Meeting& m);
// Whether a copy with `parts` carries every part of one with `of_parts`.
bool carries_parts(int parts, int of_parts);
// Whether it carries strictly more: a richer copy of the same core content.
bool richer_copy(int parts, int stored_parts);

// What the batch path reads about a stored meeting before it maps (MeetingDispatcher::map_batch).
struct MeetingState {
  bool found = false;
  std::string content_hash;
  int64_t content_version = 0;
  int64_t mapped_version = 0;
  int content_parts = 0;  // ContentPart bits of the stored copy
  // Parts a mapping asked the API for and did not get (MeetingStore::note_missed); read only when
  // a richer copy needs it (MeetingStore::complete_state), missed_known then true.
  int missed_parts = 0;
  bool missed_known = false;
  // Parts a mapping of this batch not yet run may ask for and not get (prepare_batch): counted as
  // missed for a later copy in the same batch.
  int missed_assumed = 0;
};

// Whether a copy with `parts` of the stored meeting st (same core content) is its next version:
// richer, and bringing a part the mapping of st's copy could not have had (st's missed parts read).
bool next_version_copy(int parts, const MeetingState& st);

// The state of a meeting's row after upserting m over `stored` (the content that upsert keeps:
// a new version when the hash differs or m is a richer copy, else the stored copy). The mapped
// version is left as it was.
MeetingState state_after_upsert(MeetingState stored, const Meeting& m);

// Gives back the body of a webhook_inbox row (the webhook body log), for meetings stored by
// pointer. Set by whoever wires the inbox to the store (the Bridge, tests).
using ContentLoader = std::function<Result<std::string>(int64_t inbox_event_id)>;

class MeetingStore {
 public:
  // Applies the "sync" migrations. db and clock must outlive the store.
  static Result<std::unique_ptr<MeetingStore>> open(Db& db, Clock& clock);

  // Parses the Meeting JSON (errors name the field), then inserts or updates the row and caches
  // any include_* parts the payload carries. `source` is "sync", "webhook", ... (recorded only).
  Result<UpsertResult> upsert(int64_t integration_id, std::string_view raw_meeting_json, std::string_view source);
  // Same, for a meeting already parsed (its raw_json and core_hash are used). With
  // content_event_id > 0 the JSON is not written: the row points at that inbox row's body.
  Result<UpsertResult> upsert(int64_t integration_id, const Meeting& meeting, std::string_view source,
                              int64_t content_event_id = 0);
  // Same, and, with mapped_at, records in the same statement that this content was mapped at
  // mapped_at (seconds): mapped_version rises to the content version, map_error and map_attempts
  // are cleared (the batch path records a mapped meeting with one statement, not two).
  // With `stored`, the state the caller has just read (state(), then its own earlier upserts of
  // the same recording applied: MeetingDispatcher::prepare_batch) the upsert does not read the row
  // again: its one write is conditional on the row still being in that state, and only when another
  // process has changed it meanwhile is the row read and written again, as without `stored`; the
  // mapping (run under the keys of the version `stored` predicted) is then recorded only when the
  // row ends at that version holding this very copy, else the row is left unmapped at a version
  // above those keys (the next sync's pending pass maps it under keys of its own).
  Result<UpsertResult> upsert(int64_t integration_id, const Meeting& meeting, std::string_view source,
                              int64_t content_event_id, std::optional<int64_t> mapped_at,
                              const MeetingState* stored = nullptr);
  // A meeting the caller read as not stored (MeetingDispatcher::prepare_batch), for insert_new.
  struct NewMeeting {
    int64_t integration_id = 0;
    const Meeting* meeting = nullptr;
    std::string_view source;
    int64_t content_event_id = 0;        // > 0: by pointer, as upsert()
    std::optional<int64_t> mapped_at;    // recorded mapped at its first version, as upsert()
  };
  // Inserts such meetings with one statement on PostgreSQL (a batch's round trip, not one per
  // meeting); [i] is true when rows[i] was inserted as upsert() with a not-found state would have.
  // A meeting another process stored meanwhile is left alone (false), as is one this statement
  // cannot carry (a NUL character): the caller upserts those one by one. On SQLite, where a
  // statement costs no round trip and upsert() is one statement, it inserts nothing (all false).
  // Inside the caller's transaction.
  Result<std::vector<bool>> insert_new(const std::vector<NewMeeting>& rows);
  // The stored hash, versions and parts (found = false when the meeting is not stored). A read.
  Result<MeetingState> state(int64_t integration_id, int64_t recording_id);
  // state() of several meetings of one integration in one statement (a batch's reads: one round
  // trip on PostgreSQL, not one per meeting), by recording id; a meeting not stored is absent.
  Result<std::map<int64_t, MeetingState>> states(int64_t integration_id, const std::vector<int64_t>& recording_ids);
  // Reads into st what upserting m over it needs beyond state(): the missed parts, when m is a
  // richer copy that only they decide. Cheap when not needed (no read).
  Status complete_state(int64_t integration_id, const Meeting& m, MeetingState& st);
  // A mapping asked the API for this part of the meeting and did not get it (not written yet, or
  // the call failed): a later copy that carries it is a new version (see the top of this file).
  Status note_missed(int64_t integration_id, int64_t recording_id, ContentKind kind);

  // Where meetings stored by pointer are read from (thread-safe to call once before use).
  void set_content_loader(ContentLoader loader) { loader_ = std::move(loader); }
  // The meeting's JSON from wherever it is stored (kNotFound, or the loader's error).
  Result<std::string> content_json(int64_t integration_id, int64_t recording_id);

  // kNotFound when the integration has no such meeting.
  Result<StoredMeeting> get(int64_t integration_id, int64_t recording_id);
  // Newest first (created_at desc), at most limit rows from offset.
  Result<std::vector<StoredMeeting>> list(int64_t integration_id, int limit = 100, int offset = 0);
  // The same for the meetings created in [since_s, until_s) (Unix seconds; 0: open), newest first.
  Result<std::vector<StoredMeeting>> list_created(int64_t integration_id, int64_t since_s, int64_t until_s, int limit);
  Result<int64_t> count(int64_t integration_id);
  // Recording ids with mapped_version < content_version, oldest first.
  Result<std::vector<int64_t>> unmapped(int64_t integration_id, int limit = 1000);

  // A part of the meeting: from the stored meeting's own copy when it carries it, else from what
  // the API returned earlier (put_content). nullopt on a miss.
  Result<std::optional<std::string>> cached_content(int64_t integration_id, int64_t recording_id, ContentKind kind);
  Status put_content(int64_t integration_id, int64_t recording_id, ContentKind kind, std::string_view json,
                     std::string_view source);

  Db& db() { return db_; }

 private:
  // list() and list_created(): created_at in [since_s, until_s) (0: open).
  Result<std::vector<StoredMeeting>> list_where(int64_t integration_id, int64_t since_s, int64_t until_s, int limit,
                                                int offset);
  MeetingStore(Db& db, Clock& clock) : db_(db), clock_(clock) {}
  // The row's hash, versions and parts into st (left as it is when not found). REQUIRES: inside
  // db_.with() or db_.transaction().
  Status read_state(int64_t integration_id, int64_t recording_id, MeetingState& st);
  Status read_missed(int64_t integration_id, const Meeting& m, MeetingState& st);
  // raw_json of a row, or its pointer resolved through the loader.
  Result<std::string> resolve(std::string raw_json, int64_t content_event_id);

  Db& db_;
  Clock& clock_;
  ContentLoader loader_;
};

}  // namespace fb::detail
