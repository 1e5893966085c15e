#include "server/shutdown.h"

#include <future>
#include <thread>

#include "bridge/bridge_impl.h"
#include "core/log.h"

namespace fb::detail {

bool shutdown_gracefully(Bridge& bridge, Sidecar& sidecar, std::chrono::milliseconds budget) {
  auto started = std::chrono::steady_clock::now();
  FB_LOG(kInfo, "sidecar") << "shutting down: stopping syncs, then the server, then the workers (within "
                           << budget.count() << " ms)";
  Bridge::Impl& m = bridge.impl();
  // Stopping runs on its own thread so that this one can give up at the deadline. The promise is
  // shared: after a timeout the thread may still be running when this frame is gone.
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> finished = done->get_future();
  std::thread([&m, &sidecar, done] {
    m.sync->request_stop();  // running syncs end at their next safe point
    m.scheduler->stop();     // interrupts a scheduled sync's waits and joins its threads
    sidecar.stop();          // no new requests; answers in flight (webhook commits, host routes) go out
    m.workers->stop();       // events in hand are finished; the rest stays pending in the inbox
    done->set_value();
  }).detach();
  if (finished.wait_for(budget) != std::future_status::ready) {
    FB_LOG(kError, "sidecar") << "shutdown did not finish within server.shutdown_timeout_s (" << budget.count()
                              << " ms); exiting with work in flight (it is safe: unanswered deliveries are resent,"
                              << " held events are reclaimed and syncs resume at the next start)";
    return false;
  }
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  FB_LOG(kInfo, "sidecar") << "stopped cleanly in " << took.count() << " ms";
  return true;
}

}  // namespace fb::detail
