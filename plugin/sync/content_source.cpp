#include "sync/content_source.h"

#include "core/log.h"

namespace fb::detail {

Result<std::string> CachedContentSource::transcript_json(int64_t integration_id, int64_t recording_id) {
  return get(integration_id, recording_id, ContentKind::kTranscript);
}

Result<std::string> CachedContentSource::summary_json(int64_t integration_id, int64_t recording_id) {
  return get(integration_id, recording_id, ContentKind::kSummary);
}

int64_t CachedContentSource::api_fetches() const {
  std::lock_guard lock(mu_);
  return fetches_;
}

Result<std::string> CachedContentSource::get(int64_t integration_id, int64_t recording_id, ContentKind kind,
                                             bool* fetched) {
  if (fetched) *fetched = false;
  if (!(content_part(kind) & kFetchableParts)) {
    return Status::InvalidArgument(std::string("no API endpoint serves ") + content_kind_name(kind) +
                                   "; it arrives only with list calls or webhooks");
  }
  const auto key = std::make_tuple(integration_id, recording_id, static_cast<int>(kind));
  {
    // Single flight: a second caller for the same recording waits for the first one's call and
    // then reads the cache, so two workers never pay twice for one transcript.
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return inflight_.count(key) == 0; });
    inflight_.insert(key);
  }
  struct Release {
    CachedContentSource* self;
    std::tuple<int64_t, int64_t, int> key;
    ~Release() {
      {
        std::lock_guard lock(self->mu_);
        self->inflight_.erase(key);
      }
      self->cv_.notify_all();
    }
  } release{this, key};

  FB_ASSIGN(std::optional<std::string> cached, store_.cached_content(integration_id, recording_id, kind));
  if (cached) return std::move(*cached);
  std::string raw;
  Status got = kind == ContentKind::kTranscript ? client_.get_transcript(integration_id, recording_id, &raw).status()
                                                : client_.get_summary(integration_id, recording_id, &raw).status();
  if (!got.ok()) {
    // The mapping goes on without it; a copy that brings it later is mapped again (meeting_store.h).
    Status noted = store_.note_missed(integration_id, recording_id, kind);
    if (!noted.ok()) {
      FB_LOG(kWarn, "sync") << "cannot record that the " << content_kind_name(kind) << " of meeting "
                            << recording_id << " could not be fetched: " << noted;
    }
    return got;
  }
  FB_TRY(store_.put_content(integration_id, recording_id, kind, raw, "api"));
  {
    std::lock_guard lock(mu_);
    ++fetches_;
  }
  if (fetched) *fetched = true;
  return raw;
}

}  // namespace fb::detail
