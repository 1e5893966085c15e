// fb_webhook_bench_gen: precomputes signed webhook deliveries for wrk (whose LuaJIT has no HMAC).
//
//   fb_webhook_bench_gen --secret whsec_... --count N --size BYTES --bodies K --out DIR [--ts UNIX]
//
// Writes K distinct Meeting bodies of about BYTES each (DIR/body_<k>.json, a realistic payload:
// invitees, a transcript long enough for the size, a summary, action items) and DIR/requests.txt
// with N lines "<webhook-id> <timestamp> <v1,signature> <k>": N distinct deliveries, each signed
// over its own id and the body it names. The signatures use the current time (or --ts), so the
// file is good for the receiver's tolerance (5 minutes by default).
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "core/secret.h"
#include "webhooks/verifier.h"

using namespace fb::detail;

namespace {

std::string arg(int argc, char** argv, const char* name, const char* fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return fallback;
}

std::string meeting(int64_t recording_id, size_t target) {
  std::string id = std::to_string(recording_id);
  std::string s;
  s.reserve(target + 1024);
  s += R"({"title":"Acme onboarding call )" + id + R"(","meeting_title":"Acme x Example onboarding","recording_id":)" +
       id + R"(,"url":"https://fathom.video/calls/)" + id +
       R"(","share_url":"https://fathom.video/share/AbCdEf123456","created_at":"2025-03-01T17:01:30Z",)"
       R"("scheduled_start_time":"2025-03-01T16:00:00Z","scheduled_end_time":"2025-03-01T17:00:00Z",)"
       R"("recording_start_time":"2025-03-01T16:01:12Z","recording_end_time":"2025-03-01T17:00:55Z",)"
       R"("calendar_invitees_domains_type":"one_or_more_external","transcript_language":"en",)"
       R"("calendar_invitees":[{"name":"Alice Example","matched_speaker_display_name":"Alice Example",)"
       R"("email":"alice@example.com","email_domain":"example.com","is_external":false},)"
       R"({"name":"Bob Client","matched_speaker_display_name":null,"email":"bob@acme.test",)"
       R"("email_domain":"acme.test","is_external":true}],)"
       R"("recorded_by":{"name":"Alice Example","email":"alice@example.com","email_domain":"example.com",)"
       R"("team":"Sales"},"default_summary":{"template_name":"general","markdown_formatted":)"
       R"("## Summary\nKickoff done; proposal due Friday.\n"},"action_items":[{"description":)"
       R"("Send the revised proposal to Acme","user_generated":false,"completed":false,)"
       R"("recording_timestamp":"00:10:45","recording_playback_url":"https://fathom.video/calls/)" + id +
       R"(#t=645","assignee":{"name":"Alice Example","email":"alice@example.com","team":"Sales"}}],)"
       R"("crm_matches":null,"transcript":[)";
  static const char* kLines[] = {
      "Thanks for joining, let's start with the timeline and the open questions from last week.",
      "Sounds good. We reviewed the proposal internally and have a few notes on pricing.",
      "Happy to go through them. Which parts of the rollout plan worry your team the most?",
      "Mostly the data migration window and who owns the integration testing on our side.",
  };
  int sec = 0;
  for (int i = 0; s.size() < target; ++i) {
    char ts[16];
    std::snprintf(ts, sizeof ts, "%02d:%02d:%02d", (sec / 3600) % 100, (sec / 60) % 60, sec % 60);
    bool alice = i % 2 == 0;
    if (i) s += ',';
    s += std::string(R"({"speaker":{"display_name":")") + (alice ? "Alice Example" : "Bob Client") +
         R"(","matched_calendar_invitee_email":)" + (alice ? "\"alice@example.com\"" : "null") + R"(},"text":")" +
         kLines[i % 4] + R"(","timestamp":")" + ts + "\"}";
    sec += 7;
  }
  s += "]}";
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::string secret = arg(argc, argv, "--secret", "");
  std::string out = arg(argc, argv, "--out", "");
  long count = std::stol(arg(argc, argv, "--count", "100000"));
  long size = std::stol(arg(argc, argv, "--size", "20000"));
  long bodies = std::stol(arg(argc, argv, "--bodies", "64"));
  long ts = std::stol(arg(argc, argv, "--ts", std::to_string(std::time(nullptr)).c_str()));
  if (secret.empty() || out.empty() || count <= 0 || size <= 0 || bodies <= 0) {
    std::cerr << "usage: fb_webhook_bench_gen --secret whsec_... --count N --size BYTES --bodies K --out DIR\n";
    return 2;
  }
  auto key = SigningKey::from_secret(SecretString(secret));
  if (!key.ok()) {
    std::cerr << "fb_webhook_bench_gen: " << key.status() << "\n";
    return 1;
  }
  std::filesystem::create_directories(out);
  std::vector<std::string> payloads;
  for (long k = 0; k < bodies; ++k) {
    payloads.push_back(meeting(100000 + k, static_cast<size_t>(size)));
    std::ofstream(out + "/body_" + std::to_string(k) + ".json", std::ios::binary) << payloads.back();
  }
  std::string t = std::to_string(ts);
  std::ofstream req(out + "/requests.txt", std::ios::binary);
  // A unique run tag keeps ids distinct across runs against the same database.
  std::string tag = std::to_string(ts % 100000);
  for (long i = 0; i < count; ++i) {
    std::string id = "msg_bench_" + tag + "_" + std::to_string(i);
    long k = i % bodies;
    req << id << ' ' << t << ' ' << key->sign(id, t, payloads[static_cast<size_t>(k)]) << ' ' << k << '\n';
  }
  std::cout << "wrote " << count << " signed deliveries over " << bodies << " bodies of " << payloads[0].size()
            << " bytes to " << out << "\n";
  return 0;
}
