// fb_sync_kill_helper: runs one sync of integration 1 against a fathom-sim into a database file,
// as a separate process, so sync_kill_test can SIGKILL it mid-sync and start it again.
//
//   fb_sync_kill_helper --api-base URL --api-key KEY --db PATH [--mode backfill|incremental]
//                       [--lease-ttl S]
// PATH may be a PostgreSQL URL. --lease-ttl is the sync lease's time to live (sync.lease_ttl_s).
//
// Its pipeline records each mapping in helper_mapped(recording_id, content_version) of the same
// file. Prints the job's status line; exits 0 when the job succeeded, 2 when it did not, 1 on
// bad usage or setup errors.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "fathom/sim_credentials.h"
#include "sync/sync_test_env.h"

using namespace fb;
using namespace fb::detail;

namespace {

class RecordingPipeline : public MeetingPipeline {
 public:
  explicit RecordingPipeline(Db& db) : db_(db) {}
  Status on_meeting(const MeetingEvent& e) override {
    return db_.transaction([&]() -> Status {
      Stmt& q = db_.prepare("INSERT INTO helper_mapped(recording_id, content_version) VALUES(?,?)");
      q.bind_all(e.recording_id, e.content_version);
      return q.run();
    });
  }

 private:
  Db& db_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string api_base, api_key, db_path, mode = "backfill";
  SyncOptions options;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--api-base") api_base = argv[i + 1];
    else if (a == "--api-key") api_key = argv[i + 1];
    else if (a == "--db") db_path = argv[i + 1];
    else if (a == "--mode") mode = argv[i + 1];
    else if (a == "--lease-ttl") options.lease_ttl_s = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 1;
    }
  }
  if (api_base.empty() || api_key.empty() || db_path.empty()) {
    std::fprintf(stderr, "usage: %s --api-base URL --api-key KEY --db PATH [--mode backfill|incremental]\n", argv[0]);
    return 1;
  }
  test::ApiKeyCredentials creds;
  creds.set(1, api_key);
  test::TestDirectory directory;
  directory.add(1);
  auto side = Db::open(db_path);
  if (!side.ok()) {
    std::fprintf(stderr, "open %s: %s\n", db_path.c_str(), side.status().to_string().c_str());
    return 1;
  }
  Status made = (*side)->with([&] {
    return (*side)->exec("CREATE TABLE IF NOT EXISTS helper_mapped(recording_id INTEGER, content_version INTEGER)");
  });
  if (!made.ok()) return 1;
  RecordingPipeline pipeline(**side);
  test::SyncEnv env(api_base, creds, directory, db_path, &pipeline, options);
  auto job = mode == "incremental" ? env.engine->incremental(1, "helper") : env.engine->backfill(1, "helper");
  if (!job.ok()) {
    std::printf("error %s\n", job.status().to_string().c_str());
    return 2;
  }
  std::printf("job %lld %s pages=%lld calls=%lld %s\n", static_cast<long long>(job->id), job->status.c_str(),
              static_cast<long long>(job->pages), static_cast<long long>(job->api_calls), job->message.c_str());
  return job->ok() ? 0 : 2;
}
