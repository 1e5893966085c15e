#include "sync/sync_engine.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "core/log.h"
#include "core/random.h"
#include "core/renewer.h"
#include "core/thread_name.h"
#include "core/utf8.h"
#include "sync/sync_schema.h"

namespace fb::detail {
namespace {

// Lease tokens of syncs running in this process: a lease whose pid is ours is alive exactly
// when its token is here.
std::mutex g_live_mu;
std::set<std::string> g_live_leases;

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
  return buf;
}

bool lease_owner_alive(Engine engine, const std::string& host, int64_t pid, const std::string& token) {
  // A shared store's holder may be any host of the fleet, and a matching host name does not make
  // its pid ours (containers on one node share the node's name): trust the expiry.
  if (engine == Engine::kPostgres) return true;
  if (host != host_name()) return true;  // cannot look into another machine: trust the expiry
  if (pid == static_cast<int64_t>(getpid())) {
    std::lock_guard lock(g_live_mu);
    return g_live_leases.count(token) > 0;
  }
  if (pid <= 0) return false;
  return kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

struct LiveLease {
  std::string token;
  explicit LiveLease(std::string t) : token(std::move(t)) {
    std::lock_guard lock(g_live_mu);
    g_live_leases.insert(token);
  }
  ~LiveLease() {
    std::lock_guard lock(g_live_mu);
    g_live_leases.erase(token);
  }
};

// The renewal of a running sync's lease (a Renewer's, every third of its time to live), so that a
// page that takes long (rate-limit waits, slow content fetches) never lets it lapse while its holder
// is alive. Ends once the lease is no longer the run's.
std::function<bool()> sync_lease_renewal(Db& db, Clock& clock, int64_t id, std::string token, int ttl_s) {
  return [&db, &clock, id, token = std::move(token), ttl_s] {
    int changed = -1;
    Status s = db.with([&]() -> Status {
      Stmt& u = db.prepare("UPDATE sync_state SET lease_until=? WHERE integration_id=? AND lease_token=?");
      u.bind_all(clock.now_s() + ttl_s, id, token);
      FB_TRY(u.run());
      changed = db.changes();
      return Status::Ok();
    });
    if (!s.ok()) {
      FB_LOG(kWarn, "sync") << "renewing the sync lease of integration " << id << ": " << s;  // tried again
      return true;
    }
    return changed != 0;  // 0: finished, or taken over: the run's next page write finds out
  };
}

// The next list page, fetched on its own thread while the run maps and stores the current one. A
// backfill is a chain of "list a page, map it, commit it"; without this, Fathom's answer time and the
// page's parse waited for the mapping and the other way round (bench/README.md, "Sync backfill").
// At most one request is ahead, and only for a cursor Fathom has just handed out, so the run makes
// the same requests in the same order as before; a page is still stored only after the one before
// it committed, so checkpoints and resume are unchanged. A run that stops early (cancelled, failed)
// has made at most one request it does not use, and counts it.
class PageAhead {
 public:
  using Fetch = std::function<Result<Page<Meeting>>(const std::string& cursor)>;
  PageAhead(Fetch fetch, const std::atomic<bool>* stop, const IntegrationInfo& info)
      : fetch_(std::move(fetch)), stop_(stop), integration_(info.id), tenant_(info.tenant_id) {}
  PageAhead(const PageAhead&) = delete;
  PageAhead& operator=(const PageAhead&) = delete;
  ~PageAhead() { close(); }

  void request(std::string cursor) {
    if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
    std::lock_guard lk(mu_);
    cursor_ = std::move(cursor);
    wanted_ = true;
    cv_.notify_all();
  }
  // The requested page. While it is on its way, cancelled() (the caller's stop conditions, which
  // live on the caller's thread) is polled; once true, the request is abandoned: a rate-limit
  // wait or retry backoff on the fetching thread ends with kCancelled.
  Result<Page<Meeting>> take(const std::function<bool()>& cancelled) {
    std::unique_lock lk(mu_);
    while (!result_) {
      if (!abandon_ && cancelled()) abandon_ = true;
      cv_.wait_for(lk, std::chrono::milliseconds(20));
    }
    Result<Page<Meeting>> r = std::move(*result_);
    result_.reset();
    return r;
  }
  // Ends the thread (abandoning a request still on its way); calls() is final after this.
  void close() {
    {
      std::lock_guard lk(mu_);
      abandon_ = true;
      quit_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  int64_t calls() const { return calls_; }

 private:
  void loop() {
    name_this_thread("fb-sync-ahead");
    LogScope log_scope(integration_, tenant_);  // its log lines name the integration, as the run's do
    CallScope stop_scope(stop_);
    CallScope abandon_scope(&abandon_);
    std::unique_lock lk(mu_);
    for (;;) {
      cv_.wait(lk, [&] { return quit_ || wanted_; });
      if (quit_) return;
      wanted_ = false;
      std::string cursor = std::move(cursor_);
      lk.unlock();
      Result<Page<Meeting>> r = fetch(cursor);
      lk.lock();
      calls_ = stop_scope.calls();
      result_.emplace(std::move(r));
      cv_.notify_all();
    }
  }

  // What escaped the fetch on the caller's thread reached the caller; here it must not end the process.
  Result<Page<Meeting>> fetch(const std::string& cursor) {
    try {
      return fetch_(cursor);
    } catch (const std::exception& e) {
      return Status::Internal(std::string("listing Fathom meetings: ") + e.what());
    }
  }

  Fetch fetch_;
  const std::atomic<bool>* stop_;
  int64_t integration_;
  std::string tenant_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
  std::string cursor_;
  bool wanted_ = false, quit_ = false;
  std::atomic<bool> abandon_{false};
  std::optional<Result<Page<Meeting>>> result_;
  std::atomic<int64_t> calls_{0};
};

bool resumable(SyncMode requested, const std::string& checkpoint_mode) {
  if (checkpoint_mode == sync_mode_name(requested)) return true;
  // A scheduled incremental finishes an interrupted backfill first: it covers more.
  return requested == SyncMode::kIncremental && checkpoint_mode == "backfill";
}

constexpr const char* kJobColumns =
    "id, integration_id, tenant_id, user_id, mode, trigger, status, message, error_code, error_details, "
    "query_json, resumed_job_id, started_at, ended_at, api_calls, pages, meetings_seen, meetings_new, "
    "meetings_changed, meetings_mapped, map_failures, content_fetched, items_skipped, skipped_items, cancel_requested_at, progress_at, script_versions";

JobRecord read_job(const Stmt& q) {
  JobRecord j;
  int c = 0;
  j.id = q.int64(c++);
  j.integration_id = q.int64(c++);
  j.tenant_id = q.text(c++);
  j.user_id = q.text(c++);
  j.mode = q.text(c++);
  j.trigger = q.text(c++);
  j.status = q.text(c++);
  j.message = q.text(c++);
  j.error_code = q.text(c++);
  j.error_details = q.text(c++);
  j.query_json = q.text(c++);
  j.resumed_job_id = q.int64(c++);
  j.started_at = q.int64(c++);
  j.ended_at = q.int64(c++);
  j.api_calls = q.int64(c++);
  j.pages = q.int64(c++);
  j.meetings_seen = q.int64(c++);
  j.meetings_new = q.int64(c++);
  j.meetings_changed = q.int64(c++);
  j.meetings_mapped = q.int64(c++);
  j.map_failures = q.int64(c++);
  j.content_fetched = q.int64(c++);
  j.items_skipped = q.int64(c++);
  j.skipped_items = q.text(c++);
  j.cancel_requested_at = q.int64(c++);
  j.progress_at = q.int64(c++);
  j.script_versions = q.text(c++);
  return j;
}

constexpr const char* kStateColumns =
    "integration_id, status, checkpoint_mode, checkpoint_cursor, checkpoint_query, checkpoint_job_id, "
    "checkpoint_pages, high_water, last_sync_at, last_attempt_at, last_error, last_error_code, last_job_id, "
    "lease_host, lease_pid, lease_until, runs, failures, consecutive_failures, meetings_new_total, "
    "meetings_changed_total, api_calls_total";

SyncState read_state(const Stmt& q) {
  SyncState s;
  int c = 0;
  s.integration_id = q.int64(c++);
  s.status = q.text(c++);
  s.checkpoint_mode = q.text(c++);
  s.checkpoint_cursor = q.text(c++);
  s.checkpoint_query = q.text(c++);
  s.checkpoint_job_id = q.int64(c++);
  s.checkpoint_pages = q.int64(c++);
  s.high_water = q.int64(c++);
  s.last_sync_at = q.int64(c++);
  s.last_attempt_at = q.int64(c++);
  s.last_error = q.text(c++);
  s.last_error_code = q.text(c++);
  s.last_job_id = q.int64(c++);
  s.lease_host = q.text(c++);
  s.lease_pid = q.int64(c++);
  s.lease_until = q.int64(c++);
  s.runs = q.int64(c++);
  s.failures = q.int64(c++);
  s.consecutive_failures = q.int64(c++);
  s.meetings_new_total = q.int64(c++);
  s.meetings_changed_total = q.int64(c++);
  s.api_calls_total = q.int64(c++);
  return s;
}

}  // namespace

SyncOptions SyncOptions::from_config(const Config& config) {
  SyncOptions o;
  o.backfill_days = config.sync.backfill_days;
  o.overlap_s = config.sync.overlap_s;
  o.fetch_transcripts = config.sync.fetch_transcripts;
  o.fetch_summaries = config.sync.fetch_summaries;
  o.include_action_items = config.sync.include_action_items;
  o.include_crm_matches = config.sync.include_crm_matches;
  o.lease_ttl_s = config.sync.lease_ttl_s;
  return o;
}

const char* sync_mode_name(SyncMode mode) {
  switch (mode) {
    case SyncMode::kBackfill: return "backfill";
    case SyncMode::kIncremental: return "incremental";
    case SyncMode::kManual: return "manual";
  }
  return "unknown";
}

// Everything one run() knows and counts.
struct SyncEngine::Run {
  SyncRequest req;
  IntegrationInfo info;
  std::string lease_token;
  int64_t job_id = 0;
  int64_t resumed_job_id = 0;
  std::string checkpoint_mode;  // the mode of the listing being paged (may differ on resume)
  MeetingQuery query;
  std::string query_json;
  std::string cursor;
  std::vector<int64_t> script_versions;  // of its CRM operations (a CrmAttribution for the run)
  bool moves_high_water = false;  // open-ended listings (no created_before) advance the mark
  bool single = false;            // manual one-recording run: no checkpoint
  bool found = false;             // single: the recording was listed
  int64_t pending_hw = 0;
  int64_t page_no = 0;            // pages listed
  int64_t pages_committed = 0;    // pages stored with their checkpoint
  int64_t progress_at = 0;  // the oldest created_at listed so far (sync_jobs.progress_at)
  std::string note;
  CallScope* scope = nullptr;
  int64_t ahead_calls = 0;  // Fathom calls made by list_pages' PageAhead thread
  int64_t calls() const { return (scope ? scope->calls() : 0) + ahead_calls; }
  int64_t seen = 0, created = 0, changed = 0, mapped = 0, map_failures = 0, content_fetched = 0;
  Status first_map_error;
  int64_t skipped = 0;     // malformed list items
  std::string first_skipped;
  int64_t refused = 0;     // meetings the store would not hold (store_page)
  std::string first_refused;
  nlohmann::json skipped_items = nlohmann::json::array();  // the first JobRecord::kMaxSkippedListed of both
};

Result<std::unique_ptr<SyncEngine>> SyncEngine::open(Db& db, FathomClient& client, IntegrationDirectory& directory,
                                                     MeetingStore& store, MeetingDispatcher& dispatcher,
                                                     MeetingPipeline* pipeline, Clock& clock, SyncOptions options) {
  FB_TRY(migrate_sync_schema(db));
  return std::unique_ptr<SyncEngine>(
      new SyncEngine(db, client, directory, store, dispatcher, pipeline, clock, options));
}

SyncEngine::SyncEngine(Db& db, FathomClient& client, IntegrationDirectory& directory, MeetingStore& store,
                       MeetingDispatcher& dispatcher, MeetingPipeline* pipeline, Clock& clock, SyncOptions options)
    : db_(db),
      client_(client),
      directory_(directory),
      store_(store),
      dispatcher_(dispatcher),
      pipeline_(pipeline),
      clock_(clock),
      options_(options),
      content_(store, client) {}

Result<JobRecord> SyncEngine::backfill(int64_t integration_id, const std::string& trigger) {
  return run({integration_id, SyncMode::kBackfill, 0, 0, 0, trigger});
}
Result<JobRecord> SyncEngine::incremental(int64_t integration_id, const std::string& trigger) {
  return run({integration_id, SyncMode::kIncremental, 0, 0, 0, trigger});
}
Result<JobRecord> SyncEngine::manual_range(int64_t integration_id, int64_t from_s, int64_t to_s,
                                           const std::string& trigger) {
  return run({integration_id, SyncMode::kManual, from_s, to_s, 0, trigger});
}
Result<JobRecord> SyncEngine::manual_recording(int64_t integration_id, int64_t recording_id,
                                               const std::string& trigger) {
  return run({integration_id, SyncMode::kManual, 0, 0, recording_id, trigger});
}

Result<JobRecord> SyncEngine::run(const SyncRequest& request, const std::function<void(int64_t)>& on_started) {
  if (request.integration_id <= 0) return Status::InvalidArgument("sync: integration id must be positive");
  if (request.mode == SyncMode::kManual && request.from_s > 0 && request.to_s > 0 && request.from_s >= request.to_s) {
    return Status::InvalidArgument("sync: manual range must have from < to");
  }
  if (request.recording_id != 0 && request.mode != SyncMode::kManual) {
    return Status::InvalidArgument("sync: a single recording is synced with mode manual");
  }
  if (stop_) return Status::Cancelled("sync engine is stopping");
  Run run;
  run.req = request;
  FB_ASSIGN(run.info, directory_.get(request.integration_id));
  LogScope log_scope(run.info.id, run.info.tenant_id);  // every line of this run names its integration
  if (!run.info.active || run.info.status != "active") {
    bool reconnect = run.info.status == "reconnect_required";
    std::string msg = "integration " + std::to_string(run.info.id) + " is " + run.info.status +
                      (reconnect ? ": the user must connect again; sync skipped" : ": sync skipped");
    FB_LOG(kWarn, "sync") << msg;
    FB_ASSIGN(int64_t id, log_job_start(run, "skipped", msg));
    Status s = db_.transaction([&]() -> Status {
      Stmt& u = db_.prepare("UPDATE sync_jobs SET ended_at=?, error_code=? WHERE id=?");
      u.bind_all(clock_.now_s(), reconnect ? "reconnect_required" : "failed_precondition", id);
      FB_TRY(u.run());
      return ended(request, id);
    });
    FB_TRY(s);
    if (on_started) on_started(id);
    return job(id);
  }

  FB_TRY(acquire_lease(run));
  LiveLease live(run.lease_token);
  Renewer keeper(std::chrono::milliseconds(std::max<int64_t>(200, options_.lease_ttl_s * 1000LL / 3)),
                 sync_lease_renewal(db_, clock_, run.info.id, run.lease_token, options_.lease_ttl_s));
  auto started = log_job_start(run, "running", "");
  if (!started.ok()) {
    (void)finish(run, started.status());
    return started.status();
  }
  run.job_id = *started;
  if (on_started) on_started(run.job_id);

  CallScope scope(&stop_);
  run.scope = &scope;
  CrmAttribution attribution(&run.script_versions);
  Status outcome = plan(run);
  if (outcome.ok()) {
    FB_LOG(kInfo, "sync") << sync_mode_name(request.mode) << " sync of integration " << run.info.id << " (job "
                          << run.job_id << ")" << (run.note.empty() ? "" : ": ") << run.note;
    // Leftovers first: meetings stored by an earlier (possibly killed) run whose mapping never
    // happened or failed. The listing below then only maps what it stores itself.
    MeetingPipeline* pipeline = pipeline_.load();
    if (pipeline && !run.single) {
      auto pending = store_.unmapped(run.info.id, options_.dispatch_pending_limit);
      outcome = pending.ok() ? map_and_fetch(run, *pending) : pending.status();
    }
    if (outcome.ok()) outcome = list_pages(run);
    if (outcome.ok() && run.single && !run.found) {
      outcome = Status::NotFound("recording " + std::to_string(request.recording_id) +
                                 " is no longer listed by Fathom around its created_at");
    }
  }
  FB_TRY(finish(run, outcome));
  if (outcome.ok()) {
    Status rec = directory_.record_sync(run.info.id, clock_.now_s());
    if (!rec.ok()) {
      FB_LOG(kWarn, "sync") << "record_sync for integration " << run.info.id << " failed: " << rec;
    }
  }
  return job(run.job_id);
}

Status SyncEngine::acquire_lease(Run& run) {
  run.lease_token = system_random().token(16);
  const int64_t id = run.info.id;
  return db_.transaction([&]() -> Status {
    // Read once the transaction has the store: a wait for it must not age the lease it grants.
    const int64_t now = clock_.now_s();
    Stmt& ins = db_.prepare("INSERT INTO sync_state(integration_id, updated_at) VALUES(?,?) ON CONFLICT DO NOTHING");
    ins.bind_all(id, now);
    FB_TRY(ins.run());
    Stmt& q = db_.prepare(
        "SELECT lease_token, lease_host, lease_pid, lease_until, last_job_id FROM sync_state WHERE integration_id=?");
    q.bind(1, id);
    FB_ASSIGN(bool row, q.step());
    std::optional<std::string> token = row ? q.opt_text(0) : std::nullopt;
    std::string host = row ? q.text(1) : "";
    int64_t pid = row ? q.int64(2) : 0, until = row ? q.int64(3) : 0, last_job = row ? q.int64(4) : 0;
    q.reset();
    if (token) {
      if (until > now && lease_owner_alive(db_.engine(), host, pid, *token)) {
        return Status::Conflict("a sync of integration " + std::to_string(id) + " is already running (pid " +
                                std::to_string(pid) + " on " + host + ")");
      }
      // Its owner died (or stopped renewing): the job it logged never finished.
      Stmt& j = db_.prepare(
          "UPDATE sync_jobs SET status='interrupted', ended_at=?, error_code='interrupted', message=? "
          "WHERE id=? AND status='running'");
      j.bind_all(now, "the process running this sync (pid " + std::to_string(pid) + " on " + host +
                          ") stopped before it finished; a later run resumed from its checkpoint",
                 last_job);
      FB_TRY(j.run());
      FB_LOG(kWarn, "sync") << "taking over the sync lease of integration " << id << " from pid " << pid;
    }
    Stmt& u = db_.prepare(
        "UPDATE sync_state SET lease_token=?, lease_host=?, lease_pid=?, lease_until=?, status='running', "
        "last_attempt_at=?, updated_at=? WHERE integration_id=?");
    u.bind_all(run.lease_token, host_name(), static_cast<int64_t>(getpid()), now + options_.lease_ttl_s, now, now, id);
    return u.run();
  });
}

Result<int64_t> SyncEngine::log_job_start(Run& run, const std::string& status, const std::string& message) {
  int64_t id = 0;
  Status s = db_.transaction([&]() -> Status {
    Stmt& q = db_.prepare(
        "INSERT INTO sync_jobs(integration_id, tenant_id, user_id, mode, trigger, status, message, started_at) "
        "VALUES(?,?,?,?,?,?,?,?)");
    q.bind_all(run.info.id, run.info.tenant_id, run.info.user_id, sync_mode_name(run.req.mode), run.req.trigger,
               status, message, clock_.now_s());
    FB_TRY(q.run());
    id = db_.last_insert_rowid();
    if (status == "running") {
      Stmt& st = db_.prepare("UPDATE sync_state SET last_job_id=? WHERE integration_id=?");
      st.bind_all(id, run.info.id);
      FB_TRY(st.run());
    }
    return Status::Ok();
  });
  FB_TRY(s);
  return id;
}

Status SyncEngine::plan(Run& run) {
  FB_ASSIGN(SyncState st, state(run.info.id));
  const int64_t now = clock_.now_s();
  MeetingQuery& q = run.query;
  if (run.req.recording_id != 0) {
    auto m = store_.get(run.info.id, run.req.recording_id);
    if (!m.ok()) {
      return m.status().with_context("manual sync of one recording (Fathom has no endpoint for a single meeting; "
                                     "sync a range that covers it first)");
    }
    run.single = true;
    q.include_action_items = options_.include_action_items;
    q.include_crm_matches = options_.include_crm_matches;
    q.created_after = m->created_at - 1;  // Fathom's bounds are strict (or undocumented): widen by 1 s
    q.created_before = m->created_at + 1;
    run.checkpoint_mode = "manual";
  } else if (st.has_checkpoint() && resumable(run.req.mode, st.checkpoint_mode)) {
    FB_ASSIGN(q, MeetingQuery::from_json(st.checkpoint_query));
    run.cursor = st.checkpoint_cursor;
    run.resumed_job_id = st.checkpoint_job_id;
    run.checkpoint_mode = st.checkpoint_mode;
    Status read = db_.with([&]() -> Status {
      Stmt& p = db_.prepare("SELECT pending_high_water FROM sync_state WHERE integration_id=?");
      p.bind(1, run.info.id);
      FB_ASSIGN(bool row, p.step());
      if (row) run.pending_hw = p.int64(0);
      p.reset();
      return Status::Ok();
    });
    FB_TRY(read);
    run.note = "resuming the " + st.checkpoint_mode + " listing of job " + std::to_string(st.checkpoint_job_id) +
               " after " + std::to_string(st.checkpoint_pages) + " committed pages";
  } else {
    const int64_t window_start = now - static_cast<int64_t>(options_.backfill_days) * 86400;
    switch (run.req.mode) {
      case SyncMode::kBackfill:
        q.created_after = window_start;
        break;
      case SyncMode::kIncremental:
        if (st.high_water > 0) {
          q.created_after = st.high_water - options_.overlap_s;
        } else {
          q.created_after = window_start;
          run.note = "no high-water mark yet: backfilling " + std::to_string(options_.backfill_days) + " days";
        }
        break;
      case SyncMode::kManual:
        q.created_after = run.req.from_s;
        q.created_before = run.req.to_s;
        break;
    }
    // Action items and CRM matches come with the list page for every kind of credential: free.
    q.include_action_items = options_.include_action_items;
    q.include_crm_matches = options_.include_crm_matches;
    // API keys may take content with the list: one call per 10 meetings instead of one each.
    // OAuth may not (fathom-api.md 1.5); those recordings are fetched one by one when needed.
    if (run.info.kind == "api_key") {
      q.include_transcript = options_.fetch_transcripts;
      q.include_summary = options_.fetch_summaries;
    }
    run.checkpoint_mode = run.req.mode == SyncMode::kIncremental && st.high_water == 0 ? "backfill"
                                                                                        : sync_mode_name(run.req.mode);
  }
  run.moves_high_water = !run.single && q.created_before == 0 && run.checkpoint_mode != "manual";
  run.query_json = q.to_json();
  return db_.transaction([&]() -> Status {
    Stmt& u = db_.prepare("UPDATE sync_jobs SET query_json=?, resumed_job_id=?, message=? WHERE id=?");
    u.bind_all(run.query_json, run.resumed_job_id, run.note, run.job_id);
    return u.run();
  });
}

Status SyncEngine::list_pages(Run& run) {
  auto list = [&](const std::string& cursor) { return client_.list_meetings(run.info.id, run.query, cursor); };
  PageAhead ahead(list, &stop_, run.info);
  struct Closer {  // on every way out: the thread joined, its calls counted for finish()
    PageAhead& ahead;
    Run& run;
    ~Closer() {
      ahead.close();
      run.ahead_calls = ahead.calls();
    }
  } closer{ahead, run};
  std::string cursor = run.cursor;
  bool requested = false;  // the page at `cursor` is on its way on ahead's thread
  auto stopping = [&] { return stop_ || CallScope::cancelled(); };
  for (;;) {
    if (stopping()) return Status::Cancelled("sync stopped by request");
    FB_TRY(check_cancel(run));
    Result<Page<Meeting>> got = requested ? ahead.take(stopping) : list(cursor);
    run.ahead_calls = ahead.calls();
    if (stopping()) return Status::Cancelled("sync stopped by request");
    FB_ASSIGN(Page<Meeting> page, std::move(got));
    ++run.page_no;
    requested = !page.last() && page.next_cursor != cursor;
    if (requested) ahead.request(page.next_cursor);
    // A page is one batch: mapped first, then its meetings, their mapped versions and the
    // checkpoint commit together (a crash before that commit lists and maps the page again; the
    // idempotency keys make the second mapping harmless).
    std::vector<BatchItem> items;
    items.reserve(page.items.size());
    for (const Meeting& m : page.items) {
      BatchItem it;
      it.integration = run.info;
      it.meeting = m;
      it.source = "sync";
      items.push_back(std::move(it));
    }
    FB_ASSIGN(BatchLease lease, dispatcher_.prepare_batch(items, store_));
    FB_TRY(fetch_for_mapping(run, items));
    if (MeetingPipeline* pipeline = pipeline_.load()) {
      dispatcher_.run_batch(items, *pipeline);
      for (const BatchItem& it : items) {
        if (it.mapped) ++run.mapped;
        if (!it.map_error.ok()) {
          ++run.map_failures;
          if (run.first_map_error.ok()) run.first_map_error = it.map_error;
        }
      }
    }
    FB_TRY(store_page(run, page, items));
    if (observer_) observer_(run.info.id, run.page_no, page);
    if (page.last()) return Status::Ok();
    if (page.next_cursor == cursor) {
      return Status::Malformed("Fathom GET /meetings returned the cursor it was given; stopping to avoid a loop");
    }
    cursor = page.next_cursor;
  }
}

Status SyncEngine::fetch_for_mapping(Run& run, const std::vector<BatchItem>& items) {
  for (const BatchItem& it : items) {
    if (!it.upsert.needs_mapping) continue;
    // What the listing carried: parts_sent (the page parser keeps no separate copy of the parts).
    const int sent = content_parts_of(it.meeting);
    auto carried = [&](ContentKind k) { return (sent & content_part(k)) != 0; };
    for (auto [wanted, kind, have] :
         {std::tuple{options_.fetch_transcripts, ContentKind::kTranscript, carried(ContentKind::kTranscript)},
          std::tuple{options_.fetch_summaries, ContentKind::kSummary, carried(ContentKind::kSummary)}}) {
      if (!wanted || have) continue;  // the listed meeting carries it: stored with it, once
      FB_TRY(fetch_content(run, it.meeting.recording_id, kind));
    }
  }
  return Status::Ok();
}

Status SyncEngine::fetch_content(Run& run, int64_t rec, ContentKind kind) {
  bool fetched = false;
  auto c = content_.get(run.info.id, rec, kind, &fetched);
  if (fetched) ++run.content_fetched;
  if (!c.ok()) {
    // Budget and credential problems stop the sync; a missing transcript does not.
    if (c.code() == Code::kCancelled || c.code() == Code::kReconnectRequired || c.code() == Code::kRateLimited ||
        c.code() == Code::kUnauthenticated) {
      return c.status();
    }
    FB_LOG(kWarn, "sync") << "fetching the " << content_kind_name(kind) << " of meeting " << rec << ": " << c.status();
  }
  return Status::Ok();
}

namespace {
// A row the store refuses by one of its rules (a constraint or a trigger: SQLite's
// SQLITE_CONSTRAINT, PostgreSQL's class 23), which no retry changes: that meeting's fault. Anything
// else (away, locked, full, read-only, out of memory, a statement timeout) is the store's, and may
// pass: never a reason to give a meeting up.
bool refuses_row(const Status& s) { return s.is(Code::kAlreadyExists); }
constexpr size_t kMaxRefusalBytes = 1000;  // of a refused meeting's reason in the job
// Of a job's message, error_details' message and the integration's last_error: a store's error
// can quote a whole row (PostgreSQL's DETAIL "Failing row contains (...)", the meeting's JSON
// included), a CRM's a whole page. Cut on a character, and marked.
constexpr size_t kMaxMessageBytes = 2000;
std::string job_text(std::string_view s) { return utf8_excerpt(s, kMaxMessageBytes, "... (cut)"); }
}  // namespace

Status SyncEngine::store_page(Run& run, const Page<Meeting>& page, const std::vector<BatchItem>& items) {
  const int64_t now = clock_.now_s();
  int64_t seen = 0, created = 0, changed = 0, hw = 0, reached = 0;
  bool found = false;
  std::vector<bool> refused(items.size(), false);  // by the store, when recorded alone
  std::vector<SkippedItem> refusals;               // those, as the job lists them
  bool recorded = false;                           // the meetings are committed already, one by one
  auto commit = [&] {
    return db_.transaction([&]() -> Status {
      seen = created = changed = 0;
      hw = run.pending_hw;
      reached = run.progress_at;  // the oldest created_at listed so far
      found = run.found;
      if (!recorded) FB_TRY(dispatcher_.record_batch(items, store_));
      for (size_t i = 0; i < items.size(); ++i) {
        const BatchItem& it = items[i];
        const Meeting& m = it.meeting;
        ++seen;
        if (!refused[i] && it.upsert.created) ++created;
        else if (!refused[i] && it.upsert.changed) ++changed;
        if (run.moves_high_water) hw = std::max(hw, m.created_at_s);
        if (m.created_at_s > 0 && (reached == 0 || m.created_at_s < reached)) reached = m.created_at_s;
        if (m.recording_id == run.req.recording_id) found = true;
      }
      // The checkpoint commits with the page: a crash either loses both or keeps both.
      if (run.single) {
        Stmt& u = db_.prepare("UPDATE sync_state SET lease_until=? WHERE integration_id=? AND lease_token=?");
        u.bind_all(now + options_.lease_ttl_s, run.info.id, run.lease_token);
        FB_TRY(u.run());
      } else if (page.last()) {
        Stmt& u = db_.prepare(
            "UPDATE sync_state SET checkpoint_mode=NULL, checkpoint_cursor=NULL, checkpoint_query=NULL, "
            "checkpoint_job_id=NULL, checkpoint_pages=0, high_water=MAX(high_water, ?), pending_high_water=0, "
            "lease_until=?, updated_at=? WHERE integration_id=? AND lease_token=?");
        u.bind_all(hw, now + options_.lease_ttl_s, now, run.info.id, run.lease_token);
        FB_TRY(u.run());
      } else {
        Stmt& u = db_.prepare(
            "UPDATE sync_state SET checkpoint_mode=?, checkpoint_cursor=?, checkpoint_query=?, checkpoint_job_id=?, "
            "checkpoint_pages=checkpoint_pages+1, pending_high_water=?, lease_until=?, updated_at=? "
            "WHERE integration_id=? AND lease_token=?");
        u.bind_all(run.checkpoint_mode, page.next_cursor, run.query_json, run.job_id, hw,
                   now + options_.lease_ttl_s, now, run.info.id, run.lease_token);
        FB_TRY(u.run());
      }
      if (db_.changes() != 1) {
        return Status::Conflict("the sync lease of integration " + std::to_string(run.info.id) +
                                " was taken over by another process; stopping");
      }
      Stmt& j = db_.prepare(
          "UPDATE sync_jobs SET pages=pages+1, meetings_seen=meetings_seen+?, meetings_new=meetings_new+?, "
          "meetings_changed=meetings_changed+?, items_skipped=items_skipped+?, api_calls=?, meetings_mapped=?, "
          "map_failures=?, progress_at=? WHERE id=?");
      j.bind_all(seen, created, changed, static_cast<int64_t>(page.skipped.size() + refusals.size()), run.calls(),
                 run.mapped, run.map_failures, reached, run.job_id);
      return j.run();
    });
  };
  Status s = commit();
  // One meeting the store will not hold fails the page's transaction. Recorded one by one, that
  // meeting is skipped, named in the job like a malformed item, and the rest of the page and the
  // pages after it are stored: otherwise every later sync stops on the same page. Only for a
  // refusal by the store's rules (refuses_row): any other error, on the page or on a meeting alone,
  // fails the page with its checkpoint kept, as before, so an outage never costs a meeting. Nor
  // when the store refuses every meeting of a page of several: a rule that holds for all of them is
  // the store's, not a meeting's.
  if (!s.ok() && refuses_row(s)) {
    FB_LOG(kWarn, "sync") << "integration " << run.info.id << ", job " << run.job_id << ", page " << run.page_no
                          << ": cannot record its " << items.size() << " meeting(s) together, recording them one by "
                          << "one: " << utf8_text(s.message(), kMaxRefusalBytes);
    size_t alone = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      Status one = dispatcher_.record_batch(std::vector<BatchItem>{items[i]}, store_);
      if (one.ok()) {
        ++alone;
        continue;
      }
      if (!refuses_row(one)) return one;  // the store, not the meeting: the page fails, as above
      refused[i] = true;
      int64_t index = static_cast<int64_t>(i);  // its position among the page's items, malformed ones included
      for (const SkippedItem& bad : page.skipped) index += bad.index <= index ? 1 : 0;
      // Cut: PostgreSQL's DETAIL for a refused row quotes the whole row, the meeting's JSON too.
      refusals.push_back({index, items[i].meeting.recording_id,
                          utf8_text("the store refused meeting " + std::to_string(items[i].meeting.recording_id) +
                                        ": " + one.message(),
                                    kMaxRefusalBytes)});
    }
    if (alone == 0 && items.size() > 1) return s;
    recorded = true;
    s = commit();
  }
  FB_TRY(s);
  run.progress_at = reached;
  auto list = [&](const SkippedItem& item) {
    if (run.skipped_items.size() < JobRecord::kMaxSkippedListed) {
      run.skipped_items.push_back(
          {{"page", run.page_no}, {"index", item.index}, {"recording_id", item.recording_id}, {"reason", item.reason}});
    }
  };
  for (const SkippedItem& item : page.skipped) {
    FB_LOG(kWarn, "sync") << "integration " << run.info.id << ", job " << run.job_id << ", page " << run.page_no
                          << ": skipped item " << item.index
                          << (item.recording_id ? " (recording " + std::to_string(item.recording_id) + ")" : "")
                          << ": " << item.reason;
    if (run.skipped++ == 0) run.first_skipped = item.reason;
    list(item);
  }
  for (const SkippedItem& item : refusals) {
    FB_LOG(kError, "sync") << "integration " << run.info.id << ", job " << run.job_id << ", page " << run.page_no
                           << ": skipped item " << item.index << ": " << item.reason;
    if (run.refused++ == 0) run.first_refused = item.reason;
    list(item);
  }
  run.seen += seen;
  run.created += created;
  run.changed += changed;
  run.pending_hw = hw;
  run.found = found;
  ++run.pages_committed;
  return Status::Ok();
}

Status SyncEngine::map_and_fetch(Run& run, const std::vector<int64_t>& ids) {
  MeetingPipeline* pipeline = pipeline_.load();
  for (int64_t rec : ids) {
    for (auto [wanted, kind] : {std::pair{options_.fetch_transcripts, ContentKind::kTranscript},
                                std::pair{options_.fetch_summaries, ContentKind::kSummary}}) {
      if (wanted) FB_TRY(fetch_content(run, rec, kind));
    }
    if (!pipeline) continue;
    FB_ASSIGN(DispatchResult r, dispatcher_.dispatch(run.info, rec, *pipeline, "sync"));
    run.mapped += r.mapped_count;
    if (r.outcome == DispatchOutcome::kFailed) {
      ++run.map_failures;
      if (run.first_map_error.ok()) run.first_map_error = r.error;
    }
  }
  return Status::Ok();
}

Status SyncEngine::finish(Run& run, const Status& outcome) {
  const int64_t now = clock_.now_s();
  const int64_t calls = run.calls();
  std::string status, message, error_code, details;
  if (outcome.ok()) {
    // Meetings that failed to map are in the status, not only in the counts: a host or an
    // operator reading "succeeded" must be able to trust that everything reached the CRM.
    status = run.map_failures > 0 || run.refused > 0 ? "succeeded_with_errors" : "succeeded";
    message = std::to_string(run.page_no) + " pages, " + std::to_string(run.seen) + " meetings seen, " +
              std::to_string(run.created) + " new, " + std::to_string(run.changed) + " changed, " +
              std::to_string(run.mapped) + " mapped";
    if (run.map_failures > 0) {
      message += ", " + std::to_string(run.map_failures) + " failed to map (first: " +
                 run.first_map_error.to_string() + ")";
    }
    if (run.skipped > 0) {
      message += ", " + std::to_string(run.skipped) + " malformed items skipped (first: " + run.first_skipped + ")";
    }
    if (run.refused > 0) {
      message += ", " + std::to_string(run.refused) + " meeting(s) not stored (first: " + run.first_refused + ")";
    }
    if (!run.note.empty()) message += "; " + run.note;
    message = job_text(message);  // a CRM's error or a malformed item's text: stored as text
  } else {
    status = outcome.is(Code::kCancelled)                              ? "cancelled"
             : outcome.is(Code::kReconnectRequired) && calls == 0      ? "skipped"
                                                                       : "failed";
    message = job_text(outcome.message());  // stored as text: never bytes that are not UTF-8
    error_code = code_name(outcome.code());
  }
  if (!outcome.ok() || run.map_failures > 0 || run.refused > 0) {
    nlohmann::json d = {{"code", code_name(outcome.code())},
                        {"message", job_text(outcome.message())},
                        // page_no also counts a page that failed after it was listed
                        {"failed_page", outcome.ok() ? 0 : run.pages_committed + 1},
                        {"pages_committed", run.pages_committed},
                        {"resumed_job_id", run.resumed_job_id},
                        {"checkpoint_kept", !outcome.ok() && !run.single}};
    if (run.map_failures > 0) {
      d["map_failures"] = run.map_failures;
      d["first_map_error"] = job_text(run.first_map_error.to_string());
    }
    if (run.refused > 0) {  // listed in skipped_items with the others
      d["meetings_not_stored"] = run.refused;
      d["first_not_stored"] = utf8_text(run.first_refused);
    }
    details = d.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  const bool failed = status == "failed";
  const std::string state_status = failed ? "failed" : "idle";
  return db_.transaction([&]() -> Status {
    if (run.job_id > 0) {
      Stmt& j = db_.prepare(
          "UPDATE sync_jobs SET status=?, message=?, error_code=?, error_details=?, ended_at=?, api_calls=?, "
          "pages=?, meetings_seen=?, meetings_new=?, meetings_changed=?, meetings_mapped=?, map_failures=?, "
          "content_fetched=?, items_skipped=?, skipped_items=?, script_versions=? WHERE id=?");
      const int64_t skipped = run.skipped + run.refused;  // all listed in skipped_items (its first 50)
      j.bind_all(status, message, error_code.empty() ? std::optional<std::string>() : error_code,
                 details.empty() ? std::optional<std::string>() : details, now, calls, run.page_no, run.seen,
                 run.created, run.changed, run.mapped, run.map_failures, run.content_fetched, skipped,
                 skipped ? std::optional<std::string>(run.skipped_items.dump(-1, ' ', false,
                                                                             nlohmann::json::error_handler_t::replace))
                         : std::nullopt,
                 CrmAttribution::to_json(run.script_versions), run.job_id);
      FB_TRY(j.run());
    }
    Stmt& s = db_.prepare(
        "UPDATE sync_state SET status=?, lease_token=NULL, lease_host=NULL, lease_pid=NULL, lease_until=NULL, "
        "last_error=?, last_error_code=?, runs=runs+1, failures=failures+?, "
        "consecutive_failures=CASE WHEN ? THEN consecutive_failures+1 ELSE 0 END, "
        "last_sync_at=CASE WHEN ? THEN ? ELSE last_sync_at END, meetings_new_total=meetings_new_total+?, "
        "meetings_changed_total=meetings_changed_total+?, api_calls_total=api_calls_total+?, updated_at=? "
        "WHERE integration_id=? AND lease_token=?");
    s.bind_all(state_status, outcome.ok() ? std::optional<std::string>() : message,
               outcome.ok() ? std::optional<std::string>() : std::string(code_name(outcome.code())),
               int64_t{failed}, int64_t{failed}, int64_t{outcome.ok()}, now, run.created, run.changed, calls, now,
               run.info.id, run.lease_token);
    FB_TRY(s.run());
    return run.job_id > 0 ? ended(run.req, run.job_id) : Status::Ok();
  });
}

Status SyncEngine::ended(const SyncRequest& request, int64_t job_id) {
  if (!request.on_finished) return Status::Ok();
  FB_ASSIGN(JobRecord j, job(job_id));  // this transaction's view: the end just written
  return request.on_finished(j);
}

Result<std::vector<JobRecord>> SyncEngine::recent_jobs(const JobFilter& f) {
  std::string sql = std::string("SELECT ") + kJobColumns + " FROM sync_jobs WHERE started_at >= ?";
  if (f.integration_id) sql += " AND integration_id = ?";
  if (!f.tenant_id.empty()) sql += " AND tenant_id = ?";
  if (!f.status.empty()) sql += " AND status = ?";
  if (!f.mode.empty()) sql += " AND mode = ?";
  sql += " ORDER BY started_at DESC, id DESC LIMIT ?";
  std::vector<JobRecord> out;
  FB_TRY(db_.with([&]() -> Status {
    Stmt& q = db_.prepare(sql);
    int i = 0;
    q.bind(++i, f.since_s);
    if (f.integration_id) q.bind(++i, f.integration_id);
    if (!f.tenant_id.empty()) q.bind(++i, f.tenant_id);
    if (!f.status.empty()) q.bind(++i, f.status);
    if (!f.mode.empty()) q.bind(++i, f.mode);
    q.bind(++i, f.limit > 0 ? f.limit : 50);
    return each_row(q, [&](const Stmt& r) { out.push_back(read_job(r)); });
  }));
  return out;
}

Status SyncEngine::check_cancel(Run& run) {
  int64_t requested = 0;
  Status read = db_.with([&]() -> Status {
    Stmt& q = db_.prepare("SELECT cancel_requested_at FROM sync_jobs WHERE id=?");
    q.bind(1, run.job_id);
    FB_ASSIGN(bool row, q.step());
    if (row) requested = q.int64(0);
    q.reset();
    return Status::Ok();
  });
  FB_TRY(read);
  if (requested == 0) return Status::Ok();
  return Status::Cancelled("sync cancelled by request (job " + std::to_string(run.job_id) + ", after " +
                           std::to_string(run.page_no) + " pages; the checkpoint is kept and the next run resumes there)");
}

Result<bool> SyncEngine::claim_due_run(int64_t integration_id, int64_t now_s, int interval_s) {
  bool claimed = false;
  Status s = db_.with([&]() -> Status {
    Stmt& ins = db_.prepare("INSERT INTO sync_state(integration_id, updated_at) VALUES(?,?) ON CONFLICT DO NOTHING");
    ins.bind_all(integration_id, now_s);
    FB_TRY(ins.run());
    // Atomic on its own: of several hosts updating at once, the later ones re-read the row (SQLite's
    // one writer; PostgreSQL's row lock) and find it no longer due.
    Stmt& u = db_.prepare(
        "UPDATE sync_state SET last_attempt_at=?, updated_at=? WHERE integration_id=? AND last_attempt_at <= ?");
    u.bind_all(now_s, now_s, integration_id, now_s - interval_s);
    FB_TRY(u.run());
    claimed = db_.changes() == 1;
    return Status::Ok();
  });
  FB_TRY(s);
  return claimed;
}

Status SyncEngine::cancel(int64_t job_id) {
  int changed = 0;
  Status asked = db_.transaction([&]() -> Status {
    Stmt& u = db_.prepare(
        "UPDATE sync_jobs SET cancel_requested_at=? WHERE id=? AND status='running' AND cancel_requested_at=0");
    u.bind_all(std::max<int64_t>(clock_.now_s(), 1), job_id);
    FB_TRY(u.run());
    changed = db_.changes();
    return Status::Ok();
  });
  FB_TRY(asked);
  if (changed == 1) return Status::Ok();
  FB_ASSIGN(JobRecord j, job(job_id));
  if (j.status == "running") return Status::Ok();  // already requested: cancelling twice is harmless
  return Status::FailedPrecondition("sync job " + std::to_string(job_id) + " is not running (it is " + j.status +
                                    ")");
}

Result<JobRecord> SyncEngine::job(int64_t job_id) {
  std::optional<JobRecord> out;
  FB_TRY(db_.with([&]() -> Status {
    Stmt& q = db_.prepare(std::string("SELECT ") + kJobColumns + " FROM sync_jobs WHERE id=?");
    q.bind(1, job_id);
    FB_ASSIGN(bool row, q.step());
    if (row) out = read_job(q);
    q.reset();
    return Status::Ok();
  }));
  if (!out) return Status::NotFound("no sync job " + std::to_string(job_id));
  return *out;
}

Result<SyncState> SyncEngine::state(int64_t integration_id) {
  SyncState out;
  out.integration_id = integration_id;
  FB_TRY(db_.with([&]() -> Status {
    Stmt& q = db_.prepare(std::string("SELECT ") + kStateColumns + " FROM sync_state WHERE integration_id=?");
    q.bind(1, integration_id);
    FB_ASSIGN(bool row, q.step());
    if (row) out = read_state(q);
    q.reset();
    return Status::Ok();
  }));
  return out;
}

Result<std::vector<SyncState>> SyncEngine::states(const std::string& status) {
  std::vector<SyncState> out;
  FB_TRY(db_.with([&]() -> Status {
    Stmt& q = db_.prepare(std::string("SELECT ") + kStateColumns +
                          " FROM sync_state WHERE ?='' OR status=? ORDER BY integration_id");
    q.bind_all(status, status);
    return each_row(q, [&](const Stmt& r) { out.push_back(read_state(r)); });
  }));
  return out;
}

}  // namespace fb::detail
