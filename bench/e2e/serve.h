// serve.h: how the bench/e2e servers (e2e_host, e2e_crm_server) run a cpp-httplib server: a thread
// per keep-alive connection, TCP_NODELAY, announced on stdout, stopped by SIGTERM/SIGINT.
#pragma once

#include <httplib.h>
#include <signal.h>

#include <cstdio>
#include <string>
#include <thread>

namespace e2e {

// Call first in main(), before any thread starts: every thread inherits the mask, so the signals
// go to the one thread that waits for them in serve().
inline sigset_t block_stop_signals() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGINT);
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
  return s;
}

// Listens on a free loopback port, prints "listening <port><suffix>" and serves until a stop signal.
inline void serve(httplib::Server& svr, sigset_t stop_signals, size_t threads, const std::string& suffix = "") {
  // Without TCP_NODELAY an answer written as head + body waits ~40 ms (Nagle against the delayed ACK).
  svr.set_tcp_nodelay(true);
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  std::thread stopper([&svr, stop_signals] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    svr.stop();
  });
  stopper.detach();
  int port = svr.bind_to_any_port("127.0.0.1");
  std::printf("listening %d%s\n", port, suffix.c_str());
  std::fflush(stdout);
  svr.listen_after_bind();
}

}  // namespace e2e
