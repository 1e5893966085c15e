// registry_api.h: the two Fathom API calls the registry makes (POST /webhooks, DELETE
// /webhooks/{id}), kept apart so registry.cpp does not depend on the client's request details.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/secret.h"
#include "fathom_bridge/status.h"

namespace fb::detail {

class FathomClient;
struct WebhookFlags;

struct CreatedWebhook {
  std::string id;       // Fathom's webhook id
  SecretString secret;  // "whsec_..."
};

Result<CreatedWebhook> create_fathom_webhook(FathomClient& client, int64_t integration_id,
                                             const std::string& destination_url, const WebhookFlags& flags);
// kNotFound when Fathom no longer knows the webhook.
Status delete_fathom_webhook(FathomClient& client, int64_t integration_id, std::string_view webhook_id);

}  // namespace fb::detail
