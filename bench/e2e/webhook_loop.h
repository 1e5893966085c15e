// webhook_loop.h: e2e_host's HTTP server for webhook deliveries, written the way a host with an
// event loop would embed the bridge: one epoll thread for every keep-alive connection, each request
// handed to fb_webhook_receive_async and answered when its done callback runs. The callback comes
// on the library's inbox writer thread once the delivery is durable: it queues the answer and
// wakes the loop through an eventfd. (Until issue 11's last round e2e_host used cpp-httplib with a
// thread per connection, blocked in fb_webhook_receive: 64 threads on 2 cores, ~25 % of the host's
// CPU in the HTTP stack and its context switches.)
//
// HTTP/1.1 only as far as webhook senders use it: Content-Length bodies (chunked is answered 501),
// keep-alive unless "Connection: close" or HTTP/1.0, one request at a time per connection (a
// pipelined next request waits in the buffer until the previous one is answered).
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fathom_bridge/fathom_bridge.h"
#include "nonblocking_io.h"

namespace e2e {

class WebhookLoop {
 public:
  WebhookLoop(fb_bridge* b, std::string path) : b_(b), path_(std::move(path)) {}

  // Listens on a free loopback port, prints "listening <port><suffix>", serves until one of
  // stop_signals (blocked in every thread) arrives, then waits for the answers still owed.
  int run(sigset_t stop_signals, const std::string& suffix) {
    int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(lfd, 1024) != 0 ||
        ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &alen) != 0) {
      std::perror("e2e_host: listen");
      return 1;
    }
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int sfd = ::signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC);
    watch(lfd, kListen, EPOLLIN);
    watch(wake_, kWake, EPOLLIN);
    watch(sfd, kSignal, EPOLLIN);
    std::printf("listening %d%s\n", ntohs(a.sin_port), suffix.c_str());
    std::fflush(stdout);

    bool stopping = false;
    epoll_event evs[256];
    while (!stopping || owed_ > 0) {
      int n = ::epoll_wait(ep_, evs, 256, stopping ? 100 : -1);
      for (int i = 0; i < n; ++i) {
        const uint64_t id = evs[i].data.u64;
        if (id == kListen) {
          accept_all(lfd);
        } else if (id == kWake) {
          answer_done();
        } else if (id == kSignal) {
          stopping = stopping_ = true;
          ::epoll_ctl(ep_, EPOLL_CTL_DEL, lfd, nullptr);
        } else {
          on_ready(id, evs[i].events);
        }
      }
      if (stopping) answer_done();
    }
    for (auto& [id, c] : conns_) ::close(c.fd);
    ::close(lfd);
    ::close(sfd);
    ::close(wake_);
    ::close(ep_);
    return 0;
  }

 private:
  static constexpr uint64_t kListen = 1, kWake = 2, kSignal = 3;
  static constexpr size_t kMaxHead = 64 << 10;
  static constexpr size_t kMaxBody = 64 << 20;

  struct Conn {
    uint64_t id = 0;
    int fd = -1;
    std::string in;        // bytes read and not yet part of a request handed over
    std::string out;       // the answer still to write
    size_t sent = 0;
    bool in_flight = false;  // a request handed to the bridge, not answered yet
    bool close_after = false;
    bool writing = false;    // EPOLLOUT armed
    bool eof = false;        // the sender closed its side: no more EPOLLIN (it would fire until closed)
  };
  // One request handed to the bridge: its bytes stay here until done has run.
  struct Pending {
    WebhookLoop* loop;
    uint64_t conn;
    std::string raw;
    bool close_after;
    int status = 500;
    std::string body;
  };

  void watch(int fd, uint64_t id, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = id;
    ::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
  }

  void accept_all(int lfd) {
    for (;;) {
      int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      const uint64_t id = next_id_++;
      conns_[id].id = id;
      conns_[id].fd = fd;
      watch(fd, id, EPOLLIN | EPOLLRDHUP);
    }
  }

  void drop(uint64_t id) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    ::close(it->second.fd);  // also takes it out of the epoll set
    conns_.erase(it);
  }

  void on_ready(uint64_t id, uint32_t events) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    Conn& c = it->second;
    if (events & EPOLLOUT) {
      if (!flush(c)) return drop(id);
      if (c.sent == c.out.size() && c.close_after) return drop(id);
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
      const bool eof = fb_bench::receive_available(c.fd, &c.in);
      if (eof && !c.in_flight) return drop(id);  // an answer in flight finds the connection gone
      if (eof) {
        c.close_after = c.eof = true;
        arm(c, c.writing);
      }
    }
    next_request(id, c);
  }

  // Writes what it can of c.out; false when the connection failed.
  bool flush(Conn& c) {
    if (!fb_bench::send_pending(c.fd, c.out, &c.sent)) return false;
    const bool want_out = c.sent < c.out.size();
    if (want_out != c.writing) arm(c, want_out);
    if (!want_out) {
      c.out.clear();
      c.sent = 0;
    }
    return true;
  }

  void arm(Conn& c, bool want_out) {
    c.writing = want_out;
    epoll_event ev{};
    ev.events = (c.eof ? 0u : EPOLLIN | EPOLLRDHUP) | (want_out ? EPOLLOUT : 0u);
    ev.data.u64 = c.id;
    ::epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  void reply(uint64_t id, Conn& c, int status, std::string_view body, bool close_after) {
    char head[160];
    int n = std::snprintf(head, sizeof head,
                          "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n", status,
                          status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error", body.size(),
                          close_after ? "Connection: close\r\n" : "");
    c.out.append(head, static_cast<size_t>(n)).append(body);
    c.close_after = c.close_after || close_after;
    if (!flush(c)) return drop(id);
    if (c.out.empty() && c.close_after) return drop(id);
  }

  // Hands over the next complete request in c.in, if any and nothing is in flight.
  void next_request(uint64_t id, Conn& c) {
    if (c.in_flight || c.close_after || stopping_) return;  // stopping: only the answers owed
    const size_t end = c.in.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (c.in.size() > kMaxHead) reply(id, c, 431, "request header fields too large", true);
      return;
    }
    std::string_view head(c.in.data(), end);
    const size_t line_end = head.find("\r\n");
    std::string_view line = head.substr(0, line_end);
    const size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
    if (sp1 == std::string_view::npos || sp2 <= sp1) return reply(id, c, 400, "bad request line", true);
    std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    bool close_after = line.substr(sp2 + 1) != "HTTP/1.1";
    size_t length = 0;
    std::vector<std::string> names, values;
    for (size_t at = line_end; at != std::string_view::npos && at < head.size();) {
      const size_t from = at + 2;
      const size_t to = head.find("\r\n", from);
      std::string_view h = head.substr(from, (to == std::string_view::npos ? head.size() : to) - from);
      at = to;
      const size_t colon = h.find(':');
      if (colon == std::string_view::npos) continue;
      std::string name(h.substr(0, colon));
      std::string_view v = h.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
      for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (name == "content-length") length = std::strtoull(std::string(v).c_str(), nullptr, 10);
      if (name == "transfer-encoding") return reply(id, c, 501, "chunked bodies are not supported", true);
      if (name == "connection") close_after = close_after || v == "close" || v == "Close";
      names.push_back(std::move(name));
      values.emplace_back(v);
    }
    if (length > kMaxBody) return reply(id, c, 413, "payload too large", true);
    const size_t total = end + 4 + length;
    if (c.in.size() < total) return;  // the body is still coming
    if (method != "POST" || target.substr(0, target.find('?')) != path_) {
      c.in.erase(0, total);
      return reply(id, c, 404, "not found", close_after);
    }
    auto* p = new Pending{this, id, {}, close_after};
    if (c.in.size() == total) {
      p->raw = std::move(c.in);  // the common case: no copy of the body
      c.in.clear();
    } else {
      p->raw = c.in.substr(0, total);
      c.in.erase(0, total);
    }
    std::vector<const char*> n, v;
    for (size_t i = 0; i < names.size(); ++i) {
      n.push_back(names[i].c_str());
      v.push_back(values[i].c_str());
    }
    c.in_flight = true;
    ++owed_;
    std::string target_path(target);
    if (fb_webhook_receive_async(b_, target_path.c_str(), n.data(), v.data(), n.size(), p->raw.data() + end + 4,
                                 length, &WebhookLoop::done, p) != FB_OK) {
      p->status = 500;
      p->body = fb_errmsg(b_);
      queue(p);
    }
  }

  // On the library's thread (or this one, for a refusal): queue the answer and wake the loop.
  static void done(void* user_data, int, int http_status, const char* response_body) {
    auto* p = static_cast<Pending*>(user_data);
    p->status = http_status;
    p->body = response_body ? response_body : "";
    p->loop->queue(p);
  }

  void queue(Pending* p) {
    bool was_empty;
    {
      std::lock_guard lk(mu_);
      was_empty = done_.empty();
      done_.push_back(p);
    }
    if (was_empty) {
      uint64_t one = 1;
      (void)!::write(wake_, &one, sizeof one);
    }
  }

  void answer_done() {
    uint64_t n;
    (void)!::read(wake_, &n, sizeof n);
    std::vector<Pending*> ready;
    {
      std::lock_guard lk(mu_);
      ready.swap(done_);
    }
    for (Pending* p : ready) {
      --owed_;
      auto it = conns_.find(p->conn);
      if (it != conns_.end()) {
        Conn& c = it->second;
        c.in_flight = false;
        const uint64_t id = p->conn;
        reply(id, c, p->status, p->body, p->close_after);
        if (auto again = conns_.find(id); again != conns_.end()) next_request(id, again->second);
      }
      delete p;
    }
  }

  fb_bridge* b_;
  std::string path_;
  int ep_ = -1;
  int wake_ = -1;
  uint64_t next_id_ = 16;
  std::unordered_map<uint64_t, Conn> conns_;
  size_t owed_ = 0;  // requests handed over and not answered yet
  bool stopping_ = false;
  std::mutex mu_;
  std::vector<Pending*> done_;  // guarded by mu_
};

}  // namespace e2e
