#include "server/metrics.h"

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "bridge/bridge_impl.h"

namespace fb::detail {
namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Prometheus text exposition format 0.0.4: a HELP and TYPE line per family, then its samples.
class PromText {
 public:
  void family(const std::string& name, const char* type, const char* help) {
    out_ += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  }
  void sample(const std::string& name, const Labels& labels, double value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      for (size_t i = 0; i < labels.size(); ++i) {
        if (i) out_ += ',';
        out_ += labels[i].first + "=\"" + escape(labels[i].second) + "\"";
      }
      out_ += '}';
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, " %.17g\n", value);
    out_ += buf;
  }
  void sample(const std::string& name, double value) { sample(name, {}, value); }
  // A family with one label, one sample per value: {{"accepted", 3}, {"duplicate", 0}}.
  void by_label(const std::string& name, const char* type, const char* help, const char* label,
                const std::vector<std::pair<std::string, int64_t>>& values) {
    family(name, type, help);
    for (const auto& [v, n] : values) sample(name, {{label, v}}, static_cast<double>(n));
  }
  void histogram(const std::string& name, const char* help, const LatencyHistogram& h) {
    family(name, "histogram", help);
    LatencyHistogram::Snapshot s = h.snapshot();
    int64_t cumulative = 0;
    for (size_t i = 0; i < LatencyHistogram::kBuckets; ++i) {
      cumulative += s.counts[i];
      std::string le = "+Inf";
      if (i < LatencyHistogram::kBoundsNs.size()) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", static_cast<double>(LatencyHistogram::kBoundsNs[i]) / 1e9);
        le = buf;
      }
      sample(name + "_bucket", {{"le", le}}, static_cast<double>(cumulative));
    }
    sample(name + "_sum", static_cast<double>(s.sum_ns) / 1e9);
    sample(name + "_count", static_cast<double>(cumulative));
  }
  std::string take() { return std::move(out_); }

 private:
  static std::string escape(const std::string& v) {
    std::string o;
    for (char c : v) {
      if (c == '\\' || c == '"') o += '\\';
      if (c == '\n') {
        o += "\\n";
        continue;
      }
      o += c;
    }
    return o;
  }
  std::string out_;
};

// Rows of "SELECT key, COUNT(*) ... GROUP BY key" as a map.
Result<std::map<std::string, int64_t>> group_counts(Db& db, const char* sql) {
  std::map<std::string, int64_t> out;
  Stmt& q = db.prepare(sql);
  FB_TRY(each_row(q, [&](Stmt& row) { out[row.text(0)] = row.int64(1); }));
  return out;
}

// Every value a status column may hold, so a family always has the same series (a status with no
// rows is 0, not absent).
const char* const kInboxStatuses[] = {"pending", "processing", "done", "dead"};
const char* const kIntegrationStatuses[] = {"active", "reconnect_required", "disconnected"};
const char* const kJobStatuses[] = {"running", "succeeded", "failed", "skipped", "cancelled", "interrupted"};

template <size_t N>
void status_gauge(PromText& p, const std::string& name, const char* help, const char* const (&known)[N],
                  const std::map<std::string, int64_t>& counts) {
  std::map<std::string, int64_t> all = counts;
  for (const char* k : known) all.emplace(k, 0);
  p.by_label(name, "gauge", help, "status", {all.begin(), all.end()});
}

}  // namespace

std::string Readiness::to_json() const {
  nlohmann::json checks_json = nlohmann::json::object();
  for (const auto& c : checks) checks_json[c.name] = {{"ok", c.ok}, {"detail", c.detail}};
  return nlohmann::json{{"ready", ready}, {"checks", checks_json}}.dump();
}

Metrics::Metrics(Bridge& bridge) : bridge_(bridge) {}
Metrics::~Metrics() = default;

Status Metrics::with_db(const std::function<Status(Db&)>& fn) {
  std::lock_guard lock(db_mu_);
  if (!db_) {
    const StoreConfig& store = bridge_.config().store;
    // The configured store (store.url when set: a fleet's PostgreSQL, not the default SQLite file).
    FB_ASSIGN(db_, Db::open(store.target(), {.busy_timeout_ms = store.busy_timeout_ms, .read_only = true, .pool_size = 1}));
  }
  Status s = db_->with([&] { return fn(*db_); });
  if (!s.ok()) db_.reset();  // open again next time: the file may have been replaced or repaired
  return s;
}

std::string Metrics::render() {
  Bridge::Impl& m = bridge_.impl();
  PromText p;

  ReceiverStats rs = m.receiver->stats();
  p.by_label("fathom_bridge_webhook_deliveries_total", "counter",
             "Webhook deliveries acknowledged, by outcome (accepted: a new event committed; duplicate: a repeat).",
             "outcome", {{"accepted", rs.accepted}, {"duplicate", rs.duplicates}});
  std::vector<std::pair<std::string, int64_t>> rejected;
  for (int r = 1; r < static_cast<int>(Rejection::kCount); ++r) {
    rejected.emplace_back(rejection_name(static_cast<Rejection>(r)), rs.rejected[static_cast<size_t>(r)]);
  }
  p.by_label("fathom_bridge_webhook_deliveries_rejected_total", "counter", "Webhook deliveries refused, by reason.",
             "reason", rejected);

  WorkerStats ws = m.workers->stats();
  p.by_label("fathom_bridge_webhook_events_total", "counter",
             "Inbox events handled by the workers, by outcome (processed; failed: retried later; dead: dead-lettered).",
             "outcome", {{"processed", ws.processed}, {"failed", ws.retried}, {"dead", ws.dead_lettered}});

  WorkerProgress wp = m.workers->progress();
  p.family("fathom_bridge_webhook_batches_in_progress", "gauge", "Batches of inbox events being processed by workers now.");
  p.sample("fathom_bridge_webhook_batches_in_progress", wp.busy);
  p.family("fathom_bridge_webhook_workers_stuck_total", "counter",
           "Batches a worker was still on after webhooks.event_deadline_s (each one a worker_stuck event).");
  p.sample("fathom_bridge_webhook_workers_stuck_total", static_cast<double>(ws.stuck));
  p.family("fathom_bridge_webhook_events_released_total", "counter",
           "Events a stuck worker's batch had not started, handed back to pending for the other workers.");
  p.sample("fathom_bridge_webhook_events_released_total", static_cast<double>(ws.released));
  p.family("fathom_bridge_webhook_stuck_threads", "gauge",
           "Worker threads written off as stuck (replaced) whose call has not returned yet.");
  p.sample("fathom_bridge_webhook_stuck_threads", ws.stuck_threads);

  // The store's view: queried on this scrape's own connection.
  std::map<std::string, int64_t> inbox, integrations, jobs;
  int64_t oldest_pending_ms = 0;
  Status store = with_db([&](Db& db) -> Status {
    FB_ASSIGN(inbox, group_counts(db, "SELECT status, COUNT(*) FROM webhook_inbox GROUP BY status"));
    Stmt& oldest = db.prepare("SELECT MIN(received_at) FROM webhook_inbox WHERE status = 'pending'");
    FB_TRY(each_row(oldest, [&](Stmt& row) { oldest_pending_ms = row.is_null(0) ? 0 : row.int64(0); }));
    FB_ASSIGN(integrations, group_counts(db, "SELECT status, COUNT(*) FROM integrations GROUP BY status"));
    FB_ASSIGN(jobs, group_counts(db, "SELECT status, COUNT(*) FROM sync_jobs GROUP BY status"));
    return Status::Ok();
  });
  p.family("fathom_bridge_store_up", "gauge", "1 when this scrape could read the store, else 0.");
  p.sample("fathom_bridge_store_up", store.ok() ? 1 : 0);
  if (store.ok()) {
    status_gauge(p, "fathom_bridge_inbox_events", "Webhook inbox events by status.", kInboxStatuses, inbox);
    p.family("fathom_bridge_inbox_oldest_pending_age_seconds", "gauge",
             "Age of the oldest pending inbox event (0 when none is pending).");
    int64_t age_ms = oldest_pending_ms == 0 ? 0 : std::max<int64_t>(0, m.clock.now_ms() - oldest_pending_ms);
    p.sample("fathom_bridge_inbox_oldest_pending_age_seconds", static_cast<double>(age_ms) / 1000.0);
    status_gauge(p, "fathom_bridge_integrations", "Integrations by status.", kIntegrationStatuses, integrations);
    status_gauge(p, "fathom_bridge_sync_jobs", "Sync jobs recorded in the store, by status.", kJobStatuses, jobs);
  }

  TokenManagerStats ts = m.tokens->stats();
  p.by_label("fathom_bridge_token_refreshes_total", "counter", "OAuth token refreshes, by outcome.", "outcome",
             {{"success", ts.refreshes}, {"failure", ts.refresh_failures}});

  FathomCallCounts fc = m.fathom->call_counts();
  p.by_label("fathom_bridge_fathom_api_calls_total", "counter",
             "Fathom API requests sent, by outcome (rate_limited: answered 429).", "outcome",
             {{"ok", fc.ok}, {"client_error", fc.client_error}, {"rate_limited", fc.rate_limited},
              {"server_error", fc.server_error}, {"network_error", fc.network_error}});

  ScriptStats ss = m.scripts->stats();
  p.by_label("fathom_bridge_script_calls_total", "counter", "Script hook calls, by outcome.", "outcome",
             {{"ok", static_cast<int64_t>(ss.events - std::min(ss.events, ss.failures))},
              {"error", static_cast<int64_t>(ss.failures)}});
  p.by_label("fathom_bridge_script_budget_stops_total", "counter",
             "Script calls stopped by their budget, by the limit hit (scripts.* settings).", "limit",
             {{"time", static_cast<int64_t>(ss.budget_stops[0])},
              {"instructions", static_cast<int64_t>(ss.budget_stops[1])},
              {"memory", static_cast<int64_t>(ss.budget_stops[2])},
              {"depth", static_cast<int64_t>(ss.budget_stops[3])},
              {"crm_calls", static_cast<int64_t>(ss.budget_stops[4])}});
  p.family("fathom_bridge_scripts_generation", "gauge", "The loaded version of the scripts (0: none is valid).");
  p.sample("fathom_bridge_scripts_generation", static_cast<double>(ss.generation));

  p.histogram("fathom_bridge_webhook_ingest_duration_seconds",
              "From a webhook delivery's request to its answer (verification and group commit).", ingest_latency_);
  p.histogram("fathom_bridge_webhook_processing_duration_seconds", "One batch of inbox events in a worker (handler and recorded outcome), any outcome.",
              m.workers->processing_latency());
  return p.take();
}

Readiness Metrics::readiness() {
  Bridge::Impl& m = bridge_.impl();
  Readiness r;
  int64_t integrations = 0;
  Status store = with_db([&](Db& db) -> Status {
    Stmt& q = db.prepare("SELECT COUNT(*) FROM integrations");
    return each_row(q, [&](Stmt& row) { integrations = row.int64(0); });
  });
  r.checks.push_back({"store", store.ok(),
                      store.ok() ? std::to_string(integrations) + " integration(s)" : store.to_string()});

  ScriptStats ss = m.scripts->stats();
  Status loaded = m.scripts->load_status();
  r.checks.push_back({"scripts", ss.generation != 0,
                      ss.generation != 0 ? "generation " + std::to_string(ss.generation) +
                                               (loaded.ok() ? "" : "; newest version rejected: " + loaded.message())
                                         : "no valid scripts are loaded: " + loaded.message()});

  const int64_t deadline_ms = static_cast<int64_t>(bridge_.config().webhooks.event_deadline_s) * 1000;
  WorkerProgress wp = m.workers->progress();
  int64_t busy_ms = wp.busy == 0 ? 0 : m.clock.now_ms() - wp.oldest_started_ms;
  bool progressing = wp.busy == 0 || busy_ms <= deadline_ms;
  std::string detail = std::to_string(wp.busy) + " batch(es) of events in progress";
  if (!progressing) {
    detail = "a webhook worker is stuck: the batch with event " + std::to_string(wp.oldest_event_id) +
             " has been processing for " +
             std::to_string(busy_ms / 1000) + " s, over webhooks.event_deadline_s (" +
             std::to_string(bridge_.config().webhooks.event_deadline_s) + " s)";
  }
  r.checks.push_back({"workers", progressing, detail});

  r.ready = true;
  for (const auto& c : r.checks) r.ready = r.ready && c.ok;
  return r;
}

}  // namespace fb::detail
