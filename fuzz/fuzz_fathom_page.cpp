// Fathom API page parsing (fathom-api.md sections 3-4): every parser that reads a Fathom answer
// gets the same bytes. Malformed pages must come back as errors, never crash or hang; a page
// that parses twice gives the same result.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fathom/models.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view json(reinterpret_cast<const char*>(data), size);
  using namespace fb::detail;
  auto page = parse_meeting_page(json);
  if (page.ok()) {
    auto again = parse_meeting_page(json);
    if (!again.ok() || again->items.size() != page->items.size() || again->next_cursor != page->next_cursor) {
      std::abort();
    }
  }
  (void)parse_meeting(json);
  std::string raw;
  (void)parse_transcript_response(json, &raw);
  (void)parse_transcript_items(json);
  (void)parse_summary_response(json, &raw);
  (void)parse_summary(json);
  (void)parse_action_items(json);
  (void)parse_team_page(json);
  (void)parse_team_member_page(json);
  (void)parse_webhook(json);
  return 0;
}
