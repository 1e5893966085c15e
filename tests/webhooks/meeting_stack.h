// meeting_stack.h: the webhook processing stack as the Bridge has it, over a real store: the
// inbox with its body log (SQLite; bodies in the rows on PostgreSQL), and a MeetingStore + MeetingDispatcher on the inbox's connection that
// read meetings stored by pointer from it. For the batch and stuck-worker tests; and a store that
// refuses meetings (refuse_meetings).
#pragma once

#include <memory>
#include <string>

#include "fixture.h"
#include "sync/meeting_dispatcher.h"
#include "sync/meeting_store.h"
#include "webhooks/meeting_handler.h"

namespace fb::test {

struct MeetingStack {
  explicit MeetingStack(detail::Clock& clock) : web(clock) {
    web.receiver.reset();
    web.inbox.reset();
    detail::InboxOptions io;
    if (web.db->engine() == detail::Engine::kSqlite) io.body_dir = detail::default_body_dir(web.db->path());
    web.inbox = std::make_unique<detail::Inbox>(*web.db, clock, io);
    auto st = detail::MeetingStore::open(*web.db, clock);
    BOOST_REQUIRE(st.ok());
    store = std::move(*st);
    auto d = detail::MeetingDispatcher::open(*web.db, clock);
    BOOST_REQUIRE(d.ok());
    dispatcher = std::move(*d);
    store->set_content_loader(detail::inbox_content_loader(*web.inbox));
    dispatcher->set_content_loader(detail::inbox_content_loader(*web.inbox));
  }

  WebhookStack web;
  std::unique_ptr<detail::MeetingStore> store;
  std::unique_ptr<detail::MeetingDispatcher> dispatcher;
};

// A trigger that refuses to store the meetings of `recordings` (all when empty), as a store refuses
// a meeting it cannot hold, or one that is full.
inline void refuse_meetings(detail::Db& db, const std::string& recordings) {
  const std::string when = recordings.empty() ? "true" : "NEW.recording_id IN (" + recordings + ")";
  const std::string sql =
      store_engine_is_postgres()
          ? "CREATE FUNCTION refuse_meeting() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN IF " + when +
                " THEN RAISE EXCEPTION ''the store refuses meeting %'', NEW.recording_id; END IF; RETURN NEW; END';"
                "CREATE TRIGGER refuse_meeting BEFORE INSERT ON sync_meetings FOR EACH ROW EXECUTE FUNCTION "
                "refuse_meeting()"
          : "CREATE TRIGGER refuse_meeting BEFORE INSERT ON sync_meetings WHEN " + when +
                " BEGIN SELECT RAISE(ABORT, 'the store refuses the meeting'); END";
  BOOST_REQUIRE(db.with([&] { return db.exec(sql); }).ok());
}

}  // namespace fb::test
