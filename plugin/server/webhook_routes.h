// webhook_routes.h: the webhook receiving route of the sidecar's HTTP server.
//
//   POST {webhooks.path_prefix}/{token}  -> Receiver::handle(path, headers, raw body)
//
// The body is read as raw bytes (never re-encoded); a Content-Length above the receiver's
// max_body_bytes is refused with 413 before the body is read, and the connection is closed. The
// route is asynchronous (HttpServer::route_async): no thread waits for the group commit.
// The answer is the receiver's status. A rejection has its short reason as a text/plain body; an
// acceptance (200) has an empty body and the reason ("accepted" or "duplicate") in the header
// Webhook-Result.
#pragma once

#include "core/latency_histogram.h"
#include "server/http_server.h"
#include "webhooks/receiver.h"

namespace fb::detail {

// Mounts the route on server (before server.start()). The receiver must outlive the server's run.
// ingest (optional, outliving the run too) gets each delivery's time from request to answer.
void mount_webhook_routes(HttpServer& server, Receiver& receiver, LatencyHistogram* ingest = nullptr);

}  // namespace fb::detail
