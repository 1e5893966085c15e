// paced_send: posts the signed deliveries of fb_webhook_bench_gen at a steady rate (issue 11's
// "5,000 deliveries/s for 60 s: does the backlog grow?"); wrk sends as fast as it can and cannot
// pace. Open loop: delivery i is due at start + i / rate whatever the answers do; each goes out on
// an idle keep-alive connection (one request in flight per connection, like a webhook sender), so
// when the receiver is slower than the rate, deliveries wait for a connection and the report says
// how late they went out.
//
//   paced_send --port P --path /webhooks/... --dir DELIVERIES --rate 5000 --seconds 60 [--conns 64]
//
// Prints one JSON line: sent, 2xx, non-2xx, errors, the achieved rate, how late the latest
// delivery went out, and latency p50/p99 (from the moment it was due until its answer).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "nonblocking_io.h"

namespace {

using Clock = std::chrono::steady_clock;

std::string arg(int argc, char** argv, const std::string& name, const std::string& def) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return argv[i + 1];
  }
  return def;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Conn {
  int fd = -1;
  std::string out;      // bytes still to send
  size_t sent = 0;
  std::string in;       // the answer so far
  bool busy = false;
  bool connecting = false;  // connect() in progress: idle once the socket is writable
  Clock::time_point due;    // when the delivery in flight was due
};

// A non-blocking connect: a connection whose SYN the receiver's full listen queue dropped waits for
// the kernel's retransmission (1 s, then 3 s, ...) on its own instead of stopping the whole sender.
// (A blocking connect here was the stall of issue 11: cpp-httplib listens with a backlog of 5 and
// closes a connection after 5 requests, so at a few thousand deliveries/s some reconnect's SYN is
// dropped now and then, and every due delivery waited a second or more behind it.)
int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// The length of a complete answer at the start of `in` (head + Content-Length body), or 0.
size_t answer_length(const std::string& in) {
  size_t end = in.find("\r\n\r\n");
  if (end == std::string::npos) return 0;
  size_t body = 0;
  std::string head = in.substr(0, end);
  std::transform(head.begin(), head.end(), head.begin(), [](unsigned char c) { return std::tolower(c); });
  size_t cl = head.find("content-length:");
  if (cl != std::string::npos) body = std::stoul(head.substr(cl + 15));
  return in.size() >= end + 4 + body ? end + 4 + body : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int port = std::stoi(arg(argc, argv, "--port", "0"));
  const std::string path = arg(argc, argv, "--path", "");
  const std::string dir = arg(argc, argv, "--dir", "");
  const double rate = std::stod(arg(argc, argv, "--rate", "5000"));
  const double seconds = std::stod(arg(argc, argv, "--seconds", "60"));
  const int nconns = std::stoi(arg(argc, argv, "--conns", "64"));
  if (port <= 0 || path.empty() || dir.empty() || rate <= 0 || seconds <= 0 || nconns <= 0) {
    std::cerr << "usage: paced_send --port P --path PATH --dir DELIVERIES --rate N --seconds S [--conns C]\n";
    return 2;
  }
  // The deliveries, as deliver.lua builds them for wrk.
  std::vector<std::pair<std::string, std::string>> parts;
  for (int k = 0;; ++k) {
    std::ifstream probe(dir + "/body_" + std::to_string(k) + ".pre");
    if (!probe) break;
    parts.emplace_back(slurp(dir + "/body_" + std::to_string(k) + ".pre"),
                       slurp(dir + "/body_" + std::to_string(k) + ".post"));
  }
  // The heads only; a delivery is assembled when it goes out (300,000 bodies of 20 KB would not fit).
  struct Delivery {
    std::string head;
    size_t body = 0;
    std::string rid;
  };
  std::vector<Delivery> requests;
  {
    std::ifstream lines(dir + "/requests.txt");
    std::string id, ts, sig, rid;
    size_t b;
    const size_t want = static_cast<size_t>(rate * seconds) + 1;
    while (requests.size() < want && lines >> id >> ts >> sig >> b >> rid) {
      const auto& [pre, post] = parts.at(b);
      requests.push_back({"POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
                              "Content-Length: " + std::to_string(pre.size() + rid.size() + post.size()) +
                              "\r\nwebhook-id: " + id + "\r\nwebhook-timestamp: " + ts + "\r\nwebhook-signature: " +
                              sig + "\r\n\r\n",
                          b, rid});
    }
    if (requests.size() < want) {
      std::cerr << "paced_send: " << dir << " holds " << requests.size() << " deliveries, " << want << " needed\n";
      return 2;
    }
  }

  int ep = ::epoll_create1(0);
  std::vector<Conn> conns(static_cast<size_t>(nconns));
  for (size_t i = 0; i < conns.size(); ++i) {
    conns[i].fd = connect_to(port);
    if (conns[i].fd < 0) {
      std::perror("connect");
      return 1;
    }
    conns[i].connecting = true;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
    ev.data.u64 = i;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
  }
  std::deque<size_t> idle;  // connected, nothing in flight

  long ok = 0, bad = 0, errors = 0;
  size_t next = 0;
  double max_late_ms = 0;
  std::vector<double> latency_ms;
  latency_ms.reserve(requests.size());
  const auto start = Clock::now();
  auto last_sent = start;
  const auto due_of = [&](size_t i) {
    return start + std::chrono::nanoseconds(static_cast<int64_t>(1e9 * static_cast<double>(i) / rate));
  };

  auto add = [&](size_t i) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
    ev.data.u64 = i;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
  };
  auto reconnect = [&](size_t i) {
    ::epoll_ctl(ep, EPOLL_CTL_DEL, conns[i].fd, nullptr);
    ::close(conns[i].fd);
    conns[i] = Conn();
    conns[i].fd = connect_to(port);
    if (conns[i].fd < 0) return;  // that connection is lost; the others carry on
    conns[i].connecting = true;
    add(i);
  };
  auto flush = [&](Conn& c) { return fb_bench::send_pending(c.fd, c.out, &c.sent); };

  size_t answered = 0;
  while (answered < requests.size()) {
    auto now = Clock::now();
    // Everything due goes out on an idle connection; what finds none waits for one.
    while (next < requests.size() && due_of(next) <= now && !idle.empty()) {
      const size_t ci = idle.front();
      idle.pop_front();
      // An idle connection the receiver closed meanwhile (its EOF came while nothing was in
      // flight, and edge-triggered epoll will not report it again): a new one instead.
      char probe;
      if (::recv(conns[ci].fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
        reconnect(ci);
        continue;
      }
      Conn& c = conns[ci];
      const Delivery& d = requests[next];
      c.out.assign(d.head).append(parts[d.body].first).append(d.rid).append(parts[d.body].second);
      c.sent = 0;
      c.in.clear();
      c.busy = true;
      c.due = due_of(next);
      max_late_ms = std::max(max_late_ms, std::chrono::duration<double, std::milli>(now - c.due).count());
      ++next;
      last_sent = now;
      if (!flush(c)) {
        ++errors;
        ++answered;
      }
    }
    int timeout_ms = 100;
    if (next < requests.size() && !idle.empty()) {
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(due_of(next) - Clock::now()).count();
      timeout_ms = static_cast<int>(std::clamp<int64_t>(wait, 0, 100));
    }
    epoll_event evs[128];
    int n = ::epoll_wait(ep, evs, 128, timeout_ms);
    for (int e = 0; e < n; ++e) {
      size_t i = evs[e].data.u64;
      Conn& c = conns[i];
      if (c.connecting) {
        if (!(evs[e].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) continue;
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || (evs[e].events & (EPOLLERR | EPOLLHUP))) {
          reconnect(i);  // refused or reset: try again (counted nowhere: no delivery was on it)
          continue;
        }
        c.connecting = false;
        idle.push_back(i);
        continue;
      }
      if (!c.busy) continue;
      if ((evs[e].events & EPOLLOUT) && !flush(c)) {
        ++errors;
        ++answered;
        c.busy = false;
        continue;
      }
      bool closed = fb_bench::receive_available(c.fd, &c.in);
      if (size_t len = answer_length(c.in); len > 0) {
        int status = c.in.size() > 12 ? std::atoi(c.in.c_str() + 9) : 0;
        std::string head = c.in.substr(0, len);
        std::transform(head.begin(), head.end(), head.begin(), [](unsigned char ch) { return std::tolower(ch); });
        closed = closed || head.find("connection: close") != std::string::npos;
        (status >= 200 && status < 300 ? ok : bad) += 1;
        latency_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - c.due).count());
        ++answered;
        c.busy = false;
        c.in.erase(0, len);
        if (!closed) idle.push_back(i);
      } else if (closed) {  // the receiver hung up without an answer
        ++errors;
        ++answered;
        c.busy = false;
      }
      if (closed) reconnect(i);  // a receiver may close after N requests on a connection, as wrk expects
    }
  }
  const double took = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(latency_ms.begin(), latency_ms.end());
  auto pct = [&](double p) {
    return latency_ms.empty() ? 0.0 : latency_ms[std::min(latency_ms.size() - 1, static_cast<size_t>(p * latency_ms.size()))];
  };
  // Deliveries per second from the first due time until the last one went out.
  const double send_s = std::chrono::duration<double>(last_sent - start).count();
  std::printf(
      "{\"sent\": %zu, \"ok\": %ld, \"non2xx\": %ld, \"errors\": %ld, \"target_rate\": %.0f, \"achieved_rate\": %.1f, "
      "\"seconds\": %.2f, \"max_late_ms\": %.1f, \"p50_ms\": %.2f, \"p99_ms\": %.2f}\n",
      requests.size(), ok, bad, errors, rate, static_cast<double>(requests.size() - 1) / std::max(send_s, 1e-9), took,
      max_late_ms, pct(0.5), pct(0.99));
  return 0;
}
