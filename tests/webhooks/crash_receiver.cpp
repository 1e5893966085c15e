// fb_webhook_crash_receiver: a webhook receiving process for the crash tests (crash_test.cpp).
//
//   fb_webhook_crash_receiver --db FILE|URL --secret whsec_... --log FILE [--workers N] [--hang]
//                             [--claim-batch N] [--die-after-batches K] [--claim-lease-ms MS]
//
// Serves the webhook route on 127.0.0.1 (any port) over the real stack: Registry (one manual
// registration of integration 1, created on the first run and reused after), Inbox, Receiver,
// WorkerPool with the MeetingEventHandler (MeetingStore + MeetingDispatcher). Its pipeline appends
// "<recording_id>" to the log file on each webhook reaction. --workers 0 acknowledges without ever
// processing; --hang blocks every pipeline call forever (a crash while processing);
// --die-after-batches K sends the process SIGKILL right after its K-th batch committed (a crash at a
// batch boundary: the next batch is claimed, nothing of it mapped). --claim-lease-ms sets how long
// a claim holds without renewal (webhooks.claim_lease_s): on PostgreSQL a restarted process takes
// over its killed predecessor's claims only once their lease ran out. Each mapping appends
// "map <recording_id>" to the log. The sealing key
// is fixed so a restarted process opens the secret it stored. First stdout line:
// "listening <port> <path>". Stops on SIGTERM.
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>

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

#include "one_integration.h"

using namespace fb;
using namespace fb::detail;

namespace {

std::string arg(int argc, char** argv, const char* name, const char* fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return fallback;
}


class LoggingPipeline final : public MeetingPipeline {
 public:
  LoggingPipeline(std::string path, bool hang) : path_(std::move(path)), hang_(hang) {}
  Status on_meeting(const MeetingEvent& e) override {
    while (hang_) std::this_thread::sleep_for(std::chrono::seconds(1));
    std::lock_guard lk(mu_);
    std::ofstream(path_, std::ios::app) << "map " << e.recording_id << "\n";
    return Status::Ok();
  }
  Status on_webhook(const MeetingEvent& e) override {
    std::lock_guard lk(mu_);
    std::ofstream(path_, std::ios::app) << e.recording_id << "\n";
    return Status::Ok();
  }

 private:
  std::mutex mu_;
  std::string path_;
  bool hang_;
};

int fail(const Status& s) {
  std::cerr << "fb_webhook_crash_receiver: " << s << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string db_path = arg(argc, argv, "--db", "");
  std::string secret = arg(argc, argv, "--secret", "");
  std::string log = arg(argc, argv, "--log", "");
  int workers = std::stoi(arg(argc, argv, "--workers", "1"));
  bool hang = false;
  for (int i = 1; i < argc; ++i) hang = hang || std::strcmp(argv[i], "--hang") == 0;
  if (db_path.empty() || secret.empty() || log.empty()) {
    std::cerr << "usage: fb_webhook_crash_receiver --db FILE|URL --secret whsec_... --log FILE [--workers N] [--hang]\n";
    return 2;
  }
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  auto db = Db::open(db_path);
  if (!db.ok()) return fail(db.status());
  if (Status s = migrate_webhooks(**db); !s.ok()) return fail(s);
  Clock& clock = system_clock();
  auto store = MeetingStore::open(**db, clock);
  if (!store.ok()) return fail(store.status());
  auto dispatcher = MeetingDispatcher::open(**db, clock);
  if (!dispatcher.ok()) return fail(dispatcher.status());
  Sealer sealer;
  if (Status s = sealer.add_key("crash", SecretString(std::string(32, 'k'))); !s.ok()) return fail(s);
  Config config;
  Registry registry(**db, sealer, clock, system_random(), config.webhooks);
  auto existing = registry.list(1);
  if (!existing.ok()) return fail(existing.status());
  std::string token;
  if (existing->empty()) {
    auto reg = registry.add_manual(1, SecretString(secret));
    if (!reg.ok()) return fail(reg.status());
    token = reg->path_token;
  } else {
    token = existing->front().path_token;
  }
  InboxOptions io;
  // As the Bridge does: the body log beside a SQLite file (the crash tests cover it); on PostgreSQL
  // the bodies are in the rows.
  if ((*db)->engine() == Engine::kSqlite) io.body_dir = default_body_dir(db_path);
  io.claim_lease_ms = std::stoll(arg(argc, argv, "--claim-lease-ms", "60000"));
  Inbox inbox(**db, clock, io);
  Receiver receiver(registry, inbox, clock, config.webhooks);
  fb::test::OneIntegration directory;
  LoggingPipeline pipeline(log, hang);
  (*store)->set_content_loader(inbox_content_loader(inbox));
  (*dispatcher)->set_content_loader(inbox_content_loader(inbox));
  MeetingEventHandler handler(**store, **dispatcher, directory, pipeline);
  WorkerOptions wo = WorkerOptions::from(config.webhooks);
  wo.workers = workers;
  wo.backoff_base_ms = 20;
  wo.claim_batch = std::stoi(arg(argc, argv, "--claim-batch", "8"));
  int die_after = std::stoi(arg(argc, argv, "--die-after-batches", "0"));
  int batches = 0;
  if (die_after > 0) {
    wo.on_batch_committed = [&] {
      if (++batches == die_after) ::kill(::getpid(), SIGKILL);
    };
  }
  WorkerPool pool(inbox, handler, clock, system_random(), wo);
  HttpServerOptions so;
  so.port = 0;
  so.threads = 4;
  HttpServer server(so);
  mount_webhook_routes(server, receiver);
  if (Status s = server.start(); !s.ok()) return fail(s);
  std::printf("listening %d %s\n", server.port(), registry.path_for(token).c_str());
  std::fflush(stdout);
  // After the line: a process that kills itself after its first batch has said where it listens.
  if (workers > 0) {
    if (Status s = pool.start(); !s.ok()) return fail(s);
  }
  int sig = 0;
  sigwait(&sigs, &sig);
  server.stop();
  pool.stop();
  return 0;
}
