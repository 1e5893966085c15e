// Outbound proxies: HTTPS_PROXY / HTTP_PROXY / NO_PROXY and the fathom.proxy setting, through a
// small proxy written here on 127.0.0.1. Targets are named "fathom.test", a name this machine
// cannot resolve: the proxy maps it to 127.0.0.1, so an answer proves the traffic went through it.
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "http/http_client.h"
#include "support/temp_dir.h"
#include "support/wait.h"

namespace {

using fb::detail::HttpClientOptions;
using fb::detail::HttplibTransport;
using fb::detail::HttpRequest;

// A forward proxy: CONNECT host:port opens a tunnel, "GET http://host:port/path" is forwarded in
// origin form. Every host is reached at 127.0.0.1; each request line it received is recorded.
class LoopbackProxy {
 public:
  LoopbackProxy() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BOOST_REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    BOOST_REQUIRE(::listen(listen_fd_, 16) == 0);
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~LoopbackProxy() {
    stop_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    acceptor_.join();
    for (auto& t : conns_) t.join();
  }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  void accept_loop() {
    while (!stop_) {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      std::lock_guard lock(mu_);
      conns_.emplace_back([this, fd] { serve(fd); });
    }
  }

  static int connect_loopback(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  static bool send_all(int fd, std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Copies bytes both ways until either side closes.
  static void pump(int a, int b) {
    pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    char buf[16384];
    for (;;) {
      if (::poll(fds, 2, 10000) <= 0) return;
      for (int i = 0; i < 2; ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t n = ::recv(fds[i].fd, buf, sizeof buf, 0);
        if (n <= 0 || !send_all(fds[1 - i].fd, std::string_view(buf, static_cast<size_t>(n)))) return;
      }
    }
  }

  void serve(int client) {
    std::string head;
    char c;
    while (head.find("\r\n\r\n") == std::string::npos && ::recv(client, &c, 1, 0) == 1) head += c;
    std::string line = head.substr(0, head.find("\r\n"));
    {
      std::lock_guard lock(mu_);
      requests_.push_back(line);
    }
    // "METHOD target HTTP/1.1"
    size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
    std::string method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    int upstream = -1;
    if (method == "CONNECT") {
      upstream = connect_loopback(std::atoi(target.substr(target.rfind(':') + 1).c_str()));
      if (upstream >= 0 && send_all(client, "HTTP/1.1 200 Connection established\r\n\r\n")) pump(client, upstream);
    } else if (target.rfind("http://", 0) == 0) {
      std::string rest = target.substr(7);
      std::string authority = rest.substr(0, rest.find('/'));
      std::string path = rest.substr(authority.size());
      int port = authority.find(':') == std::string::npos ? 80 : std::atoi(authority.substr(authority.find(':') + 1).c_str());
      upstream = connect_loopback(port);
      if (upstream >= 0 && send_all(upstream, method + " " + path + line.substr(sp2) + head.substr(line.size()))) {
        pump(client, upstream);
      }
    } else {
      send_all(client, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
    if (upstream >= 0) ::close(upstream);
    ::close(client);
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> conns_;      // guarded by mu_
  std::vector<std::string> requests_;   // guarded by mu_
};

// Sets environment variables for one test and restores them after.
class ScopedEnv {
 public:
  ScopedEnv(std::initializer_list<std::pair<const char*, const char*>> vars) {
    for (const char* n : {"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"}) {
      const char* v = std::getenv(n);
      saved_.emplace_back(n, v ? std::optional<std::string>(v) : std::nullopt);
      ::unsetenv(n);
    }
    for (const auto& [n, v] : vars) ::setenv(n, v, 1);
  }
  ~ScopedEnv() {
    for (const auto& [n, v] : saved_) {
      if (v) ::setenv(n.c_str(), v->c_str(), 1);
      else ::unsetenv(n.c_str());
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// A server on 127.0.0.1 answering GET /hello.
template <typename Server>
struct Target {
  Server server;
  int port = 0;
  std::thread thread;
  template <typename... A>
  explicit Target(A&&... args) : server(std::forward<A>(args)...) {
    server.Get("/hello", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content("hello via " + req.get_header_value("Host"), "text/plain");
    });
    port = server.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { server.listen_after_bind(); });
    while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~Target() {
    server.stop();
    thread.join();
  }
};

fb::Result<fb::detail::HttpResponse> get(HttplibTransport& t, const std::string& url) {
  HttpRequest req;
  req.url = url;
  return t.send(req);
}

fb::detail::Url url_of(const std::string& u) { return *fb::detail::parse_url(u); }

}  // namespace

BOOST_AUTO_TEST_SUITE(proxy)

BOOST_AUTO_TEST_CASE(which_requests_use_which_proxy) {
  ScopedEnv env({{"HTTPS_PROXY", "http://secure-proxy:3128"}, {"http_proxy", "plain-proxy:8080"},
                 {"NO_PROXY", "internal.example, .corp.example,api.direct:8443"}});
  HttpClientOptions o;
  BOOST_TEST(fb::detail::proxy_for(url_of("https://api.fathom.ai/x"), o)->host == "secure-proxy");
  BOOST_TEST(fb::detail::proxy_for(url_of("http://api.fathom.ai/x"), o)->port == 8080);  // "host:port" accepted
  BOOST_TEST(!fb::detail::proxy_for(url_of("https://internal.example/x"), o));
  BOOST_TEST(!fb::detail::proxy_for(url_of("https://a.internal.example/x"), o));  // subdomains too
  BOOST_TEST(fb::detail::proxy_for(url_of("https://notinternal.example/x"), o).has_value());
  BOOST_TEST(!fb::detail::proxy_for(url_of("https://x.corp.example/x"), o));
  BOOST_TEST(fb::detail::proxy_for(url_of("https://corp.example/x"), o).has_value());  // ".corp": subdomains only
  BOOST_TEST(!fb::detail::proxy_for(url_of("https://api.direct:8443/x"), o));
  BOOST_TEST(fb::detail::proxy_for(url_of("https://api.direct/x"), o).has_value());  // another port
  // Loopback is never proxied.
  BOOST_TEST(!fb::detail::proxy_for(url_of("https://127.0.0.1:9/x"), o));
  BOOST_TEST(!fb::detail::proxy_for(url_of("http://localhost:9/x"), o));
  BOOST_TEST(!fb::detail::proxy_for(url_of("http://[::1]:9/x"), o));
  // The setting wins over the environment.
  o.proxy = "http://setting-proxy:1";
  o.no_proxy = "*";
  BOOST_TEST(!fb::detail::proxy_for(url_of("https://api.fathom.ai/x"), o));
  o.no_proxy = "other";
  BOOST_TEST(fb::detail::proxy_for(url_of("https://internal.example/x"), o)->host == "setting-proxy");
}

BOOST_AUTO_TEST_CASE(https_goes_through_a_connect_tunnel_from_HTTPS_PROXY) {
  fb::test::TempDir dir;
  const std::string cert = dir.file("cert.pem"), key = dir.file("key.pem");
  auto made = fb::test::run_command("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=fathom.test "
                                    "-addext subjectAltName=DNS:fathom.test -keyout " + key + " -out " + cert + " 2>&1");
  BOOST_REQUIRE_MESSAGE(made.exit_code == 0, made.output);
  Target<httplib::SSLServer> target(cert.c_str(), key.c_str());
  LoopbackProxy proxy;
  ScopedEnv env({{"HTTPS_PROXY", proxy.url().c_str()}});
  HttpClientOptions o;
  o.ca_file = cert;  // the certificate is checked for fathom.test: TLS runs end to end through the tunnel
  HttplibTransport transport(o);
  const std::string url = "https://fathom.test:" + std::to_string(target.port) + "/hello";
  auto r = get(transport, url);
  BOOST_REQUIRE_MESSAGE(r.ok(), r.status().to_string());
  BOOST_TEST(r->status == 200);
  BOOST_TEST(r->body == "hello via fathom.test:" + std::to_string(target.port));
  auto seen = proxy.requests();
  BOOST_REQUIRE_EQUAL(seen.size(), 1u);
  BOOST_TEST(seen[0] == "CONNECT fathom.test:" + std::to_string(target.port) + " HTTP/1.1");

  // Without the proxy the name does not resolve here: the answer above came through the proxy.
  ScopedEnv direct({});
  HttplibTransport no_proxy(o);
  BOOST_TEST(!get(no_proxy, url).ok());
}

BOOST_AUTO_TEST_CASE(http_goes_to_the_proxy_in_absolute_form_and_NO_PROXY_bypasses_it) {
  Target<httplib::Server> target;
  LoopbackProxy proxy;
  const std::string url = "http://fathom.test:" + std::to_string(target.port) + "/hello";
  {
    ScopedEnv env({{"HTTP_PROXY", proxy.url().c_str()}});
    HttplibTransport transport;
    auto r = get(transport, url);
    BOOST_REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    BOOST_TEST(r->body == "hello via fathom.test:" + std::to_string(target.port));
    BOOST_REQUIRE_EQUAL(proxy.requests().size(), 1u);
    BOOST_TEST(proxy.requests()[0] == "GET " + url + " HTTP/1.1");
    // Loopback targets go direct even with a proxy set.
    auto local = get(transport, "http://127.0.0.1:" + std::to_string(target.port) + "/hello");
    BOOST_REQUIRE(local.ok());
    BOOST_TEST(proxy.requests().size() == 1u);
  }
  {
    // NO_PROXY names the host: the transport connects directly, which fails for this name.
    ScopedEnv env({{"HTTP_PROXY", proxy.url().c_str()}, {"NO_PROXY", "fathom.test"}});
    HttplibTransport transport;
    BOOST_TEST(!get(transport, url).ok());
    BOOST_TEST(proxy.requests().size() == 1u);
  }
  {
    // The setting, with no environment at all.
    ScopedEnv env({});
    HttpClientOptions o;
    o.proxy = proxy.url();
    HttplibTransport transport(o);
    auto r = get(transport, url);
    BOOST_REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    BOOST_TEST(proxy.requests().size() == 2u);
  }
}

BOOST_AUTO_TEST_SUITE_END()
