// fb_script_version_worker: one process of a fleet for the scripting tests. Opens a ScriptHost on
// the store file argv[1] (folder mode in argv[2]), maps a meeting of tenant "acme" every 5 ms, and
// prints "<CLOCK_MONOTONIC ms> <version>" whenever the version its CRM calls carry changes, until
// the file argv[3] exists (or 60 s pass).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "scripting/script_host.h"
#include "store/db.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: fb_script_version_worker STORE SCRIPTS_DIR STOP_FILE MEETING_JSON\n");
    return 2;
  }
  auto db = fb::detail::Db::open(argv[1]);
  if (!db.ok()) return 1;
  fb::detail::ScriptHostOptions o;
  o.config.dir = argv[2];
  o.db = db->get();
  auto host = fb::detail::ScriptHost::open(o);
  if (!host.ok()) {
    std::fprintf(stderr, "%s\n", host.status().to_string().c_str());
    return 1;
  }
  std::atomic<int64_t> carried{-1};
  (void)(*host)->register_crm_operation("tag", [&](const fb::CrmCall& c) -> fb::Result<std::string> {
    carried = c.script_version;
    return std::string("{}");
  });
  std::string meeting;
  {
    FILE* f = std::fopen(argv[4], "rb");
    if (!f) return 1;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) meeting.append(buf, n);
    std::fclose(f);
  }
  using Clock = std::chrono::steady_clock;
  auto ms = [] { return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count(); };
  int64_t printed = -2;
  auto end = Clock::now() + std::chrono::seconds(60);
  for (int64_t rec = 1; Clock::now() < end && !std::filesystem::exists(argv[3]); ++rec) {
    fb::detail::MeetingEvent e;
    e.integration_id = 1;
    e.tenant_id = "acme";
    e.recording_id = rec;
    e.content_version = 1;
    e.raw_json = meeting;
    e.source = "sync";
    if ((*host)->on_meeting(e).ok() && carried != printed) {
      printed = carried;
      std::printf("%lld %lld\n", static_cast<long long>(ms()), static_cast<long long>(printed));
      std::fflush(stdout);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return 0;
}
