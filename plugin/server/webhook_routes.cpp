#include "server/webhook_routes.h"

#include <httplib.h>

#include <cstdlib>
#include <regex>

namespace fb::detail {

namespace {

std::string_view header_view(const httplib::Request& req, const char* name) {
  auto it = req.headers.find(name);  // case-insensitive map
  return it == req.headers.end() ? std::string_view() : std::string_view(it->second);
}

// The delivery headers as views into the request: the webhook-* set when complete, else svix-*.
DeliveryHeaders delivery_headers(const httplib::Request& req) {
  DeliveryHeaders h{header_view(req, "webhook-id"), header_view(req, "webhook-timestamp"),
                    header_view(req, "webhook-signature")};
  if (!h.id.empty() && !h.timestamp.empty() && !h.signature.empty()) return h;
  DeliveryHeaders s{header_view(req, "svix-id"), header_view(req, "svix-timestamp"), header_view(req, "svix-signature")};
  if (!s.id.empty() && !s.timestamp.empty() && !s.signature.empty()) return s;
  bool any = !h.id.empty() || !h.timestamp.empty() || !h.signature.empty();
  return any ? h : s;
}

std::string regex_escape(const std::string& s) {
  static const std::string kSpecial = R"(\^$.|?*+()[]{})";
  std::string out;
  for (char c : s) {
    if (kSpecial.find(c) != std::string::npos) out += '\\';
    out += c;
  }
  return out;
}

// A rejection carries its reason as the body. An acceptance has no body and its reason in a
// header: cpp-httplib sends headers and body with separate writes, and one packet instead of two
// is a measurable share of the CPU per delivery.
void answer(httplib::Response& res, const ReceiveResult& r) {
  res.status = r.http_status;
  if (r.accepted()) {
    res.set_header("Webhook-Result", std::string(r.reason));
  } else {
    res.set_content(std::string(r.reason), "text/plain");
  }
}

// Bodies are read into a buffer per connection thread, kept between requests (up to a bound, so
// one huge transcript does not pin its size in every thread).
constexpr size_t kKeptBufferBytes = 1u << 20;

}  // namespace

void mount_webhook_routes(HttpServer& server, Receiver& receiver) {
  // Everything under the prefix reaches the receiver, so unknown paths are counted as such.
  std::string pattern = regex_escape(receiver.path_prefix()) + ".*";
  server.raw().Post(pattern, [&receiver](const httplib::Request& req, httplib::Response& res,
                                         const httplib::ContentReader& read) {
    const int64_t max = receiver.max_body_bytes();
    thread_local std::string buffer;
    if (buffer.capacity() > kKeptBufferBytes) std::string().swap(buffer);
    std::string& body = buffer;
    body.clear();
    auto cl = req.headers.find("Content-Length");
    if (cl != req.headers.end()) {
      char* end = nullptr;
      unsigned long long n = std::strtoull(cl->second.c_str(), &end, 10);
      if (n > static_cast<unsigned long long>(max)) {
        // Refused unread: the connection cannot be reused, since the body is still in it.
        answer(res, receiver.reject_too_large(static_cast<int64_t>(n)));
        res.set_header("Connection", "close");
        return;
      }
      body.reserve(static_cast<size_t>(n));
    }
    bool too_large = false;
    bool ok = read([&](const char* data, size_t len) {
      if (static_cast<int64_t>(body.size() + len) > max) {
        too_large = true;
        return false;
      }
      body.append(data, len);
      return true;
    });
    if (too_large) {
      answer(res, receiver.reject_too_large(static_cast<int64_t>(body.size())));
      res.set_header("Connection", "close");
      return;
    }
    if (!ok) {
      res.status = 400;
      res.set_content("incomplete body", "text/plain");
      res.set_header("Connection", "close");
      return;
    }
    answer(res, receiver.handle(req.path, delivery_headers(req), body));
  });
}

}  // namespace fb::detail
