// content_source.h: transcripts and summaries through the cache first, the API on a miss.
//
// CachedContentSource implements MeetingContentSource (core/pipeline.h) for the scripting layer's
// `fathom` module and the sync engine's "always fetch" settings. A hit (content cached from an
// earlier fetch, a webhook payload or a list call with include_*) costs no API call; a miss costs
// exactly one (plus retries), and concurrent requests for the same recording share that call.
//
// Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <tuple>

#include "core/pipeline.h"
#include "fathom/fathom_client.h"
#include "sync/meeting_store.h"

namespace fb::detail {

class CachedContentSource final : public MeetingContentSource {
 public:
  // store and client must outlive this object.
  CachedContentSource(MeetingStore& store, FathomClient& client) : store_(store), client_(client) {}

  // JSON array of TranscriptItem.
  Result<std::string> transcript_json(int64_t integration_id, int64_t recording_id) override;
  // JSON MeetingSummary object.
  Result<std::string> summary_json(int64_t integration_id, int64_t recording_id) override;
  // Either of the above; *fetched (optional) tells whether an API call was made.
  Result<std::string> get(int64_t integration_id, int64_t recording_id, ContentKind kind, bool* fetched = nullptr);

  // Lifetime count of content fetched from the API (cache misses that succeeded).
  int64_t api_fetches() const;

 private:
  MeetingStore& store_;
  FathomClient& client_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::tuple<int64_t, int64_t, int>> inflight_;  // guarded by mu_
  int64_t fetches_ = 0;                                    // guarded by mu_
};

}  // namespace fb::detail
