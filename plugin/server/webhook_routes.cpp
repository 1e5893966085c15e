#include "server/webhook_routes.h"

namespace fb::detail {

namespace {

// The delivery headers as views into the request: the webhook-* set when complete, else svix-*.
DeliveryHeaders delivery_headers(const ServerRequest& req) {
  DeliveryHeaders h{req.header("webhook-id"), req.header("webhook-timestamp"), req.header("webhook-signature")};
  if (!h.id.empty() && !h.timestamp.empty() && !h.signature.empty()) return h;
  DeliveryHeaders s{req.header("svix-id"), req.header("svix-timestamp"), req.header("svix-signature")};
  if (!s.id.empty() && !s.timestamp.empty() && !s.signature.empty()) return s;
  bool any = !h.id.empty() || !h.timestamp.empty() || !h.signature.empty();
  return any ? h : s;
}

// A rejection carries its reason as the body. An acceptance has no body and its reason in a
// header, so the whole answer is a few dozen bytes.
ServerResponse answer(const ReceiveResult& r) {
  ServerResponse res;
  res.status = r.http_status;
  if (r.accepted()) {
    res.set_header("Webhook-Result", std::string(r.reason));
  } else {
    res.set_content(std::string(r.reason), "text/plain");
  }
  return res;
}

}  // namespace

void mount_webhook_routes(HttpServer& server, Receiver& receiver, LatencyHistogram* ingest) {
  // Everything under the prefix reaches the receiver, so unknown paths are counted as such. The
  // route runs on the server's event loop: verification there, then the inbox's writer thread
  // answers once the group commit that holds the delivery is durable.
  server.route_async(
      "POST", receiver.path_prefix(),
      [&receiver, ingest](const ServerRequest& req, Responder respond) {
        // One allocation holds the responder and the timing, so the callback captures one pointer.
        struct Pending {
          Responder respond;
          LatencyHistogram* ingest;
          int64_t start_ns;
        };
        auto shared = std::make_shared<Pending>(
            Pending{std::move(respond), ingest, ingest ? LatencyHistogram::now_ns() : 0});
        receiver.handle_async(req.path, delivery_headers(req), req.body, [shared](const ReceiveResult& r) {
          if (shared->ingest) shared->ingest->observe_since(shared->start_ns);
          shared->respond(answer(r));
        });
      },
      receiver.max_body_bytes(),
      [&receiver](int64_t length) {
        // Refused unread: the server closes the connection, since the body is still in it.
        return answer(receiver.reject_too_large(length));
      });
}

}  // namespace fb::detail
