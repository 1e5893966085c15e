// pg_dialect.h: the PostgreSQL driver's translation of the stores' SQL (see README.md, "What the
// PostgreSQL driver translates"). Internal to the driver; a function of its own so it is tested on
// its own (tests/core/pg_dialect_test.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace fb::detail {

// The fleet's write lock: an immediate transaction takes pg_advisory_xact_lock(kFleetWriteLockKey)
// (pg_db.cpp), one writer at a time in the whole fleet. A writer that orders its own writes with
// finer locks may hold it shared instead (pg_advisory_xact_lock_shared): then it waits for, and
// holds off, the immediate transactions, but not the other shared holders (the webhook inbox's
// batch recordings, plugin/webhooks/inbox.cpp).
inline constexpr int64_t kFleetWriteLockKey = 7378415037781537893;

// Rewrites one or more SQLite-dialect statements for PostgreSQL: `?` placeholders become $1, $2,
// ... and `?NNN` becomes $NNN (the highest number goes into *params when given); INTEGER PRIMARY KEY [AUTOINCREMENT] becomes BIGSERIAL
// PRIMARY KEY, INTEGER BIGINT, BLOB BYTEA, REAL DOUBLE PRECISION; WITHOUT ROWID goes; the scalar
// two-argument MAX(a, b) / MIN(a, b) become GREATEST / LEAST (the one-argument aggregates stay).
// String literals, quoted identifiers and comments are copied unchanged.
std::string to_postgres_sql(std::string_view sql, int* params = nullptr);

// The URL (any scheme://user:password@host, or key=value form) with its password replaced by ***,
// for messages: the driver names its store with it, and so does anything that echoes a URL back.
std::string redact_url(const std::string& url);

}  // namespace fb::detail
