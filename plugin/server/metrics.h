// metrics.h: the sidecar's operational view: GET /metrics (Prometheus text format 0.0.4) and the
// checks behind GET /readyz.
//
//   Metrics metrics(bridge);                       // opens its own read-only store connection
//   mount_webhook_routes(server, receiver, &metrics.ingest_latency());
//   std::string text = metrics.render();           // what a scrape gets
//   Readiness r = metrics.readiness();             // r.ready, r.to_json()
//
// Where the numbers come from: counters the components keep anyway in relaxed atomics (receiver,
// worker pool, token manager, Fathom client, script host), two latency histograms (ingest: from a
// delivery's request to its answer, group commit included; processing: one inbox event in a
// worker), and a few COUNT(*) ... GROUP BY queries run at scrape time on a connection of their
// own, so a scrape never queues behind the hot path's locks. Nothing in a metric or a readiness
// answer names a secret; integration ids appear only in readiness detail.
//
// Readiness: the store answers a query, a valid version of the scripts is loaded, and no webhook
// worker has been on one event longer than webhooks.event_deadline_s (a script that escaped its
// budget or a host call that never returns: the process is alive but not making progress).
//
// Threading: render() and readiness() may run on several threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/latency_histogram.h"
#include "fathom_bridge/bridge.h"
#include "store/db.h"

namespace fb::detail {

struct ReadinessCheck {
  std::string name;  // "store", "scripts", "workers"
  bool ok = false;
  std::string detail;  // why not, or a short summary
};

struct Readiness {
  bool ready = false;
  std::vector<ReadinessCheck> checks;
  // {"ready": bool, "checks": {"store": {"ok": bool, "detail": "..."}, ...}}
  std::string to_json() const;
};

class Metrics {
 public:
  // The bridge must outlive the Metrics.
  explicit Metrics(Bridge& bridge);
  ~Metrics();

  LatencyHistogram& ingest_latency() { return ingest_latency_; }
  std::string render();
  Readiness readiness();

 private:
  // Runs fn on the read connection (opened on first use, reopened after a failure).
  Status with_db(const std::function<Status(Db&)>& fn);

  Bridge& bridge_;
  LatencyHistogram ingest_latency_;
  std::mutex db_mu_;
  std::unique_ptr<Db> db_;  // guarded by db_mu_
};

}  // namespace fb::detail
