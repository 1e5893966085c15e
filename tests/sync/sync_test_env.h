// sync_test_env.h: the pieces a sync test (or the sync benchmark, or the kill-test helper)
// wires together: an in-memory IntegrationDirectory, a counting MeetingPipeline, and SyncEnv,
// which owns a client, store, dispatcher and engine over one SQLite file. Header-only.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/integration_directory.h"
#include "core/pipeline.h"
#include "fathom/fathom_client.h"
#include "http/http_client.h"
#include "store/db.h"
#include "sync/meeting_dispatcher.h"
#include "sync/meeting_store.h"
#include "sync/sync_engine.h"

namespace fb::test {

class TestDirectory : public detail::IntegrationDirectory {
 public:
  void add(int64_t id, const std::string& kind = "api_key", const std::string& status = "active") {
    std::lock_guard lock(mu_);
    detail::IntegrationInfo info;
    info.id = id;
    info.tenant_id = "tenant-" + std::to_string(id % 2);
    info.user_id = "user-" + std::to_string(id);
    info.kind = kind;
    info.status = status;
    info.active = status == "active";
    infos_[id] = info;
  }
  void set_status(int64_t id, const std::string& status) {
    std::lock_guard lock(mu_);
    infos_[id].status = status;
    infos_[id].active = status == "active";
  }
  std::vector<detail::IntegrationInfo> list_active() override {
    std::lock_guard lock(mu_);
    std::vector<detail::IntegrationInfo> out;
    for (auto& [id, i] : infos_) {
      if (i.active) out.push_back(i);
    }
    return out;
  }
  Result<detail::IntegrationInfo> get(int64_t id) override {
    std::lock_guard lock(mu_);
    auto it = infos_.find(id);
    if (it == infos_.end()) return Status::NotFound("no integration " + std::to_string(id));
    return it->second;
  }
  Status record_sync(int64_t id, int64_t at_s) override {
    std::lock_guard lock(mu_);
    infos_[id].last_sync_at = at_s;
    ++record_sync_calls;
    return Status::Ok();
  }
  int record_sync_calls = 0;

 private:
  std::mutex mu_;
  std::map<int64_t, detail::IntegrationInfo> infos_;
};

// Counts on_meeting calls per (recording, version); optionally asks for the transcript like a
// rule that uses fathom.transcript(), and optionally fails.
class CountingPipeline : public detail::MeetingPipeline {
 public:
  Status on_meeting(const detail::MeetingEvent& e) override {
    if (content && want_transcript) {
      auto t = content->transcript_json(e.integration_id, e.recording_id);
      if (!t.ok()) return t.status();
    }
    std::lock_guard lock(mu);
    if (fail_all || fail_ids.count(e.recording_id)) return Status::Unavailable("test CRM refused " + std::to_string(e.recording_id));
    ++calls[{e.recording_id, e.content_version}];
    sources[e.recording_id] = e.source;
    ++total;
    return Status::Ok();
  }
  // How many times any version of the recording was mapped.
  int mapped(int64_t recording_id) {
    std::lock_guard lock(mu);
    int n = 0;
    for (auto& [k, v] : calls) {
      if (k.first == recording_id) n += v;
    }
    return n;
  }
  int max_per_version() {
    std::lock_guard lock(mu);
    int m = 0;
    for (auto& [k, v] : calls) m = std::max(m, v);
    return m;
  }
  std::mutex mu;
  std::map<std::pair<int64_t, int64_t>, int> calls;
  std::map<int64_t, std::string> sources;
  std::set<int64_t> fail_ids;
  bool fail_all = false;
  int total = 0;
  detail::MeetingContentSource* content = nullptr;
  bool want_transcript = false;
};

// Client + store + dispatcher + engine over one database file.
struct SyncEnv {
  SyncEnv(const std::string& api_base, detail::CredentialSource& creds, detail::IntegrationDirectory& directory,
          const std::string& db_path, detail::MeetingPipeline* pipeline, detail::SyncOptions sync_options = {},
          detail::RateLimitOptions limits = {}, detail::FathomClientOptions client_options = {},
          detail::HttpTransport* transport_override = nullptr, detail::Clock* engine_clock = nullptr)
      : limiters(detail::system_clock(), limits) {
    client_options.api_base = api_base;
    client = std::make_unique<detail::FathomClient>(transport_override ? *transport_override : transport, creds,
                                                    limiters, detail::system_clock(), client_options);
    db = detail::Db::open(db_path).value();
    store = detail::MeetingStore::open(*db, detail::system_clock()).value();
    dispatcher = detail::MeetingDispatcher::open(*db, detail::system_clock()).value();
    // The engine's clock stamps last_attempt_at: a test that drives the scheduler by time passes a
    // FakeClock so "due" does not depend on when the second turns.
    engine = detail::SyncEngine::open(*db, *client, directory, *store, *dispatcher, pipeline,
                                      engine_clock ? *engine_clock : detail::system_clock(), sync_options)
                 .value();
  }
  detail::HttplibTransport transport;
  detail::RateLimiterRegistry limiters;
  std::unique_ptr<detail::FathomClient> client;
  std::unique_ptr<detail::Db> db;
  std::unique_ptr<detail::MeetingStore> store;
  std::unique_ptr<detail::MeetingDispatcher> dispatcher;
  std::unique_ptr<detail::SyncEngine> engine;
};

}  // namespace fb::test
