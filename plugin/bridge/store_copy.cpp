#include "bridge/store_copy.h"

#include <sys/stat.h>

#include <algorithm>

#include "core/utf8.h"
#include "events/event_store.h"
#include "oauth/schema.h"
#include "scripting/script_store.h"
#include "scripting/script_versions.h"
#include "store/pg_dialect.h"
#include "sync/sync_schema.h"
#include "webhooks/body_log.h"
#include "webhooks/inbox.h"
#include "webhooks/schema.h"

namespace fb::detail {
namespace {

// Names come from the stores' own schemas; anything else is refused rather than quoted.
bool plain_identifier(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

enum class Kind { kInt, kReal, kText, kBlob };

struct Column {
  std::string name;
  Kind kind = Kind::kText;
  std::string sequence;  // the column's id sequence on the target ("" when none)
};

Kind kind_of(const std::string& pg_type) {
  if (pg_type == "bigint" || pg_type == "integer" || pg_type == "smallint") return Kind::kInt;
  if (pg_type == "double precision" || pg_type == "real" || pg_type == "numeric") return Kind::kReal;
  if (pg_type == "bytea") return Kind::kBlob;
  return Kind::kText;
}

Result<std::vector<std::string>> source_tables(Db& src) {
  std::vector<std::string> out;
  FB_TRY(src.with([&]() -> Status {
    Stmt& q = src.prepare(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
        "AND name <> 'schema_migrations' ORDER BY name");
    return each_row(q, [&](const Stmt& r) { out.push_back(r.text(0)); });
  }));
  for (const auto& t : out) {
    if (!plain_identifier(t)) return Status::InvalidArgument("store copy: unexpected table name '" + t + "' in the source");
  }
  return out;
}

Result<std::vector<std::string>> source_columns(Db& src, const std::string& table) {
  std::vector<std::string> out;
  FB_TRY(src.with([&]() -> Status {
    Stmt& q = src.prepare("SELECT name FROM pragma_table_info(?) ORDER BY cid");
    q.bind(1, table);
    return each_row(q, [&](const Stmt& r) { out.push_back(r.text(0)); });
  }));
  return out;
}

// The target's columns of `table` that the source has too, typed by the target. A source column
// the target lacks would be lost: refused.
Result<std::vector<Column>> copied_columns(Db& dst, const std::string& table, const std::vector<std::string>& from) {
  std::vector<Column> target;
  FB_TRY(dst.with([&]() -> Status {
    Stmt& q = dst.prepare(
        "SELECT column_name, data_type, pg_get_serial_sequence(quote_ident(table_name), column_name) "
        "FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? "
        "ORDER BY ordinal_position");
    q.bind(1, table);
    return each_row(q, [&](const Stmt& r) { target.push_back({r.text(0), kind_of(r.text(1)), r.text(2)}); });
  }));
  if (target.empty()) {
    return Status::FailedPrecondition("store copy: table " + table + " of the source has no counterpart in the target "
                                      "(no component of this version creates it)");
  }
  std::vector<Column> out;
  for (const std::string& name : from) {
    auto it = std::find_if(target.begin(), target.end(), [&](const Column& c) { return c.name == name; });
    if (it == target.end()) {
      return Status::FailedPrecondition("store copy: column " + table + "." + name + " of the source has no "
                                        "counterpart in the target");
    }
    if (!plain_identifier(name)) return Status::InvalidArgument("store copy: unexpected column name '" + name + "'");
    out.push_back(*it);
  }
  return out;
}

std::string joined(const std::vector<Column>& cols, const char* each) {
  std::string s;
  for (size_t i = 0; i < cols.size(); ++i) {
    if (i) s += ", ";
    s += each ? each : "\"" + cols[i].name + "\"";
  }
  return s;
}

int index_of(const std::vector<Column>& cols, const char* name) {
  for (size_t i = 0; i < cols.size(); ++i) {
    if (cols[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

// Moves the webhook_inbox row's body out of the body log: `body` gets the bytes and the reference
// columns become NULL (the PostgreSQL inbox keeps bodies inline).
struct BodyMover {
  BodyLog* log = nullptr;
  int id = -1, integration = -1, webhook = -1, body = -1, segment = -1, offset = -1, length = -1;
  explicit BodyMover(const std::vector<Column>& cols)
      : id(index_of(cols, "id")), integration(index_of(cols, "integration_id")), webhook(index_of(cols, "webhook_id")),
        body(index_of(cols, "body")), segment(index_of(cols, "body_segment")), offset(index_of(cols, "body_offset")),
        length(index_of(cols, "body_length")) {}
  bool applies() const { return id >= 0 && integration >= 0 && webhook >= 0 && body >= 0 && segment >= 0 && offset >= 0 && length >= 0; }
};

}  // namespace

int64_t StoreCopyReport::total_rows() const {
  int64_t n = 0;
  for (const auto& t : tables) n += t.rows;
  return n;
}

Status migrate_every_component(Db& db) {
  FB_TRY(migrate_oauth_schema(db));
  FB_TRY(migrate_sync_schema(db));
  FB_TRY(migrate_webhooks(db));
  FB_TRY(migrate_events(db));
  FB_TRY(ScriptStore::open(&db).status());
  FB_TRY(ScriptVersionStore::open(&db).status());
  return Status::Ok();
}

Result<StoreCopyReport> copy_store(const std::string& from_path, const std::string& to_url, DbOptions options) {
  if (Db::is_postgres_url(from_path)) {
    return Status::InvalidArgument("store copy: --from must be the SQLite file of a single-host installation, not " +
                                   std::string(from_path.rfind("postgres", 0) == 0 ? "a PostgreSQL URL" : from_path));
  }
  if (!Db::is_postgres_url(to_url)) {
    return Status::InvalidArgument("store copy: --to must be a postgresql:// URL (got '" + redact_url(to_url) + "')");
  }
  struct stat st {};
  if (from_path == ":memory:" || stat(from_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Status::NotFound("store copy: no SQLite store at " + from_path);
  }
  FB_ASSIGN(auto src, Db::open(from_path, options));
  FB_ASSIGN(auto dst, Db::open(to_url, options));
  FB_TRY(migrate_every_component(*src).with_context("store copy: migrating the source " + src->path()));
  FB_TRY(migrate_every_component(*dst).with_context("store copy: migrating the target " + dst->path()));
  FB_ASSIGN(std::vector<std::string> tables, source_tables(*src));

  const std::string body_dir = default_body_dir(from_path);
  BodyLog bodies({.dir = body_dir});
  StoreCopyReport report;
  // The source's write lock first: nothing changes it while it is read (a host still running on it
  // waits); then the target's, for the emptiness check and every row, as one transaction.
  Status copied = src->transaction([&]() -> Status {
    return dst->transaction([&]() -> Status {
      for (const std::string& t : tables) {
        auto q = dst->prepare_uncached("SELECT COUNT(*) FROM " + t);
        if (!q.ok()) return q.status().with_context("store copy: the target has no table " + t);
        FB_ASSIGN(bool row, q->step());
        if (row && q->int64(0) > 0) {
          return Status::FailedPrecondition("store copy: the target " + dst->path() + " is not empty (table " + t +
                                            " holds " + std::to_string(q->int64(0)) +
                                            " rows); copy into a new, empty database");
        }
      }
      for (const std::string& t : tables) {
        FB_ASSIGN(std::vector<std::string> names, source_columns(*src, t));
        FB_ASSIGN(std::vector<Column> cols, copied_columns(*dst, t, names));
        BodyMover mover(cols);
        const bool inbox = t == "webhook_inbox" && mover.applies();
        FB_ASSIGN(Stmt read, src->prepare_uncached("SELECT " + joined(cols, nullptr) + " FROM " + t));
        FB_ASSIGN(Stmt write, dst->prepare_uncached("INSERT INTO " + t + "(" + joined(cols, nullptr) + ") VALUES(" +
                                                    joined(cols, "?") + ")"));
        TableCopy tc{t, 0};
        std::vector<int64_t> highest(cols.size(), 0);
        Status failed;  // the first failure; the rest of the rows are then skipped
        Status rows = each_row(read, [&](const Stmt& r) {
          if (!failed.ok()) return;
          std::string moved;
          bool from_log = inbox && !r.is_null(mover.segment);
          if (from_log) {
            BodyRef ref{r.text(mover.segment), r.int64(mover.offset), r.int64(mover.length)};
            std::string webhook_id = r.text(mover.webhook);
            Status s = bodies.read(ref, {r.int64(mover.integration), webhook_id}, r.int64(mover.id), &moved);
            if (!s.ok()) {
              failed = Status(s.code(), "store copy: the body of webhook event " + std::to_string(r.int64(mover.id)) +
                                            " cannot be read from " + body_dir + ": " + s.message());
              return;
            }
            ++report.bodies_moved;
          }
          for (size_t i = 0; i < cols.size(); ++i) {
            const int b = static_cast<int>(i) + 1;
            if (from_log && (b - 1 == mover.segment || b - 1 == mover.offset || b - 1 == mover.length)) {
              write.bind(b, nullptr);
            } else if (from_log && b - 1 == mover.body) {
              write.bind_blob(b, moved);
            } else if (r.is_null(static_cast<int>(i))) {
              write.bind(b, nullptr);
            } else {
              switch (cols[i].kind) {
                case Kind::kInt: {
                  int64_t v = r.int64(static_cast<int>(i));
                  highest[i] = std::max(highest[i], v);
                  write.bind(b, v);
                  break;
                }
                case Kind::kReal: write.bind(b, r.real(static_cast<int>(i))); break;
                case Kind::kBlob: write.bind_blob(b, r.blob(static_cast<int>(i))); break;
                case Kind::kText: {
                  // SQLite holds text PostgreSQL cannot (a NUL, bytes that are not UTF-8), as a
                  // meeting's title stored by an earlier version: stored with U+FFFD, and counted.
                  std::string v = r.text(static_cast<int>(i));
                  std::string mended = utf8_text(v);
                  if (mended != v) ++report.texts_mended;
                  write.bind(b, mended);
                  break;
                }
              }
            }
          }
          failed = write.run().with_context("store copy: writing a row of " + t + " into the target");
          ++tc.rows;
        });
        FB_TRY(rows.with_context("store copy: reading " + t + " from the source"));
        FB_TRY(failed);
        report.tables.push_back(tc);
        // Ids the target gives from now on follow the highest the source ever gave (SQLite's
        // AUTOINCREMENT remembers deleted ones too).
        for (size_t i = 0; i < cols.size(); ++i) {
          if (cols[i].sequence.empty()) continue;
          int64_t next = highest[i];
          if (cols[i].name == "id") {
            FB_ASSIGN(int64_t given, src->highest_id_given(t));
            next = std::max(next, given);
          }
          if (next <= 0) continue;
          FB_ASSIGN(Stmt set, dst->prepare_uncached("SELECT setval(CAST(? AS regclass), ?)"));
          set.bind_all(cols[i].sequence, next);
          FB_TRY(set.step().status());
          set.reset();
          ++report.sequences_set;
        }
      }
      return Status::Ok();
    });
  });
  FB_TRY(copied);
  return report;
}

}  // namespace fb::detail
