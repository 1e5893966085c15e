// meeting_stack.h: the webhook processing stack as the Bridge has it, over a real store: the
// inbox with its body log (SQLite; bodies in the rows on PostgreSQL), and a MeetingStore + MeetingDispatcher on the inbox's connection that
// read meetings stored by pointer from it. For the batch and stuck-worker tests.
#pragma once

#include <memory>
#include <string>

#include "fixture.h"
#include "support/refuse_meetings.h"
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

}  // namespace fb::test
