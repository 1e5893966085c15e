// fathom-sim: a local, in-memory Fathom for tests and the demo. See tests/sim/README.md.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include "core/clock.h"
#include "sim/sim_server.h"

namespace {

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: fathom-sim [--port N] [options]\n"
               "A local Fathom simulator on 127.0.0.1 (OAuth, REST API, webhooks). Prints\n"
               "'fathom-sim listening on http://127.0.0.1:PORT' as its first stdout line.\n\n"
               "  --port N                  port to listen on; 0 picks a free one (default 8788)\n"
               "  --seed N                  seed of the deterministic data generator (default 42)\n"
               "  --meetings N              meetings generated at start (default 25)\n"
               "  --anchor TIME             created_at of the newest generated meeting (ISO 8601 or\n"
               "                            unix seconds; default: start time minus one hour)\n"
               "  --client-id ID            OAuth client id (default sim-client)\n"
               "  --client-secret SECRET    OAuth client secret (default sim-secret)\n"
               "  --redirect-uri URI        registered redirect URI, repeatable\n"
               "                            (default http://127.0.0.1:8787/oauth/callback)\n"
               "  --sender-threads N        webhook sender threads (default 4)\n"
               "  --quiet                   no request log on stderr\n"
               "  --help                    this text\n\n"
               "Runtime knobs (also settable with POST /_sim/config {\"name\": value}); booleans take\n"
               "no value or =true/=false:\n");
  for (const auto& k : fb::sim::knob_table()) {
    std::string hint;
    if (std::holds_alternative<std::string fb::sim::Knobs::*>(k.field)) {
      for (const auto& c : k.choices) hint += (hint.empty() ? " " : "|") + c;
    } else if (!std::holds_alternative<bool fb::sim::Knobs::*>(k.field)) {
      hint = " N";
    }
    std::fprintf(out, "  %s%s   [%s]\n      %s\n", k.flag, hint.c_str(), k.name, k.help);
  }
}

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "fathom-sim: %s (see --help)\n", msg.c_str());
  std::exit(2);
}

int64_t parse_int(const std::string& flag, const std::string& v, int64_t lo, int64_t hi) {
  char* end = nullptr;
  long long n = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || n < lo || n > hi) {
    die(flag + " expects an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + v + "'");
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  fb::sim::SimOptions opts;
  opts.port = 8788;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_inline = false;
    if (size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_inline = true;
    }
    auto next = [&]() -> std::string {
      if (has_inline) return value;
      if (i + 1 >= argc) die(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    } else if (arg == "--quiet") {
      opts.quiet = true;
    } else if (arg == "--port") {
      opts.port = static_cast<int>(parse_int(arg, next(), 0, 65535));
    } else if (arg == "--seed") {
      opts.seed = static_cast<uint64_t>(parse_int(arg, next(), 0, INT64_MAX));
    } else if (arg == "--meetings") {
      opts.meetings = parse_int(arg, next(), 0, 5'000'000);
    } else if (arg == "--anchor") {
      std::string v = next();
      int64_t t = 0;
      if (!fb::detail::parse_iso8601(v, &t)) t = parse_int(arg, v, 1, 32503680000);
      opts.anchor = t;
    } else if (arg == "--client-id") {
      opts.client_id = next();
    } else if (arg == "--client-secret") {
      opts.client_secret = next();
    } else if (arg == "--redirect-uri") {
      opts.redirect_uris.push_back(next());
    } else if (arg == "--sender-threads") {
      opts.sender_threads = static_cast<size_t>(parse_int(arg, next(), 1, 256));
    } else if (const auto* knob = fb::sim::find_knob_by_flag(arg)) {
      bool is_bool = std::holds_alternative<bool fb::sim::Knobs::*>(knob->field);
      std::string v = is_bool && !has_inline ? "true" : next();
      std::string err = fb::sim::set_knob_from_text(opts.knobs, *knob, v);
      if (!err.empty()) die(err);
    } else {
      die("unknown argument '" + arg + "'");
    }
  }
  if (opts.client_id.empty() || opts.client_secret.empty()) die("--client-id and --client-secret must not be empty");

  // SIGPIPE from a vanished receiver must not kill us.
  signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  fb::sim::Simulator sim(opts);
  int port = sim.bind();
  if (port <= 0) die("cannot listen on " + opts.host + ":" + std::to_string(opts.port));
  std::printf("fathom-sim listening on http://%s:%d\n", opts.host.c_str(), port);
  std::fflush(stdout);

  // All state is in memory, so there is nothing to save: exit at once on SIGTERM/SIGINT rather
  // than wait for idle keep-alive connections or a delivery stuck in a 15 s timeout.
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::fflush(nullptr);
    std::_Exit(0);
  });
  waiter.detach();
  sim.run();
  std::fflush(nullptr);
  std::_Exit(0);
}
