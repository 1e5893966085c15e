// refuse_meetings: a store that will not hold some meetings, the way a real one may refuse a row
// (a constraint, a value it cannot store): a trigger on sync_meetings raises on their INSERT, on
// either engine. For the tests of "one bad item never blocks the rest".
#pragma once

#include <boost/test/unit_test.hpp>
#include <string>

#include "store/db.h"
#include "support/temp_dir.h"

namespace fb::test {

// A trigger that refuses to store the meetings of `recordings` (all when empty), as a store refuses
// a meeting it cannot hold, or one that is full.
inline void refuse_meetings(detail::Db& db, const std::string& recordings) {
  const std::string when = recordings.empty() ? "true" : "NEW.recording_id IN (" + recordings + ")";
  const std::string sql =
      store_engine_is_postgres()
          ? "CREATE OR REPLACE FUNCTION refuse_meeting() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN IF " + when +
                " THEN RAISE EXCEPTION ''the store refuses meeting %'', NEW.recording_id; END IF; RETURN NEW; END';"
                "CREATE TRIGGER refuse_meeting BEFORE INSERT ON sync_meetings FOR EACH ROW EXECUTE FUNCTION "
                "refuse_meeting()"
          : "CREATE TRIGGER refuse_meeting BEFORE INSERT ON sync_meetings WHEN " + when +
                " BEGIN SELECT RAISE(ABORT, 'the store refuses the meeting'); END";
  BOOST_REQUIRE(db.with([&] { return db.exec(sql); }).ok());
}

// Takes refuse_meetings' trigger away again.
inline void accept_meetings(detail::Db& db) {
  const std::string sql = store_engine_is_postgres() ? "DROP TRIGGER refuse_meeting ON sync_meetings"
                                                     : "DROP TRIGGER refuse_meeting";
  BOOST_REQUIRE(db.with([&] { return db.exec(sql); }).ok());
}

}  // namespace fb::test
