// refuse_meetings: a store that will not hold some meetings, on either engine, through a trigger on
// sync_meetings that raises on their INSERT. Either the way a real store refuses a row by one of
// its rules (a constraint: the row's fault), or the way one fails for reasons of its own (full:
// the store's fault, which may pass). For the tests of "one bad item never blocks the rest".
#pragma once

#include <boost/test/unit_test.hpp>
#include <optional>
#include <string>

#include "store/db.h"
#include "support/temp_dir.h"

namespace fb::test {

enum class StoreFault {
  kRefuses,  // a rule: SQLite's RAISE(ABORT) (SQLITE_CONSTRAINT), PostgreSQL's check_violation (23514)
  kFails,    // the store's own: SQLite a runtime error (SQLITE_ERROR), PostgreSQL disk_full (53100)
};

// A trigger that makes the INSERT of the meetings of `recordings` (all when empty) fail with `fault`.
// A refusal's message quotes 4 KB of "the row", as PostgreSQL's DETAIL of a refused row does.
// One trigger of each kind at a time; accept_meetings takes them away.
inline void refuse_meetings(detail::Db& db, const std::string& recordings, StoreFault fault = StoreFault::kRefuses) {
  const std::string when = recordings.empty() ? "true" : "NEW.recording_id IN (" + recordings + ")";
  const bool refuses = fault == StoreFault::kRefuses;
  const std::string name = refuses ? "refuse_meeting" : "fail_meeting";
  const std::string sql =
      store_engine_is_postgres()
          ? "CREATE OR REPLACE FUNCTION " + name + "() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN IF " + when +
                " THEN RAISE EXCEPTION " +
                (refuses ? "''the store refuses meeting %'', NEW.recording_id USING ERRCODE = ''check_violation'', "
                           "DETAIL = ''Failing row contains ('' || repeat(''x'', 4000) || '')''"
                         : "''the store is full (meeting %)'', NEW.recording_id USING ERRCODE = ''disk_full''") +
                "; END IF; RETURN NEW; END';"
                "CREATE TRIGGER " + name + " BEFORE INSERT ON sync_meetings FOR EACH ROW EXECUTE FUNCTION " + name +
                "()"
          : "CREATE TRIGGER " + name + " BEFORE INSERT ON sync_meetings WHEN " + when + " BEGIN " +
                (refuses ? "SELECT RAISE(ABORT, 'the store refuses the meeting; failing row (" + std::string(4000, 'x') +
                               ")');"
                         : "SELECT json('the store is full');") +  // "malformed JSON": SQLITE_ERROR
                " END";
  BOOST_REQUIRE(db.with([&] { return db.exec(sql); }).ok());
}

// Takes refuse_meetings' triggers away again: both, or the one of `fault`.
inline void accept_meetings(detail::Db& db, std::optional<StoreFault> fault = std::nullopt) {
  const std::string on = store_engine_is_postgres() ? " ON sync_meetings" : "";
  std::string sql;
  if (fault != StoreFault::kFails) sql += "DROP TRIGGER IF EXISTS refuse_meeting" + on + ";";
  if (fault != StoreFault::kRefuses) sql += "DROP TRIGGER IF EXISTS fail_meeting" + on + ";";
  BOOST_REQUIRE(db.with([&] { return db.exec(sql); }).ok());
}

}  // namespace fb::test
