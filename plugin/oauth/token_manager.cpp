#include "oauth/token_manager.h"

#include <unistd.h>

#include <algorithm>

#include "core/log.h"
#include "core/renewer.h"

namespace fb::detail {
namespace {

std::string id_str(int64_t id) { return std::to_string(id); }

// The renewal of a refresh lease while its request is out (a Renewer's, every third of the lease).
// The lease is what keeps every other process and host from sending the same single-use refresh
// token (fathom-api.md 1.3); a token endpoint slower than the lease (a slow proxy, an answer
// trickled in: the transport's timeouts are per read) let another process take it over as expired
// and send the token again, which a rotating server answers with invalid_grant (that process then
// marked a healthy grant "reconnect required" and the slow answer's new pair was thrown away) or by
// revoking the grant. So while the holder lives, the others wait for its answer (a caller gives up
// after two leases and 5 s with kUnavailable) rather than spend the token a second time.
std::function<bool()> refresh_lease_renewal(IntegrationStore& store, Clock& clock, int64_t id,
                                            const std::string& owner, int64_t lease_ms) {
  return [&store, &clock, id, owner, lease_ms] {
    // Bounded (kUnavailable, tried again at the next beat): the holder's answer, and storing its new
    // pair, wait for a renewal under way.
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(std::min<int64_t>(lease_ms / 3, 2000));
    Result<bool> held = store.renew_lease(id, owner, clock.now_ms() + lease_ms, deadline);
    if (!held.ok()) {
      FB_LOG(kWarn, "oauth") << "integration " << id << ": renewing the refresh lease during the request: "
                             << held.status();
      return true;
    }
    if (!*held) {
      FB_LOG(kWarn, "oauth") << "integration " << id << ": the refresh lease was lost during the request";
    }
    return *held;
  };
}

}  // namespace

TokenManagerOptions TokenManagerOptions::from_config(const Config& c) {
  TokenManagerOptions o;
  o.refresh_buffer_s = c.tokens.refresh_buffer_s;
  o.failure_cooldown_s = c.tokens.failure_cooldown_s;
  o.keepalive_window_s = c.tokens.keepalive_window_s;
  o.lease_ttl_s = c.tokens.refresh_lock_ttl_s;
  return o;
}

TokenManager::TokenManager(IntegrationStore& store, TokenEndpoint& endpoint, EventBus* events,
                           TokenManagerOptions options, Clock& clock, Random& random)
    : store_(store),
      endpoint_(endpoint),
      events_(events),
      options_(options),
      clock_(clock),
      owner_(std::to_string(::getpid()) + "-" + random.token(9)) {}

TokenManagerStats TokenManager::stats() const {
  return {refreshes_.load(), refresh_failures_.load(), lease_waits_.load(), joined_flights_.load()};
}

Status TokenManager::emit(const std::string& type, const IntegrationRecord& row, const std::string& detail) const {
  if (!events_) return Status::Ok();
  Event e;
  e.type = type;
  e.tenant_id = row.tenant_id;
  e.user_id = row.user_id;
  e.integration_id = row.id;
  e.detail = detail;
  e.data_json = "{}";
  return events_->emit(e);
}

Result<bool> TokenManager::mark_reconnect_required(const IntegrationRecord& row, const std::string& reason) {
  bool marked = false;
  FB_TRY(store_.transaction([&]() -> Status {
    FB_ASSIGN(marked, store_.mark_reconnect_required(row.id, row.token_version, reason));
    return marked ? emit("reconnect_required", row, reason) : Status::Ok();
  }));
  return marked;
}

Status TokenManager::usable(const IntegrationRecord& row) const {
  if (row.status == "reconnect_required") {
    return Status::ReconnectRequired("integration " + id_str(row.id) + " needs the user to connect Fathom again" +
                                     (row.last_refresh_error.empty() ? "" : ": " + row.last_refresh_error));
  }
  if (row.status == "disconnected") return Status::FailedPrecondition("integration " + id_str(row.id) + " is disconnected");
  if (!row.active) return Status::FailedPrecondition("integration " + id_str(row.id) + " is deactivated");
  return Status::Ok();
}

Result<Credential> TokenManager::credential_of(const IntegrationRecord& row) const {
  FB_ASSIGN(IntegrationSecrets secrets, store_.open_secrets(row));
  Credential c;
  c.token_version = row.token_version;
  if (row.kind == "api_key") {
    if (secrets.api_key.empty()) return Status::FailedPrecondition("integration " + id_str(row.id) + " has no API key");
    c.kind = Credential::Kind::kApiKey;
    c.value = std::move(secrets.api_key);
  } else {
    if (secrets.access_token.empty()) {
      return Status::FailedPrecondition("integration " + id_str(row.id) + " has no access token");
    }
    c.kind = Credential::Kind::kBearer;
    c.value = std::move(secrets.access_token);
  }
  return c;
}

Result<Credential> TokenManager::fallback(const IntegrationRecord& row, Status failure, bool force) const {
  // A refresh that could not happen is no reason to drop a token that still works; but after a
  // refresh that got no answer the server may have rotated the grant (and revoked this token).
  if (!force && !row.refresh_in_doubt && row.has_access_token && row.token_expires_at > clock_.now_s()) {
    FB_LOG(kWarn, "oauth") << "integration " << row.id << ": using the current token (expires in "
                           << row.token_expires_at - clock_.now_s() << " s) because refreshing failed: "
                           << failure.message();
    return credential_of(row);
  }
  return failure;
}

Result<Credential> TokenManager::credential(int64_t integration_id) {
  FB_ASSIGN(IntegrationRecord row, store_.load(integration_id));
  FB_TRY(usable(row));
  if (row.kind == "api_key") return credential_of(row);
  if (!row.refresh_in_doubt && row.token_expires_at - clock_.now_s() > refresh_buffer_for(row, options_.refresh_buffer_s)) {
    return credential_of(row);
  }
  return single_flight(integration_id, row.token_version, /*force=*/false);
}

Result<Credential> TokenManager::credential(const Principal& principal, int64_t integration_id) {
  FB_TRY(store_.get(principal, integration_id).status());
  return credential(integration_id);
}

Result<Credential> TokenManager::force_refresh(int64_t integration_id) {
  FB_ASSIGN(IntegrationRecord row, store_.load(integration_id));
  FB_TRY(usable(row));
  if (row.kind == "api_key") return credential_of(row);
  return single_flight(integration_id, row.token_version, /*force=*/true);
}

Result<Credential> TokenManager::refresh_after_unauthorized(int64_t integration_id, const Credential& rejected) {
  FB_ASSIGN(IntegrationRecord row, store_.load(integration_id));
  FB_TRY(usable(row));
  if (row.kind == "api_key") {
    return Status::Unauthenticated("Fathom rejected the API key of integration " + id_str(integration_id));
  }
  if (row.token_version != rejected.token_version) return credential_of(row);
  // A flight that started from an older version may hand back the very token that was rejected;
  // then one more flight, now forced from the rejected version, is needed.
  for (int round = 0; round < 2; ++round) {
    auto r = single_flight(integration_id, rejected.token_version, /*force=*/true);
    if (!r.ok() || r->token_version != rejected.token_version) return r;
  }
  return Status::Unauthenticated("the access token of integration " + id_str(integration_id) +
                                 " was rejected and could not be replaced");
}

Result<Credential> TokenManager::single_flight(int64_t id, int64_t seen_version, bool force) {
  std::shared_ptr<Flight> flight;
  bool leader = false;
  {
    std::lock_guard lock(mu_);
    auto& slot = flights_[id];
    if (!slot) {
      slot = std::make_shared<Flight>();
      leader = true;
    }
    flight = slot;
  }
  if (!leader) {
    ++joined_flights_;
    std::unique_lock lock(flight->mu);
    flight->cv.wait(lock, [&] { return flight->done; });
    return *flight->result;
  }
  Result<Credential> result = Status::Internal("refresh did not run");
  try {
    result = refresh_shared(id, seen_version, force);
  } catch (const std::exception& e) {
    result = Status::Internal(std::string("refresh failed with an exception: ") + e.what());
  }
  {
    // Leave the map first: a caller arriving now starts a new flight, which re-reads the row and
    // finds the token this one committed.
    std::lock_guard lock(mu_);
    flights_.erase(id);
  }
  {
    std::lock_guard lock(flight->mu);
    flight->result = result;
    flight->done = true;
  }
  flight->cv.notify_all();
  return result;
}

Result<Credential> TokenManager::refresh_shared(int64_t id, int64_t seen_version, bool force) {
  const int64_t lease_ms = int64_t{options_.lease_ttl_s} * 1000;
  const int64_t wait_deadline = clock_.mono_ms() + 2 * lease_ms + 5000;
  for (;;) {
    enum class Next { kUseRow, kUnusable, kFail, kWait, kRefresh } next = Next::kFail;
    IntegrationRecord row;
    Status failure;
    // Decide under the database write lock, so two processes cannot both take the lease.
    Status decided = store_.transaction([&]() -> Status {
      FB_ASSIGN(row, store_.load(id));
      const int64_t now_s = clock_.now_s();
      const int64_t now_ms = clock_.now_ms();
      if (Status u = usable(row); !u.ok()) {
        failure = u;
        next = Next::kUnusable;
      } else if (row.kind == "api_key") {
        next = Next::kUseRow;
      } else if (row.token_version != seen_version && row.token_expires_at > now_s) {
        next = Next::kUseRow;  // someone else refreshed since the caller looked
      } else if (!force && !row.refresh_in_doubt &&
                 row.token_expires_at - now_s > refresh_buffer_for(row, options_.refresh_buffer_s)) {
        next = Next::kUseRow;
      } else if (row.cooldown_until > now_s) {
        failure = Status::Unavailable("token refresh of integration " + id_str(id) + " is cooling down until " +
                                      format_iso8601(row.cooldown_until) + " after: " + row.last_refresh_error +
                                      (row.refresh_in_doubt ? " (the refresh token may have been spent, so the "
                                                              "current access token is not used)"
                                                            : ""));
        next = Next::kFail;
      } else if (!row.has_refresh_token) {
        failure = Status::ReconnectRequired("integration " + id_str(id) + " has no refresh token");
        next = Next::kFail;
      } else if (!row.refresh_lease_owner.empty() && row.refresh_lease_owner != owner_ &&
                 row.refresh_lease_until_ms > now_ms) {
        next = Next::kWait;
      } else {
        FB_TRY(store_.take_lease(id, owner_, now_ms + lease_ms));
        next = Next::kRefresh;
      }
      return Status::Ok();
    });
    FB_TRY(decided);

    switch (next) {
      case Next::kUseRow:
        return credential_of(row);
      case Next::kUnusable:
        return failure;
      case Next::kFail:
        if (failure.code() == Code::kReconnectRequired && row.status == "active" &&
            row.token_expires_at <= clock_.now_s()) {
          FB_TRY(mark_reconnect_required(row, failure.message()).status());
          return failure;
        }
        return fallback(row, failure, force);
      case Next::kWait:
        if (clock_.mono_ms() > wait_deadline) {
          return Status::Unavailable("integration " + id_str(id) + " is being refreshed by another process (lease " +
                                     row.refresh_lease_owner + "); gave up waiting");
        }
        ++lease_waits_;
        FB_LOG(kDebug, "oauth") << "integration " << id << ": waiting for the refresh lease of "
                                << row.refresh_lease_owner;
        clock_.sleep_ms(options_.lease_poll_ms);
        continue;
      case Next::kRefresh:
        break;
    }

    // We hold the lease: spend the refresh token, outside every lock.
    auto secrets = store_.open_secrets(row);
    if (!secrets.ok()) {
      (void)store_.release_lease(id, owner_);
      return secrets.status();
    }
    TokenCallStats stats;
    auto grant = [&] {
      // Renewed for as long as the request is out.
      Renewer keeper(std::chrono::milliseconds(std::max<int64_t>(lease_ms / 3, 10)),
                     refresh_lease_renewal(store_, clock_, id, owner_, lease_ms));
      return endpoint_.refresh(secrets->refresh_token, &stats, [&](int attempt) -> Status {
        if (attempt == 1) return Status::Ok();
        // A long backoff must not outlive the lease unnoticed: renew it, or stop before spending.
        FB_ASSIGN(bool held, store_.renew_lease(id, owner_, clock_.now_ms() + lease_ms));
        return held ? Status::Ok() : Status::Cancelled("refresh lease lost");
      });
    }();
    if (grant.code() == Code::kCancelled) {
      FB_LOG(kDebug, "oauth") << "integration " << id << ": lease lost during backoff; re-reading";
      continue;
    }
    if (grant.code() == Code::kConfig) {  // nothing was sent: not a failure of the connection
      (void)store_.release_lease(id, owner_);
      return grant.status();
    }
    if (grant.ok() && grant->rotation_unknown) {
      // A 2xx answer that could not be read: the server has probably rotated the refresh token and
      // its new one is lost. As after a lost answer, the refresh is in doubt (the host is told) and
      // the token is sent again only after the cool-down.
      stats.outcome_unknown = true;
      grant = Status::Malformed(grant->unusable);
    }
    if (grant.ok()) {
      // RFC 6749 section 6: a server that does not rotate sends no new refresh token, and the
      // client keeps using the one it has.
      if (grant->refresh_token.empty()) grant.value().refresh_token = secrets->refresh_token;
      if (!grant->unusable.empty() || !is_bearer_token_type(grant->token_type)) {
        // RFC 6749 7.1: the new access token is of a type we do not understand (or missing, or
        // not sendable) and is never used. The server has rotated the refresh token all the same:
        // refusing the answer outright would leave only the spent one and lose the grant. So the
        // new refresh token is stored beside the current access token, and the failure is recorded
        // and cools down.
        const std::string error =
            (grant->unusable.empty() ? "Fathom answered the refresh with an access token of type '" +
                                           grant->token_type + "', which is not used (only Bearer tokens are)"
                                     : "Fathom answered the refresh without a usable access token (" +
                                           grant->unusable + ")") +
            "; the refresh token it answered (or, without one, the current one) is kept";
        TokenGrant keep;
        keep.access_token = std::move(secrets->access_token);
        keep.refresh_token = std::move(grant.value().refresh_token);
        keep.expires_at = row.token_expires_at;
        const int64_t until = clock_.now_s() + options_.failure_cooldown_s * (int64_t{1} << std::min<int64_t>(row.refresh_failures, 2));
        IntegrationRecord seen = row;
        seen.refresh_failures = 0;  // no "connection_recovered" audit: this refresh failed
        Result<bool> swapped = Status::Internal("not committed");
        Status stored = store_.transaction([&]() -> Status {
          swapped = store_.commit_refresh(seen, keep);
          FB_TRY(swapped.status());
          return *swapped ? store_.record_refresh_failure(id, owner_, error, until) : Status::Ok();
        });
        FB_TRY(stored);
        ++refresh_failures_;
        FB_LOG(kWarn, "oauth") << "integration " << id << ": " << error << "; cooling down until "
                               << format_iso8601(until);
        FB_ASSIGN(IntegrationRecord now_row, store_.load(id));
        FB_TRY(usable(now_row));
        if (!*swapped) return credential_of(now_row);  // another writer replaced the pair first
        return fallback(now_row, Status::Malformed("integration " + id_str(id) + ": " + error), force);
      }
      Result<bool> swapped = Status::Internal("not committed");
      // The pair must be stored before anyone uses it; a busy database gets a few more tries.
      for (int i = 0; i < 3; ++i) {
        // A recovery is told in the transaction that stores the new pair (issue 13).
        Status stored = store_.transaction([&]() -> Status {
          swapped = store_.commit_refresh(row, grant.value());
          FB_TRY(swapped.status());
          if (!*swapped || row.refresh_failures == 0) return Status::Ok();
          return emit("connection_recovered", row,
                      "token refresh works again after " + std::to_string(row.refresh_failures) + " failure(s)");
        });
        if (swapped.ok() && !stored.ok()) swapped = stored;
        if (swapped.ok()) break;
        FB_LOG(kWarn, "oauth") << "integration " << id << ": storing refreshed tokens failed: " << swapped.status();
        clock_.sleep_ms(100);
      }
      FB_TRY(swapped.status());
      if (!*swapped) {
        FB_ASSIGN(IntegrationRecord now_row, store_.load(id));
        FB_LOG(kWarn, "oauth") << "integration " << id << ": another writer replaced token version "
                               << row.token_version << " first; using version " << now_row.token_version;
        FB_TRY(usable(now_row));
        return credential_of(now_row);
      }
      ++refreshes_;
      FB_LOG(kDebug, "oauth") << "integration " << id << ": refreshed (version " << row.token_version << " -> "
                              << row.token_version + 1 << ", expires in " << grant->expires_at - clock_.now_s()
                              << " s, " << stats.attempts << " request(s))";
      Credential c;
      c.kind = Credential::Kind::kBearer;
      c.value = std::move(grant.value().access_token);
      c.token_version = row.token_version + 1;
      return c;
    }

    ++refresh_failures_;
    if (grant.code() == Code::kInvalidGrant) {
      // Lost race or dead grant? Only a row that did not move means the grant is dead. If our
      // lease expired and another refresher took it, that refresher spent the token: wait for
      // its commit instead of declaring the grant dead.
      FB_ASSIGN(IntegrationRecord now_row, store_.load(id));
      while (now_row.token_version == row.token_version && !now_row.refresh_lease_owner.empty() &&
             now_row.refresh_lease_owner != owner_ && now_row.refresh_lease_until_ms > clock_.now_ms() &&
             clock_.mono_ms() < wait_deadline) {
        ++lease_waits_;
        clock_.sleep_ms(options_.lease_poll_ms);
        FB_ASSIGN(now_row, store_.load(id));
      }
      if (now_row.token_version != row.token_version) {
        FB_LOG(kDebug, "oauth") << "integration " << id << ": invalid_grant after another refresher won; using "
                                << "version " << now_row.token_version;
        FB_TRY(usable(now_row));
        return credential_of(now_row);
      }
      // After a send that got no answer (in this call, or an earlier one), invalid_grant means the
      // lost answer had rotated the token: the new pair is gone, and a server with replay
      // detection has revoked the whole grant on seeing the old token again.
      const bool after_unknown = stats.outcome_unknown || row.refresh_in_doubt;
      const std::string reason =
          "Fathom refused the refresh token (" + grant.status().message() + ")" +
          (after_unknown ? " after a refresh request got no answer in time (or one that could not be read): that "
                           "request had rotated the token, its answer was lost, and the grant is gone"
                         : "") +
          "; the user must connect Fathom again";
      FB_ASSIGN(bool marked, mark_reconnect_required(row, reason));
      if (marked) FB_LOG(kWarn, "oauth") << "integration " << id << " needs reconnecting: invalid_grant";
      return Status::ReconnectRequired("integration " + id_str(id) + " needs the user to connect Fathom again: " +
                                       grant.status().message());
    }
    // The cool-down doubles with each consecutive failure, up to 4x: a connection that stays
    // broken costs at most refresh_max_attempts requests per 4 * failure_cooldown_s.
    const int64_t factor = int64_t{1} << std::min<int64_t>(row.refresh_failures, 2);
    const int64_t until = clock_.now_s() + options_.failure_cooldown_s * factor;
    const bool in_doubt = stats.outcome_unknown || row.refresh_in_doubt;
    std::string error = grant.status().message();
    if (in_doubt) {
      error = "refresh outcome unknown: " + error +
              "; the refresh token may have been spent, so the current access token is not used and the token is "
              "sent again only after the cool-down (a refusal then means the user must reconnect)";
    }
    // The first doubt is told in the transaction that records it (issue 13).
    Status rec = store_.transaction([&]() -> Status {
      FB_TRY(store_.record_refresh_failure(id, owner_, error, until, in_doubt));
      return in_doubt && !row.refresh_in_doubt ? emit("refresh_outcome_unknown", row, error) : Status::Ok();
    });
    if (!rec.ok()) {
      FB_LOG(kError, "oauth") << "integration " << id << ": recording a refresh failure failed: " << rec;
    }
    FB_LOG(kWarn, "oauth") << "integration " << id << ": refresh failed after " << stats.attempts
                           << " request(s), cooling down until " << format_iso8601(until) << ": " << error;
    if (in_doubt) {
      return Status(grant.code() == Code::kTimeout ? Code::kUnavailable : grant.code(),
                    "integration " + id_str(id) + ": " + error);
    }
    return fallback(row, grant.status(), force);
  }
}

KeepaliveReport TokenManager::sweep_keepalive() {
  KeepaliveReport report;
  auto rows = store_.list("", "");
  if (!rows.ok()) {
    report.failed = 1;
    report.failures.emplace_back(0, rows.status());
    return report;
  }
  const int64_t now = clock_.now_s();
  for (const auto& row : *rows) {
    if (row.kind != "oauth" || row.status != "active" || !row.active || !row.has_refresh_token) continue;
    if (row.cooldown_until > now) continue;
    if (row.last_refresh_at > now - options_.keepalive_window_s) continue;
    ++report.due;
    auto r = single_flight(row.id, row.token_version, /*force=*/true);
    if (r.ok() && r->token_version != row.token_version) {
      ++report.refreshed;
    } else {
      ++report.failed;
      report.failures.emplace_back(row.id, r.ok() ? Status::Unavailable("token was not replaced") : r.status());
    }
  }
  FB_LOG(kDebug, "oauth") << "keep-alive sweep: " << report.due << " due, " << report.refreshed << " refreshed, "
                          << report.failed << " failed";
  return report;
}

}  // namespace fb::detail
