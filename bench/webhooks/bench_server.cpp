// fb_webhook_bench_server: the built-in webhook ingest path (HttpServer -> Receiver -> Inbox with
// group commit), optionally with workers that process the inbox end to end (MeetingStore upsert,
// exactly-once dispatch to a pipeline, reaction), over a real SQLite file. Driven by run.sh.
//
//   fb_webhook_bench_server --db FILE --secret whsec_... [--full-sync] [--threads 64] [--workers 0]
//                           [--claim-batch 32] [--checkpoint-mb 32] [--inline-checkpoint]
//                           [--default-malloc] [--inline-bodies]
// --default-malloc: glibc's malloc thresholds and SQLite's memory statistics as they come (the
// sidecar's main() changes both); --inline-bodies: webhook bodies in the inbox rows, not the body log.
//
// Bodies go to the body log beside the database ("<db>-webhook-bodies", as the Bridge does);
// --inline-bodies keeps them in SQLite's body column instead.
//
// First stdout line: "listening <port> <path>". Control routes (loopback only):
//   POST /_bench/mark    start a measurement window (CPU time, counters, wall clock)
//   GET  /_bench/report  JSON: what happened since the mark
// Stops on SIGINT/SIGTERM.
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "core/clock.h"
#include "core/log.h"
#include "core/random.h"
#include "crypto/sealer.h"
#include "server/http_server.h"
#include "server/webhook_routes.h"
#include "store/db.h"
#include "sync/meeting_dispatcher.h"
#include "sync/meeting_store.h"
#include "webhooks/inbox.h"
#include "webhooks/meeting_handler.h"
#include "webhooks/receiver.h"
#include "webhooks/registry.h"
#include "webhooks/schema.h"
#include "webhooks/worker.h"

using namespace fb;
using namespace fb::detail;

namespace {

int64_t cpu_us(int who, bool user) {
  rusage ru{};
  getrusage(who, &ru);
  const timeval& tv = user ? ru.ru_utime : ru.ru_stime;
  return static_cast<int64_t>(tv.tv_sec) * 1'000'000 + tv.tv_usec;
}

class OneIntegration final : public IntegrationDirectory {
 public:
  std::vector<IntegrationInfo> list_active() override { return {info()}; }
  Result<IntegrationInfo> get(int64_t id) override {
    if (id != 1) return Status::NotFound("no integration");
    return info();
  }
  Status record_sync(int64_t, int64_t) override { return Status::Ok(); }

 private:
  static IntegrationInfo info() {
    IntegrationInfo i;
    i.id = 1;
    i.tenant_id = "bench";
    i.user_id = "u1";
    i.kind = "api_key";
    i.status = "active";
    i.active = true;
    return i;
  }
};

// The cheapest honest pipeline: reads the meeting's recording id (the mapping itself is the CRM's
// cost, not ours) and remembers when it last finished.
class CountingPipeline final : public MeetingPipeline {
 public:
  Status on_meeting(const MeetingEvent& e) override {
    if (e.raw_json.empty()) return Status::Internal("empty meeting");
    mapped_.fetch_add(1);
    return Status::Ok();
  }
  Status on_webhook(const MeetingEvent&) override {
    reactions_.fetch_add(1);
    last_ms_.store(system_clock().mono_ms());
    return Status::Ok();
  }
  int64_t mapped() const { return mapped_.load(); }
  int64_t reactions() const { return reactions_.load(); }
  int64_t last_ms() const { return last_ms_.load(); }

 private:
  std::atomic<int64_t> mapped_{0}, reactions_{0}, last_ms_{0};
};

struct Mark {
  int64_t mono_ms = 0, user_us = 0, sys_us = 0;
  ReceiverStats rx;
  int64_t processed = 0, mapped = 0;
};

std::string arg(int argc, char** argv, const char* name, const char* fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return fallback;
}
bool flag(int argc, char** argv, const char* name) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return true;
  }
  return false;
}

int fail(const Status& s) {
  std::cerr << "fb_webhook_bench_server: " << s << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string db_path = arg(argc, argv, "--db", "");
  std::string secret = arg(argc, argv, "--secret", "");
  if (db_path.empty() || secret.empty()) {
    std::cerr << "usage: fb_webhook_bench_server --db FILE --secret whsec_... [--full-sync] [--threads N] "
                 "[--workers N] [--claim-batch N]\n";
    return 2;
  }
  set_log_level(LogLevel::kWarn);
  if (!flag(argc, argv, "--default-malloc")) {
    // A process-level choice, as a sidecar's main() makes it: glibc's per-thread arenas otherwise
    // hand freed 20 KB..1 MB buffers back with madvise() and fault them in again on the next
    // request (~15% of the CPU per delivery in perf). Same as GLIBC_TUNABLES
    // glibc.malloc.trim_threshold / mmap_threshold.
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    disable_sqlite_memory_statistics();  // as `fathom-bridge serve` does
  }
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);  // every thread inherits it; main waits below

  DbOptions dbo;
  dbo.full_sync = flag(argc, argv, "--full-sync");
  auto db = Db::open(db_path, dbo);
  if (!db.ok()) return fail(db.status());
  if (Status s = migrate_webhooks(**db); !s.ok()) return fail(s);
  SystemClock& clock = static_cast<SystemClock&>(system_clock());
  auto store = MeetingStore::open(**db, clock);
  if (!store.ok()) return fail(store.status());
  auto dispatcher = MeetingDispatcher::open(**db, clock);
  if (!dispatcher.ok()) return fail(dispatcher.status());

  Sealer sealer;
  if (Status s = sealer.add_key("bench", SecretString(system_random().token(24).substr(0, 32))); !s.ok()) return fail(s);
  Config config;
  Registry registry(**db, sealer, clock, system_random(), config.webhooks);
  auto reg = registry.add_manual(1, SecretString(secret));
  if (!reg.ok()) return fail(reg.status());
  InboxOptions io;
  io.checkpoint_bytes = static_cast<size_t>(std::stol(arg(argc, argv, "--checkpoint-mb", "32"))) << 20;
  io.background_checkpoint = !flag(argc, argv, "--inline-checkpoint");
  if (!flag(argc, argv, "--inline-bodies")) io.body_dir = default_body_dir(db_path);  // as the Bridge does
  Inbox inbox(**db, clock, io);
  Receiver receiver(registry, inbox, clock, config.webhooks);

  OneIntegration directory;
  CountingPipeline pipeline;
  (*store)->set_content_loader(inbox_content_loader(inbox));
  (*dispatcher)->set_content_loader(inbox_content_loader(inbox));
  MeetingEventHandler handler(**store, **dispatcher, directory, pipeline);
  WorkerOptions wo = WorkerOptions::from(config.webhooks);
  wo.workers = std::stoi(arg(argc, argv, "--workers", "0"));
  wo.claim_batch = std::stoi(arg(argc, argv, "--claim-batch", "32"));
  WorkerPool pool(inbox, handler, clock, system_random(), wo);
  if (Status s = pool.start(); !s.ok()) return fail(s);

  HttpServerOptions so = HttpServer::options_from(config.server, config.webhooks);
  so.port = 0;
  so.threads = std::stoi(arg(argc, argv, "--threads", "64"));
  HttpServer server(so);
  mount_webhook_routes(server, receiver);

  std::mutex mark_mu;
  Mark mark;
  auto take = [&] {
    Mark m;
    m.mono_ms = clock.mono_ms();
    m.user_us = cpu_us(RUSAGE_SELF, true);
    m.sys_us = cpu_us(RUSAGE_SELF, false);
    m.rx = receiver.stats();
    m.processed = pool.stats().processed;
    m.mapped = pipeline.mapped();
    return m;
  };
  mark = take();
  server.route("POST", "/_bench/mark", [&](const ServerRequest&, ServerResponse& res) {
    std::lock_guard lk(mark_mu);
    mark = take();
    res.set_content("{}", "application/json");
  });
  server.route("GET", "/_bench/report", [&](const ServerRequest&, ServerResponse& res) {
    Mark now = take();
    Mark m0;
    {
      std::lock_guard lk(mark_mu);
      m0 = mark;
    }
    double wall_s = static_cast<double>(now.mono_ms - m0.mono_ms) / 1000.0;
    int64_t accepted = now.rx.accepted - m0.rx.accepted;
    int64_t processed = now.processed - m0.processed;
    double user_s = static_cast<double>(now.user_us - m0.user_us) / 1e6;
    double sys_s = static_cast<double>(now.sys_us - m0.sys_us) / 1e6;
    double e2e_s = pipeline.last_ms() > m0.mono_ms ? static_cast<double>(pipeline.last_ms() - m0.mono_ms) / 1000.0 : 0;
    nlohmann::json j = {
        {"wall_s", wall_s},
        {"accepted", accepted},
        {"duplicates", now.rx.duplicates - m0.rx.duplicates},
        {"rejected", now.rx.rejected_total() - m0.rx.rejected_total()},
        {"cpu_user_s", user_s},
        {"cpu_sys_s", sys_s},
        {"cpu_us_per_delivery", accepted ? (user_s + sys_s) * 1e6 / static_cast<double>(accepted) : 0.0},
        {"processed", processed},
        {"mapped", now.mapped - m0.mapped},
        {"drained", now.processed >= now.rx.accepted},
        {"processed_per_s_until_last", e2e_s > 0 ? static_cast<double>(processed) / e2e_s : 0.0},
    };
    res.set_content(j.dump(), "application/json");
  });
  if (Status s = server.start(); !s.ok()) return fail(s);
  std::printf("listening %d %s\n", server.port(), registry.path_for(reg->path_token).c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&sigs, &sig);
  server.stop();
  pool.stop();
  return 0;
}
