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

void answer(httplib::Response& res, const ReceiveResult& r) {
  res.status = r.http_status;
  res.set_content(std::string(r.reason), "text/plain");
}

}  // namespace

void mount_webhook_routes(HttpServer& server, Receiver& receiver) {
  // Everything under the prefix reaches the receiver, so unknown paths are counted as such.
  std::string pattern = regex_escape(receiver.path_prefix()) + ".*";
  server.raw().Post(pattern, [&receiver](const httplib::Request& req, httplib::Response& res,
                                         const httplib::ContentReader& read) {
    const int64_t max = receiver.max_body_bytes();
    std::string body;
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
