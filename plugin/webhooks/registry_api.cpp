// TEMPORARY until plugin/fathom/fathom_client.h is committed: no API calls yet.
#include "webhooks/registry_api.h"

namespace fb::detail {

Result<CreatedWebhook> create_fathom_webhook(FathomClient&, int64_t, const std::string&, const WebhookFlags&) {
  return Status::Unavailable("Fathom client not wired yet");
}
Status delete_fathom_webhook(FathomClient&, int64_t, std::string_view) {
  return Status::Unavailable("Fathom client not wired yet");
}

}  // namespace fb::detail
