#include "server/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <unordered_map>

#include "core/log.h"
#include "core/thread_name.h"
#include "crypto/encoding.h"

namespace fb::detail {

namespace {

constexpr size_t kMaxHeadBytes = 64 * 1024;
constexpr size_t kMaxHeaders = 100;
constexpr size_t kMinReadRoom = 16 * 1024;  // free space offered to each recv
constexpr int64_t kReleaseIdleBufferMs = 1000;  // an idle connection gives its buffer back after this
constexpr size_t kKeptBufferBytes = 1 << 20;  // a connection keeps a buffer up to this between requests
constexpr size_t kMaxChunkLine = 1024;
constexpr int kAnswerRounds = 16;  // see Loop::drain_answers

// RFC 9110 token characters (header names, methods).
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

const char* reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Client Error" : "Server Error";
  }
}

constexpr int64_t kAcceptPauseMs = 100;  // out of descriptors: accepting resumes after this

int64_t mono_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

ServerResponse plain(int status, std::string text, bool close = false) {
  ServerResponse r;
  r.status = status;
  r.set_content(std::move(text), "text/plain");
  r.close = close;
  return r;
}

}  // namespace

// ---- ServerRequest ----

std::string_view ServerRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (ascii_iequals(k, name)) return v;
  }
  return {};
}

bool ServerRequest::has_header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (ascii_iequals(k, name)) return true;
  }
  return false;
}

namespace {
// Calls f(key, value) (both still encoded) for each query parameter until it returns true.
template <typename F>
bool each_param(std::string_view query, F&& f) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    if (f(pair.substr(0, eq), eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1))) return true;
  }
  return false;
}
}  // namespace

bool ServerRequest::has_param(std::string_view key) const {
  return each_param(query, [&](std::string_view k, std::string_view) { return url_decode(k).value_or("") == key; });
}

std::string ServerRequest::param(std::string_view key) const {
  std::string out;
  each_param(query, [&](std::string_view k, std::string_view v) {
    if (url_decode(k).value_or("") != key) return false;
    out = url_decode(v).value_or("");
    return true;
  });
  return out;
}

// ---- connections and loops ----

namespace server_internal {

struct Route {
  std::string method;
  std::string path;  // exact path, or prefix for async routes
  Handler handler;
  AsyncHandler async;
  int64_t max_body = 0;
  TooLargeHandler too_large;
};

struct Loop;

// One client connection. Owned by its loop; a request in flight is also referenced by its
// Responder, so its buffer (which the request's views point into) outlives a stop().
struct Conn {
  int fd = -1;
  Loop* loop = nullptr;
  std::string remote_ip;

  // Input: bytes [0, len) of buf are data; a request starts at 0.
  std::unique_ptr<char[]> buf;
  size_t cap = 0;
  size_t len = 0;
  size_t head_scan = 0;  // where the search for the end of the head resumes

  enum class Phase { kHead, kBody, kChunked, kBusy } phase = Phase::kHead;
  size_t head_end = 0;  // offset just after the head's blank line
  size_t body_len = 0;  // Content-Length
  size_t req_end = 0;   // offset just after the whole request
  bool keep_alive = true;
  bool http10 = false;
  bool head_method = false;  // a HEAD request: its answer has no body
  bool expect_continue = false;
  const Route* route = nullptr;
  int64_t body_limit = 0;
  ServerRequest req;

  // Chunked body decoding.
  enum class Chunk { kSize, kData, kDataEnd, kTrailer } chunk = Chunk::kSize;
  size_t chunk_pos = 0;     // next undecoded byte
  size_t chunk_left = 0;    // bytes left in the current chunk
  size_t trailer_bytes = 0;  // trailer section read so far (bounded like a head)
  std::string chunked_body;

  // Output.
  std::string out;
  size_t out_pos = 0;
  bool close_after = false;

  bool readable = false;
  bool peer_done = false;  // the client shut down its side (its FIN may have come with the last data)
  bool lingering = false;  // answered and shut down for writing; unread input is discarded
  int64_t linger_until_ms = 0;
  bool busy = false;      // a handler owns the request
  bool closed = false;
  int64_t last_activity_ms = 0;
  int64_t request_start_ms = 0;  // first byte of the current request, 0 = none yet

  void reserve(size_t want) {
    if (cap >= want) return;
    size_t n = std::max(want, cap * 2);
    auto nb = std::make_unique_for_overwrite<char[]>(n);
    if (len) std::memcpy(nb.get(), buf.get(), len);
    std::unique_ptr<char[]> old = std::move(buf);  // freed after the views have moved
    buf = std::move(nb);
    cap = n;
    rebase(old.get());
  }

  // The parsed head's views follow the buffer when it moves.
  void rebase(const char* old) {
    if (!old || phase == Phase::kHead) return;
    auto fix = [&](std::string_view& v) {
      if (v.data() >= old && v.data() <= old + len) v = std::string_view(buf.get() + (v.data() - old), v.size());
    };
    fix(req.method);
    fix(req.target);
    fix(req.path);
    fix(req.query);
    for (auto& [k, v] : req.headers) {
      fix(k);
      fix(v);
    }
  }
};

// Answers handed back to a loop from other threads. Shared with Responders: an answer that comes
// after the loop has gone is dropped instead of touching freed memory.
struct Mailbox {
  std::mutex mu;
  std::vector<std::pair<std::shared_ptr<Conn>, ServerResponse>> items;  // guarded by mu
  std::vector<std::pair<int, std::string>> adopt;  // accepted sockets (and peer addresses) for this loop
  int efd = -1;         // guarded by mu (closed under it)
  bool closed = false;  // guarded by mu
  std::atomic<bool> waiting{false};  // items or adopt is not empty: checked between events

  void post(std::shared_ptr<Conn> conn, ServerResponse r) {
    std::lock_guard lk(mu);
    if (closed) return;
    bool was_empty = items.empty() && adopt.empty();
    items.emplace_back(std::move(conn), std::move(r));
    queued_locked(was_empty);
  }
  // Hands an accepted socket to this loop; false (the caller closes it) once the loop has left.
  bool give(int fd, std::string ip) {
    std::lock_guard lk(mu);
    if (closed) return false;
    bool was_empty = items.empty() && adopt.empty();
    adopt.emplace_back(fd, std::move(ip));
    queued_locked(was_empty);
    return true;
  }
  // Wakes the loop (stop()); nothing once the loop has left.
  void wake() {
    std::lock_guard lk(mu);
    if (!closed) signal_locked();
  }
  // After adding to items or adopt: flagged for the loop's between-events check, and the eventfd
  // is written only when the lists were empty (a wake-up is already pending otherwise).
  void queued_locked(bool was_empty) {
    waiting.store(true, std::memory_order_release);
    if (was_empty) signal_locked();
  }
  void signal_locked() {
    uint64_t one = 1;
    ssize_t w = ::write(efd, &one, sizeof one);
    (void)w;
  }
  void close() {
    std::lock_guard lk(mu);
    closed = true;
    items.clear();
    for (auto& [fd, ip] : adopt) ::close(fd);
    adopt.clear();
    if (efd >= 0) ::close(efd);
    efd = -1;
  }
};

}  // namespace server_internal

using namespace server_internal;

namespace {
thread_local Loop* tl_loop = nullptr;
}  // namespace

struct Responder::Target {
  std::shared_ptr<Mailbox> mailbox;
  std::shared_ptr<Conn> conn;
  Loop* loop = nullptr;
};

// A fixed pool for the blocking handlers.
class HandlerPool {
 public:
  explicit HandlerPool(int threads) {
    for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { run(); });
  }
  ~HandlerPool() { stop(); }
  void post(std::function<void()> task) {
    {
      std::lock_guard lk(mu_);
      if (stop_) return;
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }
  // Tasks not started yet are dropped (their Responders answer nobody: the loops are gone).
  void stop() {
    std::deque<std::function<void()>> dropped;
    {
      std::lock_guard lk(mu_);
      if (stop_ && threads_.empty()) return;
      stop_ = true;
      dropped.swap(tasks_);
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return stop_ || !tasks_.empty(); });
        if (stop_) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
  bool stop_ = false;                        // guarded by mu_
  std::vector<std::thread> threads_;
};

struct HttpServer::Impl {
  const HttpServerOptions& options;
  std::map<std::string, Route> exact;   // "METHOD path"
  std::vector<Route> prefixed;          // async, longest prefix first
  std::vector<std::pair<std::string, Guard>> guards;
  int listen_fd = -1;
  std::vector<std::unique_ptr<Loop>> loops;
  std::unique_ptr<HandlerPool> pool;
  std::atomic<bool> stopping{false};
  std::atomic<size_t> connections{0};
  std::atomic<size_t> next_loop{0};  // accepted connections go to the loops in turn

  explicit Impl(const HttpServerOptions& o) : options(o) {}
  const Route* find(std::string_view method, std::string_view path) const;
  bool guarded(const ServerRequest& req, ServerResponse& res) const;
};

namespace server_internal {

struct Loop {
  HttpServer::Impl* server = nullptr;
  int epfd = -1;
  int efd = -1;
  std::shared_ptr<Mailbox> mailbox = std::make_shared<Mailbox>();
  std::unordered_map<Conn*, std::shared_ptr<Conn>> conns;
  std::vector<std::pair<std::shared_ptr<Conn>, ServerResponse>> local;  // answers given on this thread
  std::thread thread;
  int64_t next_sweep_ms = 0;
  int64_t accept_paused_until_ms = 0;  // out of descriptors: the listening socket is not watched until then
  int64_t accept_warned_ms = 0;

  void run();
  void accept_all();
  void adopt(int fd, std::string ip);
  void on_event(Conn* c, uint32_t events);
  void drive(Conn* c);
  bool flush(Conn* c);
  bool read_some(Conn* c);
  enum class Progress { kNeedMore, kDispatched, kAnswered };
  Progress advance(Conn* c);
  Progress parse_head(Conn* c);
  Progress decode_chunks(Conn* c);
  Progress refuse(Conn* c, ServerResponse r);
  Progress refuse_too_large(Conn* c, int64_t length);
  void dispatch(Conn* c);
  void complete(const std::shared_ptr<Conn>& c, ServerResponse r);
  void serialize(Conn* c, const ServerResponse& r);
  void finish_request(Conn* c);
  void close_conn(Conn* c);
  void start_linger(Conn* c);
  void linger(Conn* c);
  void sweep(int64_t now);
  void drain_answers();
};

}  // namespace server_internal

Responder& Responder::operator=(Responder&& other) noexcept {
  if (this != &other) {
    if (target_) (*this)(plain(500, "internal error"));
    target_ = std::move(other.target_);
  }
  return *this;
}

Responder::~Responder() {
  if (target_) (*this)(plain(500, "internal error"));
}

void Responder::operator()(ServerResponse response) {
  if (!target_) return;
  std::shared_ptr<Target> t = std::move(target_);
  if (tl_loop == t->loop) {
    // On the connection's own loop (an answer given during dispatch): no wake-up needed.
    t->loop->local.emplace_back(std::move(t->conn), std::move(response));
  } else {
    t->mailbox->post(std::move(t->conn), std::move(response));
  }
}

const Route* HttpServer::Impl::find(std::string_view method, std::string_view path) const {
  std::string key;
  key.reserve(method.size() + 1 + path.size());
  key.append(method).append(" ").append(path);
  if (auto it = exact.find(key); it != exact.end()) return &it->second;
  for (const Route& r : prefixed) {
    if (r.method == method && path.substr(0, r.path.size()) == r.path) return &r;
  }
  return nullptr;
}

bool HttpServer::Impl::guarded(const ServerRequest& req, ServerResponse& res) const {
  for (const auto& [prefix, g] : guards) {
    if (req.path.substr(0, prefix.size()) == prefix && !g(req, res)) return false;
  }
  return true;
}

namespace server_internal {

void Loop::run() {
  tl_loop = this;
  epoll_event events[256];
  const int64_t linger_deadline_unset = -1;
  int64_t stop_deadline = linger_deadline_unset;
  for (;;) {
    int64_t now = mono_ms();
    if (server->stopping.load()) {
      if (stop_deadline == linger_deadline_unset) {
        stop_deadline = now + std::max(1, server->options.write_timeout_s) * 1000;
        epoll_ctl(epfd, EPOLL_CTL_DEL, server->listen_fd, nullptr);
      }
      // Close what is idle; a connection with a request in flight closes after its answer.
      std::vector<Conn*> idle;
      for (auto& [p, c] : conns) {
        if (!c->busy && c->out.empty()) idle.push_back(p);
      }
      for (Conn* c : idle) close_conn(c);
      if (conns.empty() || now >= stop_deadline) break;
    } else if (accept_paused_until_ms && now >= accept_paused_until_ms) {
      accept_paused_until_ms = 0;
      epoll_event lev{};
      lev.events = EPOLLIN | EPOLLEXCLUSIVE;
      lev.data.ptr = nullptr;
      epoll_ctl(epfd, EPOLL_CTL_ADD, server->listen_fd, &lev);
    }
    int timeout_ms = !local.empty() ? 0 : server->stopping.load() ? 50 : 1000;
    if (accept_paused_until_ms && timeout_ms > 0) {
      timeout_ms = static_cast<int>(std::clamp<int64_t>(accept_paused_until_ms - now, 1, timeout_ms));
    }
    int n = epoll_wait(epfd, events, 256, timeout_ms);
    if (n < 0 && errno != EINTR) {
      FB_LOG(kError, "server") << "epoll_wait failed: " << std::strerror(errno);
      break;
    }
    for (int i = 0; i < n; ++i) {
      void* p = events[i].data.ptr;
      if (p == nullptr) {
        accept_all();
      } else if (p == &efd) {
        uint64_t v;
        ssize_t r = ::read(efd, &v, sizeof v);
        (void)r;
      } else {
        on_event(static_cast<Conn*>(p), events[i].events);
        // Answers that became ready meanwhile go out now, not after the rest of this batch of
        // events (each may be a whole request to verify).
        if (!local.empty() || mailbox->waiting.load(std::memory_order_acquire)) drain_answers();
      }
    }
    drain_answers();
    now = mono_ms();
    if (now >= next_sweep_ms) {
      sweep(now);
      next_sweep_ms = now + 1000;
    }
  }
  // Leaving: connections still waiting for an answer are closed; their Responders keep the
  // buffers alive and their answers are dropped by the closed mailbox.
  mailbox->close();
  std::vector<Conn*> rest;
  for (auto& [p, c] : conns) rest.push_back(p);
  for (Conn* c : rest) close_conn(c);
  tl_loop = nullptr;
}

void Loop::drain_answers() {
  // Answers given on this thread can lead to the next pipelined request and its answer: a bounded
  // number of rounds here, so one client that keeps its pipeline full cannot keep the loop from
  // its other connections. What is left waits for the next turn (epoll_wait does not sleep then).
  for (int round = 0; round < kAnswerRounds; ++round) {
    std::vector<std::pair<std::shared_ptr<Conn>, ServerResponse>> batch;
    std::vector<std::pair<int, std::string>> fresh;
    batch.swap(local);
    {
      std::lock_guard lk(mailbox->mu);
      mailbox->waiting.store(false, std::memory_order_relaxed);
      fresh.swap(mailbox->adopt);
      if (batch.empty()) {
        batch.swap(mailbox->items);
      } else {
        for (auto& item : mailbox->items) batch.push_back(std::move(item));
        mailbox->items.clear();
      }
    }
    for (auto& [fd, ip] : fresh) adopt(fd, std::move(ip));
    if (batch.empty()) return;
    for (auto& [c, r] : batch) complete(c, std::move(r));
  }
}

void Loop::accept_all() {
  for (;;) {
    sockaddr_storage addr{};
    socklen_t alen = sizeof addr;
    int fd = accept4(server->listen_fd, reinterpret_cast<sockaddr*>(&addr), &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      int64_t now = mono_ms();
      if (now - accept_warned_ms >= 10000 || accept_warned_ms == 0) {
        FB_LOG(kWarn, "server") << "accept failed: " << std::strerror(errno);
        accept_warned_ms = now;
      }
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // The connection stays queued and the listening socket readable: retrying at once would
        // spin. Stop watching it for a moment (the queued connections wait in the backlog).
        epoll_ctl(epfd, EPOLL_CTL_DEL, server->listen_fd, nullptr);
        accept_paused_until_ms = now + kAcceptPauseMs;
      }
      return;
    }
    if (server->connections.load() >= server->options.max_connections) {
      ::close(fd);
      continue;
    }
    char ip[INET6_ADDRSTRLEN] = {0};
    if (addr.ss_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&addr)->sin_addr, ip, sizeof ip);
    } else if (addr.ss_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr, ip, sizeof ip);
    }
    // One loop may accept a burst of connections at once: spread them so every core verifies.
    Loop* to = server->loops[server->next_loop.fetch_add(1) % server->loops.size()].get();
    if (to == this) {
      adopt(fd, ip);
    } else if (!to->mailbox->give(fd, ip)) {
      ::close(fd);
    }
  }
}

void Loop::adopt(int fd, std::string ip) {
  int yes = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
  auto c = std::make_shared<Conn>();
  c->fd = fd;
  c->loop = this;
  c->last_activity_ms = mono_ms();
  c->remote_ip = std::move(ip);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = c.get();
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    ::close(fd);
    return;
  }
  server->connections.fetch_add(1);
  conns.emplace(c.get(), std::move(c));
}

void Loop::on_event(Conn* c, uint32_t events) {
  if (!conns.count(c)) return;  // closed earlier in this batch of events
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->readable = true;
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->peer_done = true;
  drive(c);
}

void Loop::close_conn(Conn* c) {
  auto it = conns.find(c);
  if (it == conns.end()) return;
  std::shared_ptr<Conn> keep = std::move(it->second);
  conns.erase(it);
  if (c->fd >= 0) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, nullptr);
    ::close(c->fd);
    c->fd = -1;
  }
  c->closed = true;
  server->connections.fetch_sub(1);
}

// Closing right after an answer while the client is still sending (a refused body) would make
// the kernel reset the connection, and the client could lose the answer. So the connection is
// shut down for writing and what the client still sends is read and dropped, for up to 2 s or
// until it closes (as HTTP servers do for a "lingering close").
constexpr int64_t kLingerMs = 2000;

void Loop::start_linger(Conn* c) {
  if (::shutdown(c->fd, SHUT_WR) != 0) {
    close_conn(c);
    return;
  }
  c->lingering = true;
  c->linger_until_ms = mono_ms() + kLingerMs;
  c->readable = true;
  linger(c);
}

void Loop::linger(Conn* c) {
  char scratch[16384];
  while (c->readable) {
    ssize_t n = ::recv(c->fd, scratch, sizeof scratch, 0);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      c->readable = false;
      return;
    }
    close_conn(c);  // the client closed, or the connection failed
    return;
  }
}

// Sends what is queued. False when the socket is full (EPOLLOUT resumes) or the connection closed.
bool Loop::flush(Conn* c) {
  while (c->out_pos < c->out.size()) {
    ssize_t n = ::send(c->fd, c->out.data() + c->out_pos, c->out.size() - c->out_pos, MSG_NOSIGNAL);
    if (n > 0) {
      c->out_pos += static_cast<size_t>(n);
      c->last_activity_ms = mono_ms();
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
    close_conn(c);
    return false;
  }
  c->out.clear();
  c->out_pos = 0;
  return true;
}

// Reads what the socket has. False when nothing more can be read now (or the connection closed).
bool Loop::read_some(Conn* c) {
  size_t want = kMinReadRoom;
  // Room for the rest of the body, but at most as much again as has arrived: an announced length
  // is only a claim, and reserving it up front would let a few bytes pin megabytes per connection.
  if (c->phase == Conn::Phase::kBody && c->req_end > c->len) {
    want = std::max(want, std::min(c->req_end - c->len, c->len));
  }
  c->reserve(c->len + want);
  size_t room = c->cap - c->len;
  for (;;) {
    ssize_t n = ::recv(c->fd, c->buf.get() + c->len, room, 0);
    if (n > 0) {
      c->last_activity_ms = mono_ms();
      if (c->len == 0 && c->request_start_ms == 0) c->request_start_ms = c->last_activity_ms;
      c->len += static_cast<size_t>(n);
      // A short read emptied the socket: wait for the next edge instead of a recv that says EAGAIN.
      // (Unless the client has finished sending: then the next read must see its end.)
      if (static_cast<size_t>(n) < room && !c->peer_done) c->readable = false;
      return true;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      c->readable = false;
      return false;
    }
    close_conn(c);  // the peer closed (n == 0) or the connection failed
    return false;
  }
}

void Loop::drive(Conn* c) {
  while (!c->closed) {
    if (c->lingering) {
      linger(c);
      return;
    }
    if (!c->out.empty()) {
      if (!flush(c)) return;
      if (c->close_after) {
        start_linger(c);
        return;
      }
    }
    if (c->busy) return;
    Progress p = advance(c);
    if (p != Progress::kNeedMore) continue;
    if (!c->readable) return;
    if (!read_some(c)) return;
  }
}

Loop::Progress Loop::refuse(Conn* c, ServerResponse r) {
  r.close = true;
  serialize(c, r);
  c->close_after = true;
  c->phase = Conn::Phase::kBusy;  // nothing more is parsed from this connection
  return Progress::kAnswered;
}

// A body over the route's limit: the route's own answer (the webhook route counts it) or a 413.
Loop::Progress Loop::refuse_too_large(Conn* c, int64_t length) {
  if (c->route && c->route->too_large) return refuse(c, c->route->too_large(length));
  return refuse(c, plain(413, "payload too large"));
}

Loop::Progress Loop::advance(Conn* c) {
  if (c->phase == Conn::Phase::kBusy) return Progress::kNeedMore;
  if (c->phase == Conn::Phase::kHead) {
    Progress p = parse_head(c);
    if (p != Progress::kDispatched) return p;  // kDispatched here means "head parsed"
  }
  if (c->phase == Conn::Phase::kBody) {
    if (c->len < c->req_end) {
      if (c->expect_continue) {
        c->expect_continue = false;
        c->out.append("HTTP/1.1 100 Continue\r\n\r\n");
        return Progress::kAnswered;
      }
      return Progress::kNeedMore;
    }
    c->req.body = std::string_view(c->buf.get() + c->head_end, c->body_len);
    dispatch(c);
    return Progress::kDispatched;
  }
  if (c->phase == Conn::Phase::kChunked) return decode_chunks(c);
  return Progress::kNeedMore;
}

Loop::Progress Loop::parse_head(Conn* c) {
  // Empty lines before a request line are ignored (RFC 9112 section 2.2).
  size_t skip = 0;
  while (skip + 1 < c->len && c->buf[skip] == '\r' && c->buf[skip + 1] == '\n') skip += 2;
  if (skip) {
    std::memmove(c->buf.get(), c->buf.get() + skip, c->len - skip);
    c->len -= skip;
    c->head_scan = 0;
  }
  std::string_view data(c->buf.get(), c->len);
  size_t from = c->head_scan > 3 ? c->head_scan - 3 : 0;
  size_t end = data.find("\r\n\r\n", from);
  if (end == std::string_view::npos) {
    c->head_scan = c->len;
    if (c->len > kMaxHeadBytes) return refuse(c, plain(431, "request head too large"));
    return Progress::kNeedMore;
  }
  if (end + 4 > kMaxHeadBytes) return refuse(c, plain(431, "request head too large"));
  c->head_end = end + 4;
  c->head_scan = 0;
  std::string_view head = data.substr(0, end);
  ServerRequest& req = c->req;
  req.headers.clear();  // keeps its capacity between requests
  req.body = {};
  if (req.remote_ip.empty()) req.remote_ip = c->remote_ip;

  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  head = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == 0 || sp2 == std::string_view::npos || sp2 == sp1 + 1) return refuse(c, plain(400, "malformed request line"));
  req.method = line.substr(0, sp1);
  c->head_method = req.method == "HEAD";
  req.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  for (char ch : req.method) {
    if (!is_tchar(ch)) return refuse(c, plain(400, "malformed request line"));
  }
  if (version == "HTTP/1.1") {
    c->http10 = false;
  } else if (version == "HTTP/1.0") {
    c->http10 = true;
  } else {
    return refuse(c, plain(version.substr(0, 5) == "HTTP/" ? 505 : 400, "unsupported HTTP version"));
  }
  if (req.target.empty()) return refuse(c, plain(400, "malformed request target"));
  for (char ch : req.target) {
    // Spaces and control characters (a bare CR or LF among them) have no place in a target.
    if (static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7f) return refuse(c, plain(400, "malformed request target"));
  }
  size_t q = req.target.find('?');
  req.path = req.target.substr(0, q);
  req.query = q == std::string_view::npos ? std::string_view() : req.target.substr(q + 1);

  std::string_view content_length, transfer_encoding, connection, expect;
  bool duplicate_length = false;
  bool has_length = false;  // present, even with an empty value
  int encodings = 0;        // Transfer-Encoding fields
  while (!head.empty()) {
    eol = head.find("\r\n");
    std::string_view h = head.substr(0, eol);
    head = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);
    if (h.empty()) continue;
    if (h.front() == ' ' || h.front() == '\t') return refuse(c, plain(400, "folded header lines are not allowed"));
    size_t colon = h.find(':');
    if (colon == 0 || colon == std::string_view::npos) return refuse(c, plain(400, "malformed header line"));
    std::string_view name = h.substr(0, colon);
    for (char ch : name) {
      if (!is_tchar(ch)) return refuse(c, plain(400, "malformed header name"));
    }
    std::string_view value = trim_ows(h.substr(colon + 1));
    // Lines end only at CRLF: a bare CR or LF (or a NUL) inside a field is refused, since a more
    // lenient parser in front of this server would split the field there (request smuggling).
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) {
      return refuse(c, plain(400, "malformed header value"));
    }
    if (req.headers.size() >= kMaxHeaders) return refuse(c, plain(431, "too many header fields"));
    req.headers.emplace_back(name, value);
    if (ascii_iequals(name, "content-length")) {
      if (has_length && content_length != value) duplicate_length = true;
      has_length = true;
      content_length = value;
    } else if (ascii_iequals(name, "transfer-encoding")) {
      // Several fields form one list of codings ("gzip" then "chunked" is "gzip, chunked"), never
      // just "chunked": counted so that only a single "chunked" is taken.
      ++encodings;
      transfer_encoding = value;
    } else if (ascii_iequals(name, "connection")) {
      connection = value;
    } else if (ascii_iequals(name, "expect")) {
      expect = value;
    }
  }
  c->keep_alive = c->http10 ? ascii_iequals(connection, "keep-alive") : !ascii_iequals(connection, "close");

  c->route = server->find(req.method, req.path);
  c->body_limit = c->route && c->route->async ? c->route->max_body : static_cast<int64_t>(server->options.payload_max_bytes);

  if (encodings > 0) {
    if (has_length) return refuse(c, plain(400, "both Content-Length and Transfer-Encoding"));
    if (encodings > 1 || !ascii_iequals(transfer_encoding, "chunked")) {
      return refuse(c, plain(501, "unsupported transfer coding"));
    }
    c->phase = Conn::Phase::kChunked;
    c->chunk = Conn::Chunk::kSize;
    c->chunk_pos = c->head_end;
    c->chunk_left = 0;
    c->trailer_bytes = 0;
    c->chunked_body.clear();
  } else {
    uint64_t n = 0;
    if (duplicate_length) return refuse(c, plain(400, "conflicting Content-Length"));
    if (has_length) {
      if (content_length.empty()) return refuse(c, plain(400, "malformed Content-Length"));
      if (content_length.size() > 18) return refuse_too_large(c, INT64_MAX);
      for (char ch : content_length) {
        if (ch < '0' || ch > '9') return refuse(c, plain(400, "malformed Content-Length"));
        n = n * 10 + static_cast<uint64_t>(ch - '0');
      }
    }
    if (static_cast<int64_t>(n) > c->body_limit) return refuse_too_large(c, static_cast<int64_t>(n));
    c->phase = Conn::Phase::kBody;
    c->body_len = static_cast<size_t>(n);
    c->req_end = c->head_end + c->body_len;
  }
  if (!expect.empty()) {
    if (!ascii_iequals(expect, "100-continue")) return refuse(c, plain(417, "unsupported Expect"));
    c->expect_continue = !c->http10;
  }
  return Progress::kDispatched;  // the head is parsed: continue with the body
}

Loop::Progress Loop::decode_chunks(Conn* c) {
  if (c->expect_continue && c->chunk_pos >= c->len) {
    c->expect_continue = false;
    c->out.append("HTTP/1.1 100 Continue\r\n\r\n");
    return Progress::kAnswered;
  }
  // What is decoded (copied to chunked_body) leaves the buffer before more is read: only the head,
  // which the request's views point into, and the undecoded rest stay. Otherwise the framing
  // (chunk extensions, trailer fields) would accumulate for as long as the client sends it.
  auto need_more = [c] {
    if (c->chunk_pos > c->head_end) {
      std::memmove(c->buf.get() + c->head_end, c->buf.get() + c->chunk_pos, c->len - c->chunk_pos);
      c->len -= c->chunk_pos - c->head_end;
      c->chunk_pos = c->head_end;
    }
    return Progress::kNeedMore;
  };
  for (;;) {
    std::string_view rest(c->buf.get() + c->chunk_pos, c->len - c->chunk_pos);
    switch (c->chunk) {
      case Conn::Chunk::kSize: {
        size_t eol = rest.find("\r\n");
        if (eol == std::string_view::npos) {
          if (rest.size() > kMaxChunkLine) return refuse(c, plain(400, "malformed chunked body"));
          return need_more();
        }
        std::string_view line = rest.substr(0, std::min(eol, rest.find(';')));
        line = trim_ows(line);
        if (line.empty() || line.size() > 15) return refuse(c, plain(400, "malformed chunked body"));
        size_t n = 0;
        for (char ch : line) {
          char l = ascii_lower(ch);
          int d = (l >= '0' && l <= '9') ? l - '0' : (l >= 'a' && l <= 'f') ? l - 'a' + 10 : -1;
          if (d < 0) return refuse(c, plain(400, "malformed chunked body"));
          n = n * 16 + static_cast<size_t>(d);
        }
        c->chunk_pos += eol + 2;
        if (n == 0) {
          c->chunk = Conn::Chunk::kTrailer;
        } else {
          if (static_cast<int64_t>(c->chunked_body.size() + n) > c->body_limit) {
            return refuse_too_large(c, static_cast<int64_t>(c->chunked_body.size() + n));
          }
          c->chunk_left = n;
          c->chunk = Conn::Chunk::kData;
        }
        break;
      }
      case Conn::Chunk::kData: {
        if (rest.empty()) return need_more();
        size_t take = std::min(rest.size(), c->chunk_left);
        c->chunked_body.append(rest.data(), take);
        c->chunk_pos += take;
        c->chunk_left -= take;
        if (c->chunk_left == 0) c->chunk = Conn::Chunk::kDataEnd;
        break;
      }
      case Conn::Chunk::kDataEnd: {
        if (rest.size() < 2) return need_more();
        if (rest[0] != '\r' || rest[1] != '\n') return refuse(c, plain(400, "malformed chunked body"));
        c->chunk_pos += 2;
        c->chunk = Conn::Chunk::kSize;
        break;
      }
      case Conn::Chunk::kTrailer: {
        size_t eol = rest.find("\r\n");
        size_t line = eol == std::string_view::npos ? rest.size() : eol + 2;
        if (c->trailer_bytes + line > kMaxHeadBytes) return refuse(c, plain(431, "trailer too large"));
        if (eol == std::string_view::npos) return need_more();
        c->chunk_pos += eol + 2;
        c->trailer_bytes += eol + 2;
        if (eol == 0) {  // the blank line that ends the message
          c->req_end = c->chunk_pos;
          c->req.body = c->chunked_body;
          dispatch(c);
          return Progress::kDispatched;
        }
        break;
      }
    }
  }
}

void Loop::dispatch(Conn* c) {
  c->phase = Conn::Phase::kBusy;
  c->busy = true;
  std::shared_ptr<Conn> self = conns.at(c);
  if (!c->route) {
    local.emplace_back(std::move(self), plain(404, "not found"));
    return;
  }
  auto target = std::make_shared<Responder::Target>();
  target->mailbox = mailbox;
  target->conn = std::move(self);
  target->loop = this;
  if (c->route->async) {
    try {
      c->route->async(c->req, Responder(std::move(target)));
    } catch (...) {  // whatever a handler throws
      // The Responder was destroyed unanswered: it answered 500.
    }
    return;
  }
  const Route* route = c->route;
  HttpServer::Impl* srv = server;
  srv->pool->post([srv, route, target = std::move(target)]() mutable {
    std::shared_ptr<Conn> conn = target->conn;  // the request lives in the connection
    Responder respond(std::move(target));
    ServerResponse res;
    try {
      if (srv->guarded(conn->req, res)) route->handler(conn->req, res);
    } catch (...) {  // whatever a handler throws
      res = plain(500, "internal error");  // an exception's text could carry data: not sent
    }
    respond(std::move(res));
  });
}

void Loop::serialize(Conn* c, const ServerResponse& r) {
  bool close = r.close || c->close_after || !c->keep_alive || server->stopping.load();
  std::string& o = c->out;
  o.reserve(o.size() + 128 + r.body.size());
  o.append("HTTP/1.1 ").append(std::to_string(r.status)).append(" ").append(reason_phrase(r.status)).append("\r\n");
  o.append("Content-Length: ").append(std::to_string(r.body.size())).append("\r\n");
  if (!r.content_type.empty()) o.append("Content-Type: ").append(r.content_type).append("\r\n");
  for (const auto& [k, v] : r.headers) {
    // A header value with a line break would let a handler's data split the response.
    if (k.find_first_of("\r\n:") != std::string::npos || v.find_first_of("\r\n") != std::string::npos) continue;
    o.append(k).append(": ").append(v).append("\r\n");
  }
  if (close) {
    o.append("Connection: close\r\n");
  } else if (c->http10) {
    o.append("Connection: keep-alive\r\n");
  }
  o.append("\r\n");
  if (!c->head_method) o.append(r.body);  // Content-Length still says what a GET would get
  c->close_after = close;
}

// Drops the request's bytes; what follows it (a pipelined request) moves to the front.
void Loop::finish_request(Conn* c) {
  size_t used = std::min(c->req_end, c->len);
  if (used < c->len) {
    std::memmove(c->buf.get(), c->buf.get() + used, c->len - used);
    c->len -= used;
    c->request_start_ms = mono_ms();
  } else {
    c->len = 0;
    c->request_start_ms = 0;
  }
  if (c->cap > kKeptBufferBytes && c->len < kMinReadRoom) {
    auto nb = std::make_unique_for_overwrite<char[]>(kMinReadRoom);
    if (c->len) std::memcpy(nb.get(), c->buf.get(), c->len);
    c->buf = std::move(nb);
    c->cap = kMinReadRoom;
  }
  if (c->chunked_body.capacity() > kKeptBufferBytes) std::string().swap(c->chunked_body);
  c->req.headers.clear();
  c->req.body = {};
  c->route = nullptr;
  c->phase = Conn::Phase::kHead;
  c->head_scan = 0;
  c->head_end = c->body_len = c->req_end = 0;
  c->expect_continue = false;
  c->head_method = false;
  c->busy = false;
}

void Loop::complete(const std::shared_ptr<Conn>& conn, ServerResponse r) {
  Conn* c = conn.get();
  if (c->closed || !c->busy) return;
  serialize(c, r);
  if (c->close_after) {
    c->busy = false;
    c->phase = Conn::Phase::kBusy;  // nothing more is read
  } else {
    finish_request(c);
  }
  drive(c);
}

void Loop::sweep(int64_t now) {
  const HttpServerOptions& o = server->options;
  std::vector<Conn*> expired;
  for (auto& [p, c] : conns) {
    if (c->busy) continue;
    if (c->lingering) {
      if (now >= c->linger_until_ms) expired.push_back(p);
      continue;
    }
    bool sending = c->out_pos < c->out.size();
    if (sending) {
      if (now - c->last_activity_ms > int64_t{o.write_timeout_s} * 1000) expired.push_back(p);
    } else if (c->len == 0 && c->phase == Conn::Phase::kHead) {
      if (now - c->last_activity_ms > int64_t{o.keep_alive_timeout_s} * 1000) {
        expired.push_back(p);
      } else if (c->cap && now - c->last_activity_ms > kReleaseIdleBufferMs) {
        // Thousands of idle keep-alive connections must not each hold a request's worth of memory.
        c->buf.reset();
        c->cap = 0;
        std::string().swap(c->out);
      }
    } else if (c->request_start_ms && now - c->request_start_ms > int64_t{o.read_timeout_s} * 1000) {
      expired.push_back(p);  // a request that trickles in (or never completes)
    }
  }
  for (Conn* c : expired) close_conn(c);
}

}  // namespace server_internal

// ---- HttpServer ----

HttpServerOptions HttpServer::options_from(const ServerConfig& server, const WebhookConfig&) {
  HttpServerOptions o;
  o.host = server.host;
  o.port = server.port;
  o.threads = server.threads;
  return o;
}

HttpServer::HttpServer(HttpServerOptions options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>(options_)) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::route(std::string method, std::string path, Handler handler) {
  Route r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.handler = std::move(handler);
  std::string key = r.method + " " + r.path;
  impl_->exact[key] = std::move(r);
}

void HttpServer::route_async(std::string method, std::string prefix, AsyncHandler handler, int64_t max_body_bytes,
                             TooLargeHandler too_large) {
  Route r;
  r.method = std::move(method);
  r.path = std::move(prefix);
  r.async = std::move(handler);
  r.max_body = max_body_bytes < 0 ? static_cast<int64_t>(options_.payload_max_bytes) : max_body_bytes;
  r.too_large = std::move(too_large);
  auto& v = impl_->prefixed;
  v.push_back(std::move(r));
  std::stable_sort(v.begin(), v.end(), [](const Route& a, const Route& b) { return a.path.size() > b.path.size(); });
}

std::vector<HttpServer::RouteInfo> HttpServer::routes() const {
  std::vector<RouteInfo> out;
  for (const auto& [key, r] : impl_->exact) out.push_back({r.method, r.path, false});
  for (const auto& r : impl_->prefixed) out.push_back({r.method, r.path, true});
  std::sort(out.begin(), out.end(), [](const RouteInfo& a, const RouteInfo& b) {
    return a.path != b.path ? a.path < b.path : a.method < b.method;
  });
  return out;
}

void HttpServer::guard(std::string prefix, Guard g) { impl_->guards.emplace_back(std::move(prefix), std::move(g)); }

Status HttpServer::bind() {
  std::lock_guard lk(mu_);
  if (bound_) return Status::FailedPrecondition("HTTP server already bound");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(options_.port);
  std::string where = options_.host + ":" + port;
  if (getaddrinfo(options_.host.c_str(), port.c_str(), &hints, &res) != 0 || !res) {
    return Status::Unavailable("cannot bind " + where + " (not a local address)");
  }
  int fd = -1;
  int err = 0;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    // SO_REUSEADDR (restart without waiting for TIME_WAIT), never SO_REUSEPORT: a second sidecar
    // must fail to bind rather than silently take half the deliveries.
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0) break;
    err = errno;
    ::close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    return Status::Unavailable("cannot bind " + where + " (" + (err ? std::strerror(err) : "no address") + ")");
  }
  sockaddr_storage addr{};
  socklen_t alen = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen);
  port_ = ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  impl_->listen_fd = fd;
  bound_ = true;
  return Status::Ok();
}

Status HttpServer::start() {
  {
    std::lock_guard lk(mu_);
    if (started_) return Status::FailedPrecondition("HTTP server already started");
  }
  bool need_bind;
  {
    std::lock_guard lk(mu_);
    need_bind = !bound_;
  }
  if (need_bind) FB_TRY(bind());
  std::lock_guard lk(mu_);
  if (started_) return Status::FailedPrecondition("HTTP server already started");
  Impl& s = *impl_;
  s.stopping = false;
  int io = options_.io_threads > 0 ? options_.io_threads
                                   : static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
  s.pool = std::make_unique<HandlerPool>(options_.threads);
  for (int i = 0; i < io; ++i) {
    auto loop = std::make_unique<Loop>();
    loop->server = &s;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    loop->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->epfd < 0 || loop->efd < 0) {
      std::string why = std::strerror(errno);
      if (loop->epfd >= 0) ::close(loop->epfd);
      if (loop->efd >= 0) ::close(loop->efd);
      for (auto& l : s.loops) {
        ::close(l->epfd);
        l->mailbox->close();
      }
      s.loops.clear();
      s.pool.reset();
      return Status::Unavailable("cannot create an event loop: " + why);
    }
    loop->mailbox->efd = loop->efd;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &loop->efd;
    epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->efd, &ev);
    epoll_event lev{};
    lev.events = EPOLLIN | EPOLLEXCLUSIVE;
    lev.data.ptr = nullptr;
    epoll_ctl(loop->epfd, EPOLL_CTL_ADD, s.listen_fd, &lev);
    s.loops.push_back(std::move(loop));
  }
  for (auto& loop : s.loops) {
    Loop* l = loop.get();
    l->thread = std::thread([l] {
      name_this_thread("fb-http");
      l->run();
    });
  }
  started_ = true;
  FB_LOG(kInfo, "server") << "listening on http://" << options_.host << ":" << port_ << " with " << io
                          << " event loop(s) and " << options_.threads << " handler threads";
  return Status::Ok();
}

void HttpServer::stop() {
  std::lock_guard lk(mu_);
  if (!started_ && !bound_) return;
  Impl& s = *impl_;
  if (started_) {
    s.stopping = true;
    for (auto& loop : s.loops) loop->mailbox->wake();
    for (auto& loop : s.loops) {
      if (loop->thread.joinable()) loop->thread.join();
      ::close(loop->epfd);  // the eventfd was closed with the mailbox
    }
    if (s.pool) s.pool->stop();
    s.loops.clear();
    s.pool.reset();
  }
  if (s.listen_fd >= 0) ::close(s.listen_fd);
  s.listen_fd = -1;
  started_ = false;
  bound_ = false;
  port_ = 0;
}

int HttpServer::port() const {
  std::lock_guard lk(mu_);
  return port_;
}

bool HttpServer::running() const {
  std::lock_guard lk(mu_);
  return started_;
}

}  // namespace fb::detail
