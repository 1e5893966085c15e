// fb_webhook_bench_gen: precomputes signed webhook deliveries for wrk (whose LuaJIT has no HMAC).
//
//   fb_webhook_bench_gen --secret whsec_... --count N --size BYTES --bodies K --out DIR [--ts UNIX]
//                        [--first-recording ID]
//
// Writes K Meeting body templates of about BYTES each (a realistic payload: invitees, a transcript
// long enough for the size, a summary, action items), split around the recording id into
// DIR/body_<k>.pre and DIR/body_<k>.post, and DIR/requests.txt with N lines
// "<webhook-id> <timestamp> <v1,signature> <k> <recording_id>": N distinct deliveries of N distinct
// meetings, each signed over its own id and the body pre + recording_id + post. DIR/body_0.json is
// one complete body, for reference. The signatures use the current time (or --ts), so the file is
// good for the receiver's tolerance (5 minutes by default).
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

constexpr const char* kRid = "@RID@";

// A body with kRid where the recording id goes (and nowhere else).
std::string meeting(int64_t template_id, size_t target) {
  std::string id = std::to_string(template_id);
  std::string s;
  s.reserve(target + 1024);
  s += R"({"title":"Acme onboarding call )" + id + R"(","meeting_title":"Acme x Example onboarding","recording_id":)" +
       kRid + R"(,"url":"https://fathom.video/calls/)" + id +
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
  // Several hosts' sets of one run: each its own recordings (--first-recording), not the same
  // meetings delivered again under other webhook-ids.
  long first = std::stol(arg(argc, argv, "--first-recording", "100000000"));
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
  std::vector<std::pair<std::string, std::string>> parts;  // pre, post
  for (long k = 0; k < bodies; ++k) {
    std::string m = meeting(100000 + k, static_cast<size_t>(size));
    size_t at = m.find(kRid);
    parts.emplace_back(m.substr(0, at), m.substr(at + std::strlen(kRid)));
    std::string base = out + "/body_" + std::to_string(k);
    std::ofstream(base + ".pre", std::ios::binary) << parts.back().first;
    std::ofstream(base + ".post", std::ios::binary) << parts.back().second;
  }
  std::ofstream(out + "/body_0.json", std::ios::binary) << parts[0].first << 100000000 << parts[0].second;
  std::string t = std::to_string(ts);
  std::ofstream req(out + "/requests.txt", std::ios::binary);
  // A unique run tag keeps ids distinct across runs against the same database.
  std::string tag = std::to_string(ts % 100000);
  std::string body;
  for (long i = 0; i < count; ++i) {
    std::string id = "msg_bench_" + tag + "_" + std::to_string(i);
    long k = i % bodies;
    std::string rid = std::to_string(first + i);
    const auto& [pre, post] = parts[static_cast<size_t>(k)];
    body.assign(pre).append(rid).append(post);
    req << id << ' ' << t << ' ' << key->sign(id, t, body) << ' ' << k << ' ' << rid << '\n';
  }
  std::cout << "wrote " << count << " signed deliveries of distinct meetings over " << bodies
            << " templates of about " << body.size() << " bytes to " << out << "\n";
  return 0;
}
