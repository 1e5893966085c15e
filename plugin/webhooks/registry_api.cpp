#include "webhooks/registry_api.h"

#include "fathom/fathom_client.h"
#include "webhooks/registry.h"

namespace fb::detail {

Result<CreatedWebhook> create_fathom_webhook(FathomClient& client, int64_t integration_id,
                                             const std::string& destination_url, const WebhookFlags& flags) {
  WebhookSpec spec;
  spec.destination_url = destination_url;
  spec.triggered_for = flags.triggered_for;
  spec.include_transcript = flags.include_transcript;
  spec.include_summary = flags.include_summary;
  spec.include_action_items = flags.include_action_items;
  spec.include_crm_matches = flags.include_crm_matches;
  auto created = client.create_webhook(integration_id, spec);
  if (!created.ok()) return created.status().with_context("creating the Fathom webhook");
  if (created->id.empty()) return Status::Malformed("Fathom created a webhook without an id");
  // The docs advise checking the answer: a webhook pointing elsewhere would never reach us.
  if (!created->url.empty() && created->url != destination_url) {
    (void)client.delete_webhook(integration_id, created->id);
    return Status::Malformed("Fathom created the webhook for another URL than the one requested");
  }
  return CreatedWebhook{created->id, std::move(created->secret)};
}

Status delete_fathom_webhook(FathomClient& client, int64_t integration_id, std::string_view webhook_id) {
  return client.delete_webhook(integration_id, std::string(webhook_id));
}

}  // namespace fb::detail
