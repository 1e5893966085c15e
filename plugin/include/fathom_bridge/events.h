// events.h: what the bridge tells its host.
//
// Events are raised from worker threads; a host's EventSink must be thread-safe and quick (queue
// the event, do not block). Events never carry a token or secret.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace fb {

struct Event {
  // "connected", "disconnected", "reconnect_required", "connection_recovered",
  // "refresh_outcome_unknown" (a refresh got no answer: no token is handed out until it is settled),
  // "sync_completed", "sync_failed", "sync_cancelled", "webhook_dead_lettered", "script_rejected", "script_loaded",
  // "worker_stuck" (a webhook worker has been on one event past webhooks.event_deadline_s, e.g. in a
  // CRM call that does not return; once per stuck batch; the ids are those of that event's
  // integration; data: event_id, busy_s, deadline_s, batch_events, released)
  std::string type;
  std::string tenant_id;
  std::string user_id;
  int64_t integration_id = 0;  // 0 when not about one integration
  std::string detail;          // human-readable reason
  std::string data_json;       // extra structured data ("{}" when none)
  int64_t id = 0;              // its id in the durable event feed (0 when it was not stored)
};

using EventSink = std::function<void(const Event&)>;

}  // namespace fb
