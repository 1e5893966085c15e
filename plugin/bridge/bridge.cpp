// fb::Bridge: wires the services of every concern together and exposes them as one API.
#include "fathom_bridge/bridge.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <optional>
#include <thread>
#include <nlohmann/json.hpp>
#include <simdjson.h>

#include "bridge/bridge_impl.h"
#include "core/log.h"
#include "core/principal.h"
#include "crypto/encoding.h"
#include "oauth/schema.h"
#include "sync/sync_schema.h"
#include "webhooks/schema.h"

namespace fb {
namespace {

using nlohmann::json;

detail::Principal principal_of(const Caller& c) { return {c.tenant_id, c.user_id, c.team_id}; }

json job_to_json(const detail::JobRecord& j) {
  json details = j.error_details.empty() ? json(nullptr) : json::parse(j.error_details, nullptr, false);
  if (details.is_discarded()) details = j.error_details;
  return {{"id", j.id},
          {"integration_id", j.integration_id},
          {"tenant_id", j.tenant_id},
          {"user_id", j.user_id},
          {"mode", j.mode},
          {"trigger", j.trigger},
          {"status", j.status},
          {"message", j.message},
          {"error", j.error_code.empty() ? json(nullptr) : json(j.error_code)},
          {"error_details", details},
          {"resumed_job_id", j.resumed_job_id},
          {"started_at", j.started_at},
          {"ended_at", j.ended_at},
          {"api_calls", j.api_calls},
          {"pages", j.pages},
          {"meetings_seen", j.meetings_seen},
          {"meetings_new", j.meetings_new},
          {"meetings_changed", j.meetings_changed},
          {"meetings_mapped", j.meetings_mapped},
          {"map_failures", j.map_failures},
          {"content_fetched", j.content_fetched},
          {"items_skipped", j.items_skipped},
          {"skipped_items", j.skipped_items.empty() ? json::array() : json::parse(j.skipped_items, nullptr, false)},
          {"script_versions", j.script_versions.empty() ? json() : json::parse(j.script_versions, nullptr, false)}};
}

Result<std::unique_ptr<detail::Db>> open_db(const Config& c) {
  return detail::Db::open(c.store.target(), {.full_sync = c.store.full_sync,
                                             .busy_timeout_ms = c.store.busy_timeout_ms,
                                             .pool_size = c.store.pool_size});
}

Status load_keys(const TokenConfig& t, detail::Sealer* sealer) {
  std::string id;
  detail::SecretString key;
  FB_TRY(detail::parse_key_spec(t.key, &id, &key).with_context("setting 'tokens.key'"));
  FB_TRY(sealer->add_key(id, key));
  const std::string active = id;
  for (const auto& spec : t.old_keys) {
    FB_TRY(detail::parse_key_spec(spec, &id, &key).with_context("setting 'tokens.old_keys'"));
    if (id == active) return Status::Config("setting 'tokens.old_keys' repeats the active key id '" + id + "'");
    FB_TRY(sealer->add_key(id, key));
  }
  return sealer->set_active(active);
}

// Reports go to JSON whatever bytes a row holds: a value stored before identifiers were checked
// (or by another tool) shows as U+FFFD instead of failing every all-tenant report.
std::string dump_lenient(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

WebhookRoute route_of(const detail::Registry& registry, const detail::Registration& r) {
  WebhookRoute w;
  w.id = r.id;
  w.integration_id = r.integration_id;
  w.source = r.source;
  w.path = registry.path_for(r.path_token);
  w.url = registry.url_for(r.path_token);
  if (w.url.empty()) w.url = r.destination_url;
  w.fathom_webhook_id = r.fathom_webhook_id;
  w.created_at = r.created_at_s;
  w.previous_secret_expires_at = r.prev_secret_expires_at_s;
  return w;
}

// Registers the Fathom webhook of a newly connected integration (OAuth or API key) when a public
// URL is configured; a reconnect keeps the existing one. The connection stands either way (sync
// still brings the meetings), so a failure is logged loudly, not returned.
void ensure_webhook(Bridge::Impl& m, int64_t integration_id) {
  if (m.config.webhooks.public_base_url.empty()) return;
  auto existing = m.registry->list(integration_id);
  if (!existing.ok() || !existing->empty()) return;
  auto reg = m.registry->register_for(integration_id);
  if (!reg.ok()) {
    FB_LOG(kWarn, "bridge") << "integration " << integration_id
                            << ": webhook registration failed: " << reg.status().message();
  }
}

// Script hooks that follow host events: connect, disconnect, token failure.
void subscribe_script_hooks(Bridge::Impl* impl) {
  impl->bus.subscribe([impl](const Event& e) {
    if (!impl->scripts || e.integration_id == 0) return;
    detail::IntegrationRef ref{e.integration_id, e.tenant_id, e.user_id};
    Status s;
    if (e.type == "connected") s = impl->scripts->on_connect(ref);
    else if (e.type == "disconnected") s = impl->scripts->on_disconnect(ref);
    else if (e.type == "reconnect_required") s = impl->scripts->on_token_failure(ref, e.detail);
    else return;
    if (!s.ok()) FB_LOG(kWarn, "bridge") << "script hook for " << e.type << " failed: " << s.message();
  });
}

}  // namespace

std::string detail::crm_call_json(const CrmCall& call) {
  // The script's arguments are already JSON text (its encoder wrote them): splice them in, after a
  // validation, rather than parse them into a tree and write them again (6 or so calls per meeting;
  // issue 11). Keys in the order a json object (sorted) gave them before.
  thread_local simdjson::dom::parser parser;
  bool valid = !call.args_json.empty() && !parser.parse(call.args_json).error();
  std::string out;
  out.reserve(call.args_json.size() + call.idempotency_key.size() + call.tenant_id.size() + call.user_id.size() + 128);
  out.append("{\"args\":").append(valid ? std::string_view(call.args_json) : std::string_view("{}"));
  out.append(",\"dry_run\":").append(call.dry_run ? "true" : "false");
  out.append(",\"idempotency_key\":").append(json(call.idempotency_key).dump());
  out.append(",\"integration_id\":").append(std::to_string(call.integration_id));
  out.append(",\"operation\":").append(json(call.operation).dump());
  out.append(",\"script_version\":").append(call.script_version ? std::to_string(call.script_version) : "null");
  out.append(",\"tenant_id\":").append(json(call.tenant_id).dump());
  out.append(",\"user_id\":").append(json(call.user_id).dump()).append("}");
  return out;
}

json detail::event_json(const Event& e) {
  json data = json::parse(e.data_json.empty() ? "{}" : e.data_json, nullptr, false);
  return {{"id", e.id},
          {"type", e.type},
          {"tenant_id", e.tenant_id},
          {"user_id", e.user_id},
          {"integration_id", e.integration_id},
          {"detail", e.detail},
          {"data", data.is_discarded() ? json::object() : data}};
}

std::string CallbackOutcome::to_json() const {
  json j = {{"ok", ok},
            {"integration_id", integration_id},
            {"error", error.empty() ? json(nullptr) : json(error)},
            {"reason", reason.empty() ? json(nullptr) : json(reason)},
            {"mode", mode == ReturnMode::kPopup ? "popup" : "redirect"},
            {"http_status", http_status},
            {"content_type", content_type},
            {"body", body},
            {"location", location}};
  return j.dump();
}

Bridge::Impl::~Impl() {
  // Threads first: they use everything below.
  if (sync) sync->request_stop();
  join_async_syncs(true);
  if (scheduler) scheduler->stop();
  if (workers) workers->stop();
}

Result<detail::IntegrationRecord> Bridge::Impl::owned(const Caller& caller, int64_t integration_id) {
  FB_TRY(detail::validate_principal(principal_of(caller)));
  return integrations->get(principal_of(caller), integration_id);
}

Bridge::Bridge(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Bridge::~Bridge() = default;

const Config& Bridge::config() const { return impl_->config; }

Result<std::unique_ptr<Bridge>> Bridge::open(const Config& config, OpenOptions options) {
  FB_TRY(validate_config(config, {.oauth = false}));
  auto impl = std::make_unique<Impl>();
  Impl& m = *impl;
  m.config = config;
  m.open_options = options;
  detail::LogLevel level;
  if (detail::parse_log_level(config.log_level, &level)) detail::set_log_level(level);
  if (detail::LogFormat format; detail::parse_log_format(config.log.format, &format)) detail::set_log_format(format);
  m.bus.subscribe([p = &m](const Event& e) {
    EventSink sink;
    {
      std::lock_guard lock(p->sink_mu);
      sink = p->host_sink;
    }
    if (sink) sink(e);
  });
  FB_TRY(load_keys(config.tokens, &m.sealer));

  detail::HttpClientOptions http;
  http.connect_timeout_ms = config.fathom.connect_timeout_ms;
  http.read_timeout_ms = config.fathom.read_timeout_ms;
  http.verify_tls = config.fathom.verify_tls;
  http.ca_file = config.fathom.ca_file;
  http.proxy = config.fathom.proxy;
  http.no_proxy = config.fathom.no_proxy;
  m.http = std::make_unique<detail::HttplibTransport>(http);

  FB_ASSIGN(m.db_oauth, open_db(config));
  FB_ASSIGN(m.db_sync, open_db(config));
  FB_ASSIGN(m.db_webhooks, open_db(config));
  FB_ASSIGN(m.db_scripts, open_db(config));
  FB_TRY(detail::migrate_oauth_schema(*m.db_oauth));
  FB_TRY(detail::migrate_sync_schema(*m.db_sync));
  FB_TRY(detail::migrate_webhooks(*m.db_webhooks));
  // Every event is stored (and gets its id) before any listener sees it.
  FB_ASSIGN(m.db_events, open_db(config));
  FB_ASSIGN(m.events, detail::EventStore::open(*m.db_events, m.clock, {.retention_s = config.events.retention_s}));
  // An event caused inside a transaction is written in it and told to listeners after its commit.
  m.bus.set_recorder(m.events->recorder());
  if (!config.events.push_url.empty()) {  // pushes the events from here on (its thread starts below)
    m.push_http = std::make_unique<detail::HttplibTransport>(
        detail::HttpClientOptions{.connect_timeout_ms = 5000, .read_timeout_ms = 15000, .write_timeout_ms = 15000});
    FB_ASSIGN(m.pusher, detail::EventPusher::open(*m.db_events, *m.events, *m.push_http, m.clock, config.events));
  }

  m.integrations = std::make_unique<detail::IntegrationStore>(*m.db_oauth, m.sealer, m.clock);
  m.token_endpoint = std::make_unique<detail::TokenEndpoint>(*m.http, m.clock, m.random,
                                                             detail::TokenEndpointOptions::from_config(config));
  m.oauth = std::make_unique<detail::OAuthFlow>(detail::OAuthFlowOptions::from_config(config), *m.integrations,
                                                *m.token_endpoint, *m.http, &m.bus, m.clock, m.random);
  // An OAuth app that is configured must be configured completely: fail at start, not at first connect.
  if (!config.fathom.client_id.empty()) FB_TRY(m.oauth->check_config());
  m.tokens = std::make_unique<detail::TokenManager>(*m.integrations, *m.token_endpoint, &m.bus,
                                                    detail::TokenManagerOptions::from_config(config), m.clock, m.random);
  m.health = std::make_unique<detail::TokenHealthReporter>(*m.integrations, m.clock, config.tokens.refresh_buffer_s);

  m.limiters = std::make_unique<detail::RateLimiterRegistry>(m.clock, detail::RateLimitOptions::from_config(config));
  m.fathom = std::make_unique<detail::FathomClient>(*m.http, *m.tokens, *m.limiters, m.clock,
                                                    detail::FathomClientOptions::from_config(config), m.random);
  FB_ASSIGN(m.meetings, detail::MeetingStore::open(*m.db_sync, m.clock));
  FB_ASSIGN(m.dispatcher, detail::MeetingDispatcher::open(*m.db_sync, m.clock,
                                                         detail::DispatcherOptions::from_config(config), m.random));
  // The engine owns the content cache front, so scripts and syncs share in-flight fetches.
  FB_ASSIGN(m.sync, detail::SyncEngine::open(*m.db_sync, *m.fathom, *m.integrations, *m.meetings, *m.dispatcher,
                                             nullptr, m.clock, detail::SyncOptions::from_config(config)));

  detail::ScriptHostOptions so;
  so.config = config.scripts;
  so.db = m.db_scripts.get();
  so.content = &m.sync->content_source();
  so.event_sink = [p = &m](const Event& e) { (void)p->emit(e); };
  FB_ASSIGN(m.scripts, detail::ScriptHost::open(std::move(so)));
  m.pipeline = std::make_unique<detail::LuaPipeline>(*m.scripts);
  m.sync->set_pipeline(m.pipeline.get());
  subscribe_script_hooks(&m);

  detail::SchedulerOptions sched = detail::SchedulerOptions::from_config(config);
  m.scheduler = std::make_unique<detail::SyncScheduler>(*m.sync, *m.integrations, m.clock, sched,
                                                        [p = &m] { p->tokens->sweep_keepalive(); });

  m.registry = std::make_unique<detail::Registry>(*m.db_webhooks, m.sealer, m.clock, m.random, config.webhooks,
                                                  m.fathom.get());
  detail::InboxOptions io;
  // Bodies beside the database file; in PostgreSQL, in the inbox's rows (a fleet shares them).
  if (m.db_webhooks->engine() == detail::Engine::kSqlite) io.body_dir = detail::default_body_dir(m.db_webhooks->path());
  io.commit_timeout_ms = config.webhooks.commit_timeout_ms;
  io.claim_lease_ms = int64_t{config.webhooks.claim_lease_s} * 1000;
  m.inbox = std::make_unique<detail::Inbox>(*m.db_webhooks, m.clock, io);
  m.receiver = std::make_unique<detail::Receiver>(*m.registry, *m.inbox, m.clock, config.webhooks);
  FB_ASSIGN(m.webhook_meetings, detail::MeetingStore::open(*m.db_webhooks, m.clock));
  FB_ASSIGN(m.webhook_dispatcher, detail::MeetingDispatcher::open(*m.db_webhooks, m.clock,
                                                                 detail::DispatcherOptions::from_config(config),
                                                                 m.random));
  for (detail::MeetingStore* s : {m.meetings.get(), m.webhook_meetings.get()}) {
    s->set_content_loader(detail::inbox_content_loader(*m.inbox));
  }
  for (detail::MeetingDispatcher* d : {m.dispatcher.get(), m.webhook_dispatcher.get()}) {
    d->set_content_loader(detail::inbox_content_loader(*m.inbox));
  }
  if (m.inbox->checkpoints_in_background()) {
    // The inbox's checkpointer covers the whole file: no writer checkpoints on its commit path.
    for (detail::Db* db : {m.db_oauth.get(), m.db_sync.get(), m.db_scripts.get()}) {
      FB_TRY(db->with([db] { return db->exec("PRAGMA wal_autocheckpoint=0"); }));
    }
  }
  m.webhook_handler = std::make_unique<detail::MeetingEventHandler>(*m.webhook_meetings, *m.webhook_dispatcher,
                                                                    *m.integrations, *m.pipeline);
  detail::WorkerOptions wo = detail::WorkerOptions::from(config.webhooks);
  if (!options.background) wo.workers = 0;
  wo.on_stuck_threads = [scripts = m.scripts.get()](int n) { scripts->set_extra_states(n); };
  m.workers = std::make_unique<detail::WorkerPool>(*m.inbox, *m.webhook_handler, m.clock, m.random, wo, &m.bus,
                                                   m.integrations.get());
  if (options.background) {
    FB_TRY(m.workers->start());
    if (config.sync.scheduler) m.scheduler->start();
    if (m.pusher) m.pusher->start();
  }
  FB_LOG(kInfo, "bridge") << "open: store " << m.db_oauth->path() << ", scripts " << config.scripts.dir
                          << (options.background ? ", workers running" : ", no background work");
  return std::unique_ptr<Bridge>(new Bridge(std::move(impl)));
}

void Bridge::set_event_sink(EventSink sink) {
  std::lock_guard lock(impl_->sink_mu);
  impl_->host_sink = std::move(sink);
}

Status Bridge::register_crm_operation(const std::string& name, CrmHandler handler) {
  if (name.empty()) return Status::InvalidArgument("CRM operation name is empty");
  if (!handler) return Status::InvalidArgument("CRM operation '" + name + "' has no handler");
  return impl_->scripts->register_crm_operation(name, std::move(handler));
}

Status Bridge::set_crm_batch_hooks(CrmBatchHooks hooks) {
  impl_->pipeline->set_batch_hooks(std::move(hooks));
  return Status::Ok();
}

// ---- connect ----

Result<ConnectStart> Bridge::connect_start(const Caller& caller, ReturnMode mode) {
  FB_TRY(detail::validate_principal(principal_of(caller)));
  FB_ASSIGN(detail::AuthorizeRequest r,
            impl_->oauth->start(principal_of(caller),
                                mode == ReturnMode::kPopup ? detail::CallbackMode::kPopup : detail::CallbackMode::kRedirect));
  return ConnectStart{r.url, r.expires_at};
}

CallbackOutcome Bridge::connect_callback(const std::string& query) { return complete_callback(query, nullptr); }

CallbackOutcome Bridge::connect_callback(const std::string& query, const Caller& signed_in) {
  return complete_callback(query, &signed_in);
}

CallbackOutcome Bridge::complete_callback(const std::string& query, const Caller* signed_in) {
  std::optional<detail::Principal> p;
  if (signed_in) p = principal_of(*signed_in);
  detail::CallbackResult r = impl_->oauth->complete(query, p ? &*p : nullptr);
  if (r.ok) ensure_webhook(*impl_, r.integration_id);
  CallbackOutcome o;
  o.ok = r.ok;
  o.integration_id = r.integration_id;
  o.code = r.code;
  o.error = r.error;
  o.reason = r.reason;
  o.mode = r.mode == detail::CallbackMode::kPopup ? ReturnMode::kPopup : ReturnMode::kRedirect;
  if (o.mode == ReturnMode::kPopup) {
    o.http_status = 200;
    o.content_type = "text/html; charset=utf-8";
    o.body = impl_->oauth->popup_page_html(r);
  } else {
    auto loc = impl_->oauth->redirect_location(r);
    if (loc.ok()) {
      o.http_status = 302;
      o.location = *loc;
    } else {  // no frontend URL configured: fall back to the page
      o.http_status = 200;
      o.content_type = "text/html; charset=utf-8";
      o.body = impl_->oauth->popup_page_html(r);
    }
  }
  return o;
}

Result<int64_t> Bridge::connect_api_key(const Caller& caller, const std::string& api_key) {
  FB_TRY(detail::validate_principal(principal_of(caller)));
  if (api_key.empty()) return Status::InvalidArgument("api_key is empty");
  FB_ASSIGN(int64_t id, impl_->oauth->connect_api_key(principal_of(caller), detail::SecretString(api_key)));
  ensure_webhook(*impl_, id);  // API-key users get webhooks like OAuth ones
  return id;
}

Status Bridge::disconnect(const Caller& caller, int64_t integration_id) {
  FB_TRY(impl_->owned(caller, integration_id).status());
  // Webhooks first, while the credentials still work; best effort inside unregister_all.
  Status w = impl_->registry->unregister_all(integration_id);
  if (!w.ok()) FB_LOG(kWarn, "bridge") << "integration " << integration_id << ": " << w.message();
  return impl_->oauth->disconnect(principal_of(caller), integration_id);
}

// ---- tokens ----

Result<std::string> Bridge::access_token(const Caller& caller, int64_t integration_id) {
  FB_TRY(detail::validate_principal(principal_of(caller)));
  FB_ASSIGN(detail::Credential c, impl_->tokens->credential(principal_of(caller), integration_id));
  return c.value.reveal();
}

Result<std::string> Bridge::token_health_json(const std::string& tenant_id, const std::string& user_id) {
  FB_TRY(detail::validate_identifier(tenant_id, "tenant_id", false));
  FB_TRY(detail::validate_identifier(user_id, "user_id", false));
  FB_ASSIGN(auto report, impl_->health->report(tenant_id, user_id));
  return dump_lenient(detail::token_health_to_json(report, tenant_id.empty() ? detail::HealthView::kOperator
                                                                             : detail::HealthView::kFrontend));
}

Result<std::string> Bridge::token_health_table(const std::string& tenant_id, const std::string& user_id) {
  FB_TRY(detail::validate_identifier(tenant_id, "tenant_id", false));
  FB_TRY(detail::validate_identifier(user_id, "user_id", false));
  FB_ASSIGN(auto report, impl_->health->report(tenant_id, user_id));
  return detail::token_health_table(report);
}

Result<std::string> Bridge::deactivate_expired() {
  FB_ASSIGN(auto list, impl_->health->deactivate_expired());
  return dump_lenient(detail::deactivated_to_json(list));
}

// ---- sync ----

namespace {

Result<detail::SyncRequest> engine_request(int64_t integration_id, const SyncRequest& request) {
  detail::SyncRequest r;
  r.integration_id = integration_id;
  r.trigger = "host";
  if (request.mode == "incremental") r.mode = detail::SyncMode::kIncremental;
  else if (request.mode == "backfill") r.mode = detail::SyncMode::kBackfill;
  else if (request.mode == "manual") r.mode = detail::SyncMode::kManual;
  else return Status::InvalidArgument("sync mode must be incremental, backfill or manual, not '" + request.mode + "'");
  r.from_s = request.since;
  r.to_s = request.until;
  r.recording_id = request.recording_id;
  return r;
}

// Tells the host a job ended (sync_completed, sync_cancelled or sync_failed), in the
// transaction that records the end (SyncRequest::on_finished).
void tell_sync_end(Bridge::Impl& m, const detail::IntegrationRecord& rec, detail::SyncRequest& r) {
  r.on_finished = [m = &m, rec](const detail::JobRecord& job) {
    const char* type = job.ok() ? "sync_completed" : job.status == "cancelled" ? "sync_cancelled" : "sync_failed";
    return m->emit(Event{type, rec.tenant_id, rec.user_id, rec.id, job.message, dump_lenient(job_to_json(job))});
  };
}

// A finished job (the host was told with its end): the scripts' on_sync_complete.
std::string announce_sync(Bridge::Impl& m, const detail::IntegrationRecord& rec, const detail::JobRecord& job) {
  std::string summary = dump_lenient(job_to_json(job));
  if (job.ok()) {
    Status hook = m.scripts->on_sync_complete({rec.id, rec.tenant_id, rec.user_id}, summary,
                                              "sync_complete:" + std::to_string(job.id));
    if (!hook.ok()) FB_LOG(kWarn, "bridge") << "on_sync_complete failed: " << hook.message();
  }
  return summary;
}

// How far a job is: its counters, the time window its listing has covered and an ETA from it
// (Fathom lists newest first, so the oldest created_at reached so far measures the progress;
// null until a page has come back or when the listing has no lower bound), and the API budget.
json job_progress(const detail::JobRecord& j, const detail::RateLimitSnapshot& limit, int64_t now_s) {
  const bool running = j.status == "running";
  const int64_t elapsed = std::max<int64_t>(0, (running || j.ended_at == 0 ? now_s : j.ended_at) - j.started_at);
  json covered = nullptr, eta = nullptr;
  auto query = json::parse(j.query_json.empty() ? "{}" : j.query_json, nullptr, false);
  const int64_t from = query.is_object() ? query.value("created_after", int64_t{0}) : 0;
  int64_t to = query.is_object() ? query.value("created_before", int64_t{0}) : 0;
  if (to == 0) to = j.started_at;
  if (!running) {
    if (j.ok()) covered = 1.0, eta = 0;
  } else if (from > 0 && to > from && j.progress_at > 0) {
    double f = std::clamp(static_cast<double>(to - j.progress_at) / static_cast<double>(to - from), 0.0, 1.0);
    covered = f;
    if (f >= 0.01) eta = static_cast<int64_t>(static_cast<double>(elapsed) * (1.0 - f) / f + 0.5);
  }
  return {{"pages", j.pages},
          {"meetings_seen", j.meetings_seen},
          {"meetings_mapped", j.meetings_mapped},
          {"map_failures", j.map_failures},
          {"api_calls", j.api_calls},
          {"elapsed_s", elapsed},
          {"covered", covered},
          {"eta_s", eta},
          {"cancel_requested", j.cancel_requested_at > 0},
          {"rate_limit",
           {{"limit", limit.limit}, {"window_s", limit.window_ms / 1000}, {"remaining", limit.remaining}}}};
}

}  // namespace

void Bridge::Impl::join_async_syncs(bool all) {
  std::vector<AsyncSync> ended;
  {
    std::lock_guard lock(async_mu);
    for (auto it = async_syncs.begin(); it != async_syncs.end();) {
      if (all || it->done->load()) {
        ended.push_back(std::move(*it));
        it = async_syncs.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (AsyncSync& a : ended) a.thread.join();
}

Result<std::string> Bridge::sync(const Caller& caller, int64_t integration_id, const SyncRequest& request) {
  FB_ASSIGN(detail::IntegrationRecord rec, impl_->owned(caller, integration_id));
  FB_ASSIGN(detail::SyncRequest r, engine_request(integration_id, request));
  tell_sync_end(*impl_, rec, r);
  // The running job a wait_if_running call waits for: seen running under the lease that refused
  // this run (the job is logged just after its lease is taken, so until then there is none).
  int64_t joined = 0;
  for (;;) {
    if (joined != 0) {
      // The lease first, then the job: the job's end and the lease's release commit together, so a
      // job still running after its lease was seen free or lapsed lost its owner. Only then does
      // this call run a sync of its own (taking the lease over); otherwise it returns that job.
      FB_ASSIGN(detail::SyncState st, impl_->sync->state(integration_id));
      FB_ASSIGN(detail::JobRecord seen, impl_->sync->job(joined));
      // Its owner told the host and ran on_sync_complete: this caller only gets the record.
      if (seen.status != "running") return dump_lenient(job_to_json(seen));
      if (st.lease_until > impl_->clock.now_s()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        continue;
      }
    }
    auto job = impl_->sync->run(r);
    if (job.ok()) return announce_sync(*impl_, rec, *job);
    if (!request.wait_if_running || !job.status().is(Code::kConflict)) return job.status();
    if (joined == 0) {
      FB_ASSIGN(detail::SyncState st, impl_->sync->state(integration_id));
      auto last = st.last_job_id > 0 ? impl_->sync->job(st.last_job_id) : Result<detail::JobRecord>(Status::NotFound(""));
      if (last.ok() && last->status == "running") joined = last->id;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

Result<std::string> Bridge::sync_start(const Caller& caller, int64_t integration_id, const SyncRequest& request) {
  FB_ASSIGN(detail::IntegrationRecord rec, impl_->owned(caller, integration_id));
  FB_ASSIGN(detail::SyncRequest r, engine_request(integration_id, request));
  tell_sync_end(*impl_, rec, r);
  impl_->join_async_syncs(false);
  auto started = std::make_shared<std::promise<Result<int64_t>>>();
  std::future<Result<int64_t>> id = started->get_future();
  auto done = std::make_shared<std::atomic<bool>>(false);
  Impl* m = impl_.get();
  std::thread t([m, rec, r, started, done] {
    bool told = false;
    auto job = m->sync->run(r, [&](int64_t job_id) {
      told = true;
      started->set_value(job_id);
    });
    if (!told) started->set_value(job.ok() ? Result<int64_t>(job->id) : Result<int64_t>(job.status()));
    if (job.ok()) (void)announce_sync(*m, rec, *job);
    else FB_LOG(kWarn, "sync") << "sync of integration " << rec.id << " did not run: " << job.status();
    done->store(true);
  });
  {
    std::lock_guard lock(impl_->async_mu);
    impl_->async_syncs.push_back({std::move(t), done});
  }
  FB_ASSIGN(int64_t job_id, id.get());
  return sync_job(caller, job_id);
}

Result<detail::JobRecord> Bridge::Impl::owned_job(const Caller& caller, int64_t job_id) {
  FB_TRY(detail::validate_principal(principal_of(caller)));
  auto job = sync->job(job_id);
  // Another caller's job reads as missing, never as "not yours".
  if (job.ok() && !owned(caller, job->integration_id).ok()) return Status::NotFound("no sync job " + std::to_string(job_id));
  return job;
}

Result<std::string> Bridge::sync_job(const Caller& caller, int64_t job_id) {
  FB_ASSIGN(detail::JobRecord job, impl_->owned_job(caller, job_id));
  json out = job_to_json(job);
  out["progress"] = job_progress(job, impl_->limiters->for_account(job.integration_id).snapshot(), impl_->clock.now_s());
  return dump_lenient(out);
}

Status Bridge::sync_cancel(const Caller& caller, int64_t job_id) {
  FB_TRY(impl_->owned_job(caller, job_id).status());
  return impl_->sync->cancel(job_id);
}

Status Bridge::tick() {
  impl_->scheduler->tick(impl_->clock.now_s());
  if (!impl_->open_options.background) {
    auto r = impl_->workers->run_once();
    if (!r.ok()) return r.status();
  }
  return Status::Ok();
}

Result<std::string> Bridge::sync_jobs_json(int64_t integration_id, const std::string& status, int limit) {
  return sync_jobs_json(integration_id, status, limit, "");
}

Result<std::string> Bridge::sync_jobs_json(int64_t integration_id, const std::string& status, int limit,
                                           const std::string& tenant_id) {
  FB_TRY(detail::validate_identifier(tenant_id, "tenant_id", false));
  detail::JobFilter f;
  f.integration_id = integration_id;
  f.tenant_id = tenant_id;
  f.status = status;
  f.limit = limit > 0 ? limit : 50;
  FB_ASSIGN(auto jobs, impl_->sync->recent_jobs(f));
  json out = json::array();
  for (const auto& j : jobs) out.push_back(job_to_json(j));
  return dump_lenient(out);
}

// ---- webhooks ----

WebhookReply Bridge::receive_webhook(const std::string& path,
                                     const std::vector<std::pair<std::string, std::string>>& headers,
                                     std::string_view body) {
  detail::ReceiveResult r = impl_->receiver->handle(path, headers, body);
  return WebhookReply{r.http_status, std::string(r.reason), r.code()};
}

void Bridge::receive_webhook_async(const std::string& path, std::vector<std::pair<std::string, std::string>> headers,
                                   std::string_view body, std::function<void(const WebhookReply&)> done) {
  // The delivery views its webhook-id header until the commit: the headers live as long as done.
  auto held = std::make_shared<const std::vector<std::pair<std::string, std::string>>>(std::move(headers));
  impl_->receiver->handle_async(path, detail::find_delivery_headers(*held), body,
                                [held, done = std::move(done)](const detail::ReceiveResult& r) {
                                  done(WebhookReply{r.http_status, std::string(r.reason), r.code()});
                                });
}

Result<std::string> Bridge::webhook_events_json(const std::string& status, int64_t integration_id, int limit) {
  return webhook_events_json(status, integration_id, limit, "");
}

Result<std::string> Bridge::webhook_events_json(const std::string& status, int64_t integration_id, int limit,
                                                const std::string& tenant_id) {
  if (!status.empty() && status != "pending" && status != "processing" && status != "done" && status != "dead") {
    return Status::InvalidArgument("webhook event status must be pending, processing, done or dead");
  }
  FB_TRY(detail::validate_identifier(tenant_id, "tenant_id", false));
  detail::InboxFilter f;
  f.status = status;
  f.integration_id = integration_id;
  f.limit = limit > 0 ? limit : 100;
  if (tenant_id.empty()) {
    FB_ASSIGN(auto events, impl_->workers->list(f));
    return detail::events_to_json(events);
  }
  // The inbox knows integrations, not tenants: list each of the tenant's integrations (a tenant has
  // one per user), then keep the newest `limit` of them all.
  FB_ASSIGN(auto owned, impl_->integrations->list(tenant_id, ""));
  std::vector<detail::InboxEvent> events;
  for (const auto& rec : owned) {
    if (integration_id != 0 && rec.id != integration_id) continue;
    f.integration_id = rec.id;
    FB_ASSIGN(auto some, impl_->workers->list(f));
    events.insert(events.end(), std::make_move_iterator(some.begin()), std::make_move_iterator(some.end()));
  }
  std::sort(events.begin(), events.end(), [](const auto& a, const auto& b) { return a.id > b.id; });
  if (events.size() > static_cast<size_t>(f.limit)) events.resize(static_cast<size_t>(f.limit));
  return detail::events_to_json(events);
}

Result<int> Bridge::webhook_replay(const std::string& event_id) {
  if (event_id == "dead") return impl_->workers->replay_dead_letters();
  char* end = nullptr;
  long long id = std::strtoll(event_id.c_str(), &end, 10);
  if (event_id.empty() || *end != '\0' || id <= 0) {
    return Status::InvalidArgument("event id must be a positive number or \"dead\", not '" + event_id + "'");
  }
  FB_TRY(impl_->workers->replay(id));
  return 1;
}

// ---- scripts ----

Status Bridge::reload_scripts() { return impl_->scripts->reload(); }

// ---- the durable event feed ----

Result<std::string> Bridge::events_json(int64_t after_id, int limit, int64_t wait_ms) {
  if (after_id < 0) return Status::InvalidArgument("after_id must be 0 or a previous event id, not " + std::to_string(after_id));
  if (limit <= 0 || limit > 1000) return Status::InvalidArgument("limit must be 1..1000, not " + std::to_string(limit));
  if (wait_ms < 0) return Status::InvalidArgument("wait must not be negative");
  FB_ASSIGN(auto events, wait_ms > 0 ? impl_->events->wait(after_id, limit, wait_ms) : impl_->events->read(after_id, limit));
  return detail::EventStore::page_json(events, after_id);
}

Result<std::string> Bridge::event_deliveries_json(int limit) {
  if (!impl_->pusher) return Status::FailedPrecondition("events are not pushed: setting 'events.push_url' is not set");
  return impl_->pusher->deliveries_json(limit > 0 ? limit : 100);
}

// ---- webhook routes ----

std::string WebhookRoute::to_json() const {
  auto opt = [](const std::string& v) { return v.empty() ? json(nullptr) : json(v); };
  return json{{"id", id},
              {"integration_id", integration_id},
              {"source", source},
              {"url", opt(url)},
              {"path", path},
              {"fathom_webhook_id", opt(fathom_webhook_id)},
              {"created_at", created_at},
              {"previous_secret_expires_at", previous_secret_expires_at ? json(previous_secret_expires_at) : json(nullptr)}}
      .dump();
}

namespace {

// The registration behind route_id when the caller owns its integration; kNotFound otherwise, with
// the same message, so route ids of other tenants cannot be probed.
Result<detail::Registration> owned_route(Bridge::Impl& m, const Caller& caller, int64_t route_id) {
  FB_TRY(detail::validate_principal(principal_of(caller)));
  auto reg = m.registry->get(route_id);
  if (reg.ok() && m.owned(caller, reg->integration_id).ok()) return reg;
  if (!reg.ok() && !reg.status().is(Code::kNotFound)) return reg.status();
  return Status::NotFound("no webhook route " + std::to_string(route_id));
}

}  // namespace

Result<WebhookRoute> Bridge::add_webhook_route(const Caller& caller, int64_t integration_id, const std::string& secret) {
  FB_TRY(impl_->owned(caller, integration_id).status());
  // Without a secret yet: a random one nobody knows, replaced by the first rotation.
  detail::SecretString s(secret);
  if (secret.empty()) {
    uint8_t key[24];
    impl_->random.fill(key, sizeof key);
    s = detail::SecretString("whsec_" + detail::base64_encode(key, sizeof key));
  }
  FB_ASSIGN(detail::Registration r, impl_->registry->add_manual(integration_id, s));
  return route_of(*impl_->registry, r);
}

Result<WebhookRoute> Bridge::register_webhook_route(const Caller& caller, int64_t integration_id) {
  FB_TRY(impl_->owned(caller, integration_id).status());
  FB_ASSIGN(detail::Registration r, impl_->registry->register_for(integration_id));
  return route_of(*impl_->registry, r);
}

Result<std::vector<WebhookRoute>> Bridge::webhook_routes(const Caller& caller, int64_t integration_id) {
  FB_TRY(detail::validate_principal(principal_of(caller)));
  std::vector<int64_t> ids;
  if (integration_id != 0) {
    FB_TRY(impl_->owned(caller, integration_id).status());
    ids.push_back(integration_id);
  } else {
    FB_ASSIGN(auto recs, impl_->integrations->list(caller.tenant_id, caller.user_id));
    for (const auto& r : recs) ids.push_back(r.id);
  }
  std::vector<WebhookRoute> out;
  for (int64_t id : ids) {
    FB_ASSIGN(auto regs, impl_->registry->list(id));
    for (const auto& r : regs) out.push_back(route_of(*impl_->registry, r));
  }
  return out;
}

Result<WebhookRoute> Bridge::rotate_webhook_secret(const Caller& caller, int64_t route_id, const std::string& secret) {
  FB_TRY(owned_route(*impl_, caller, route_id).status());
  if (secret.empty()) return Status::InvalidArgument("secret is required to rotate a webhook route");
  FB_TRY(impl_->registry->set_secret(route_id, detail::SecretString(secret)));
  FB_ASSIGN(detail::Registration r, impl_->registry->get(route_id));
  return route_of(*impl_->registry, r);
}

Status Bridge::remove_webhook_route(const Caller& caller, int64_t route_id) {
  FB_TRY(owned_route(*impl_, caller, route_id).status());
  return impl_->registry->unregister(route_id);
}

}  // namespace fb
