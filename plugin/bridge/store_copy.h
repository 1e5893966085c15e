// store_copy.h: moves a single-host installation to PostgreSQL (issue 12): every component's
// tables of a SQLite store, with the webhook bodies of its body log, into an empty PostgreSQL
// database. `fathom-bridge store copy --from PATH --to URL` is its command.
//
// What it does, in order:
//   1. Opens both stores and applies every component's migrations to both (the source as a
//      `Bridge::open` would; the target gets the tables), so their columns line up.
//   2. In ONE transaction on the target (holding the fleet's write lock) and one write transaction
//      on the source (no writer changes it meanwhile): refuses a target whose tables hold any row,
//      copies every table's rows with their ids, moves each webhook body kept in the body log
//      (plugin/webhooks/body_log.h) into its row (PostgreSQL keeps bodies inline), and advances
//      every id sequence past the highest id the source ever gave.
// Sealed values (tokens, API keys, webhook secrets) are copied as they are: the target is opened
// with the same tokens.key. Any failure rolls the target back to empty; the source is only migrated.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fathom_bridge/status.h"
#include "store/db.h"

namespace fb::detail {

struct TableCopy {
  std::string table;
  int64_t rows = 0;
};

struct StoreCopyReport {
  std::vector<TableCopy> tables;  // every table of the source, by name, with the rows copied
  int64_t bodies_moved = 0;       // webhook bodies read from the body log into their rows
  int64_t sequences_set = 0;      // id sequences advanced on the target
  int64_t texts_mended = 0;       // text values with a NUL or bytes not UTF-8, stored with U+FFFD
  int64_t total_rows() const;
};

// Applies the migrations of every component a Bridge opens (oauth, sync, webhooks, events,
// scripting, script_versions). Idempotent.
Status migrate_every_component(Db& db);

// Copies the SQLite store at `from_path` (which must exist) into the empty PostgreSQL database at
// `to_url`. kInvalidArgument for a wrong kind of store, kFailedPrecondition when the target holds
// rows (naming a table that does), kIo/kUnavailable naming the store otherwise.
Result<StoreCopyReport> copy_store(const std::string& from_path, const std::string& to_url, DbOptions options = {});

}  // namespace fb::detail
