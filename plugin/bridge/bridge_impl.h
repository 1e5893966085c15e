// bridge_impl.h: what fb::Bridge is made of. Internal: for the facade, the sidecar and the CLI.
//
// Connections: each component gets its own SQLite connection on the one database file, so the
// webhook inbox's group-commit writer, the sync engine and the token store never queue behind
// one another's mutex (WAL lets them run side by side; writers wait on busy_timeout).
// Destruction: ~Impl stops the threads (scheduler, workers) before anything they use goes away;
// members are declared in dependency order, so the rest unwinds in reverse.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/event_bus.h"
#include "events/event_pusher.h"
#include "events/event_store.h"
#include "crypto/sealer.h"
#include "fathom/fathom_client.h"
#include "fathom/rate_limiter.h"
#include "fathom_bridge/bridge.h"
#include "http/http_client.h"
#include "oauth/integration_store.h"
#include "oauth/oauth_flow.h"
#include "oauth/token_endpoint.h"
#include "oauth/token_health.h"
#include "oauth/token_manager.h"
#include "scripting/lua_pipeline.h"
#include "scripting/script_host.h"
#include "store/db.h"
#include "sync/content_source.h"
#include "sync/meeting_dispatcher.h"
#include "sync/meeting_store.h"
#include "sync/scheduler.h"
#include "sync/sync_engine.h"
#include "webhooks/inbox.h"
#include "webhooks/meeting_handler.h"
#include "webhooks/receiver.h"
#include "webhooks/registry.h"
#include "webhooks/worker.h"

namespace fb {

struct Bridge::Impl {
  ~Impl();

  Config config;
  OpenOptions open_options;
  detail::Clock& clock = detail::system_clock();
  detail::Random& random = detail::system_random();
  detail::EventBus bus;
  std::mutex sink_mu;
  EventSink host_sink;  // guarded by sink_mu
  // The durable event feed: declared before every service, so it is the last to go.
  std::unique_ptr<detail::Db> db_events;
  std::unique_ptr<detail::EventStore> events;

  detail::Sealer sealer;
  std::unique_ptr<detail::HttplibTransport> http;
  std::unique_ptr<detail::Db> db_oauth, db_sync, db_webhooks, db_scripts;

  // connect and tokens
  std::unique_ptr<detail::IntegrationStore> integrations;
  std::unique_ptr<detail::TokenEndpoint> token_endpoint;
  std::unique_ptr<detail::OAuthFlow> oauth;
  std::unique_ptr<detail::TokenManager> tokens;
  std::unique_ptr<detail::TokenHealthReporter> health;

  // Fathom API and sync
  std::unique_ptr<detail::RateLimiterRegistry> limiters;
  std::unique_ptr<detail::FathomClient> fathom;
  std::unique_ptr<detail::MeetingStore> meetings;
  std::unique_ptr<detail::MeetingDispatcher> dispatcher;

  // scripts
  std::unique_ptr<detail::ScriptHost> scripts;
  std::unique_ptr<detail::LuaPipeline> pipeline;

  std::unique_ptr<detail::SyncEngine> sync;
  std::unique_ptr<detail::SyncScheduler> scheduler;

  // webhooks
  std::unique_ptr<detail::Registry> registry;
  std::unique_ptr<detail::Inbox> inbox;
  std::unique_ptr<detail::Receiver> receiver;
  // The webhook workers' meetings are written on the inbox's connection, so that a batch's
  // meetings, mapped versions and event outcomes commit in one transaction (issue 11).
  std::unique_ptr<detail::MeetingStore> webhook_meetings;
  std::unique_ptr<detail::MeetingDispatcher> webhook_dispatcher;
  std::unique_ptr<detail::MeetingEventHandler> webhook_handler;
  std::unique_ptr<detail::WorkerPool> workers;

  // events pushed to the CRM (events.push_url); declared last, so its thread stops first
  std::unique_ptr<detail::HttplibTransport> push_http;
  std::unique_ptr<detail::EventPusher> pusher;

  // Syncs started by Bridge::sync_start, one thread each: finished ones are joined at the next
  // start, the rest by ~Impl after asking the engine to stop (they end at their next page).
  struct AsyncSync {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::mutex async_mu;
  std::vector<AsyncSync> async_syncs;  // guarded by async_mu
  void join_async_syncs(bool all);

  // Emits an event to the host and internal listeners (after the commit of the caller's open
  // transaction, with which it is stored: EventBus::emit).
  Status emit(const Event& e) { return bus.emit(e); }
  // The integration owned by caller, or kNotFound (never revealing another tenant's ids).
  Result<detail::IntegrationRecord> owned(const Caller& caller, int64_t integration_id);
  // The sync job of one of caller's integrations, or kNotFound (another caller's job reads as missing).
  Result<detail::JobRecord> owned_job(const Caller& caller, int64_t job_id);
};

namespace detail {
// The JSON forms hosts see, shared by the C ABI and the sidecar:
// {"operation", "args", "idempotency_key", "integration_id", "tenant_id", "user_id", "dry_run"}
std::string crm_call_json(const CrmCall& call);
// {"id", "type", "tenant_id", "user_id", "integration_id", "detail", "data"}
nlohmann::json event_json(const Event& event);
}  // namespace detail

}  // namespace fb
