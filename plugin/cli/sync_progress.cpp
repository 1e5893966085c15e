#include "cli/sync_progress.h"

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

namespace fb::cli {
namespace {

using nlohmann::json;

volatile std::sig_atomic_t g_interrupts = 0;

int64_t num(const json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<int64_t>() : 0;
}

std::string duration(int64_t s) {
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                               static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  return buf;
}

// "8 pages, 80 seen, 78 mapped, 52/60 API calls left, 40% of the window, ETA 0:12"
std::string counts(const json& job) {
  const json& p = job.contains("progress") ? job["progress"] : json::object();
  std::string s = std::to_string(num(p, "pages")) + " pages, " + std::to_string(num(p, "meetings_seen")) + " seen, " +
                  std::to_string(num(p, "meetings_mapped")) + " mapped";
  if (num(p, "map_failures") > 0) s += ", " + std::to_string(num(p, "map_failures")) + " failed to map";
  if (p.contains("rate_limit") && p["rate_limit"].is_object()) {
    s += ", " + std::to_string(num(p["rate_limit"], "remaining")) + "/" + std::to_string(num(p["rate_limit"], "limit")) +
         " API calls left";
  }
  if (p.contains("covered") && p["covered"].is_number()) {
    s += ", " + std::to_string(static_cast<int>(p["covered"].get<double>() * 100)) + "% of the window";
  }
  if (p.contains("eta_s") && p["eta_s"].is_number()) s += ", ETA " + duration(p["eta_s"].get<int64_t>());
  return s;
}

// One terminal line: "sync job 12 [#######-------------]  35%  8 pages, ..." (cut to 200 columns).
std::string bar_line(int64_t job_id, const json& job) {
  const json& p = job.contains("progress") ? job["progress"] : json::object();
  std::string line = "sync job " + std::to_string(job_id) + " ";
  if (p.contains("covered") && p["covered"].is_number()) {
    const int width = 24, done = static_cast<int>(p["covered"].get<double>() * width + 0.5);
    line += "[" + std::string(done, '#') + std::string(width - done, '-') + "] ";
  } else {
    static const char kSpin[] = "|/-\\";
    line += std::string("[") + kSpin[num(p, "elapsed_s") % 4] + "] ";
  }
  line += counts(job);
  if (p.value("cancel_requested", false)) line += " (cancelling)";
  if (line.size() > 200) line.resize(200);
  return line;
}

}  // namespace

int exit_code_for(const std::string& status) {
  if (status == "succeeded") return 0;
  if (status == "cancelled") return 3;
  return 1;
}

int follow_sync_job(Bridge& bridge, const Caller& caller, int64_t job_id, const FollowOptions& options,
                    std::ostream& out, std::ostream& err) {
  const bool tty = isatty(STDERR_FILENO) == 1;
  g_interrupts = 0;
  auto previous = std::signal(SIGINT, [](int) {
    g_interrupts = g_interrupts + 1;
    if (g_interrupts >= 2) std::_Exit(130);
  });
  using clock = std::chrono::steady_clock;
  auto last_line = clock::time_point{};
  int64_t last_pages = -1;
  bool cancel_sent = false;
  json job;
  for (;;) {
    if (g_interrupts > 0) {
      if (!options.cancel_on_interrupt) {
        if (tty) err << "\n";
        err << "fathom-bridge: stopped following sync job " << job_id << " (it keeps running)\n";
        std::signal(SIGINT, previous);
        return 130;
      }
      if (!cancel_sent) {
        cancel_sent = true;
        Status s = bridge.sync_cancel(caller, job_id);
        if (tty) err << "\n";
        err << "fathom-bridge: " << (s.ok() ? "cancelling sync job " + std::to_string(job_id) +
                                                  " at its next page (Ctrl-C again to quit at once)"
                                            : "could not cancel sync job " + std::to_string(job_id) + ": " +
                                                  s.to_string())
            << "\n";
      }
    }
    auto r = bridge.sync_job(caller, job_id);
    if (!r.ok()) {
      std::signal(SIGINT, previous);
      err << "fathom-bridge: " << r.status().to_string() << "\n";
      return 1;
    }
    job = json::parse(*r);
    const std::string status = job.value("status", "");
    if (status != "running") break;
    const auto now = clock::now();
    const int64_t pages = num(job["progress"], "pages");
    if (tty) {
      err << "\r\x1b[K" << bar_line(job_id, job) << std::flush;
    } else if ((pages != last_pages && now - last_line >= std::chrono::seconds(2)) ||
               now - last_line >= std::chrono::seconds(options.interval_s)) {
      err << "sync job " << job_id << ": running, " << counts(job) << "\n" << std::flush;
      last_line = now;
      last_pages = pages;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(options.poll_ms));
  }
  std::signal(SIGINT, previous);
  const std::string status = job.value("status", "");
  if (tty) err << "\r\x1b[K";
  if (options.json) {
    out << job.dump(2) << "\n";
  } else {
    out << "sync job " << job_id << " " << status << ": " << job.value("message", "") << "\n";
  }
  if (status != "succeeded") {
    err << "fathom-bridge: sync " << status << (status == "cancelled" ? " (the next sync resumes where it stopped)" : "")
        << ": " << job.value("message", "") << "\n";
  }
  return exit_code_for(status);
}

}  // namespace fb::cli
