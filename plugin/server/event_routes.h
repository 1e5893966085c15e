// event_routes.h: the sidecar's routes over the durable event feed (events/event_store.h).
//
//   GET /v1/events?after=ID&limit=N&wait=S   a page {"events": [...], "next"} of the events with
//       id > ID; with wait=S (up to 60) and nothing newer yet, the answer waits up to S seconds
//       for one (long poll). Poll again with after=next.
//   GET /v1/events/stream                    Server-Sent Events: `id:`, `event:` (the type) and
//       `data:` (the event's JSON) per event, from the Last-Event-ID header (or ?after=). Each
//       answer holds up to wait=S (25) seconds for events, sends what there is and ends;
//       EventSource reconnects by itself with Last-Event-ID, so nothing is skipped.
//
// Both are asynchronous routes: a waiting request holds no thread. One waiter thread answers them
// when an event is appended or their wait is over. Both check the bearer token (server.api_token).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "events/event_store.h"
#include "server/http_server.h"

namespace fb::detail {

// Whether the request carries `Authorization: Bearer <token>` (always true for an empty token).
bool bearer_authorized(const ServerRequest& req, const std::string& token);

class EventRoutes {
 public:
  // Mounts the routes on server (before it starts). The store must outlive the returned object.
  static std::shared_ptr<EventRoutes> mount(HttpServer& server, EventStore& store, std::string api_token);
  ~EventRoutes();
  // Answers every waiting request with what there is now and stops the waiter thread. Call before
  // stopping the server. Idempotent.
  void stop();

  struct Waiters;

 private:
  explicit EventRoutes(std::shared_ptr<Waiters> waiters) : waiters_(std::move(waiters)) {}
  std::shared_ptr<Waiters> waiters_;
};

}  // namespace fb::detail
