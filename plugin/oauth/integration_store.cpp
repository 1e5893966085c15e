#include "oauth/integration_store.h"

#include <algorithm>

#include "core/log.h"
#include "oauth/schema.h"

namespace fb::detail {
namespace {

constexpr const char* kColumns =
    "id, tenant_id, user_id, team_id, kind, fathom_email, fathom_name, status, is_active, "
    "token_version, token_expires_at, last_refresh_at, last_refresh_error, refresh_failures, cooldown_until, "
    "refresh_lease_owner, refresh_lease_until, last_sync_at, connected_at, created_at, updated_at, "
    "access_token, refresh_token, api_key, refresh_in_doubt";

IntegrationRecord read_record(const Stmt& q) {
  IntegrationRecord r;
  int c = 0;
  r.id = q.int64(c++);
  r.tenant_id = q.text(c++);
  r.user_id = q.text(c++);
  r.team_id = q.text(c++);
  r.kind = q.text(c++);
  r.fathom_email = q.text(c++);
  r.fathom_name = q.text(c++);
  r.status = q.text(c++);
  r.active = q.int64(c++) != 0;
  r.token_version = q.int64(c++);
  r.token_expires_at = q.int64(c++);
  r.last_refresh_at = q.int64(c++);
  r.last_refresh_error = q.text(c++);
  r.refresh_failures = q.int64(c++);
  r.cooldown_until = q.int64(c++);
  r.refresh_lease_owner = q.text(c++);
  r.refresh_lease_until_ms = q.int64(c++);
  r.last_sync_at = q.int64(c++);
  r.connected_at = q.int64(c++);
  r.created_at = q.int64(c++);
  r.updated_at = q.int64(c++);
  r.sealed.access_token = q.is_null(c) ? "" : q.blob(c);
  ++c;
  r.sealed.refresh_token = q.is_null(c) ? "" : q.blob(c);
  ++c;
  r.sealed.api_key = q.is_null(c) ? "" : q.blob(c);
  ++c;
  r.refresh_in_doubt = q.int64(c) != 0;
  r.has_access_token = !r.sealed.access_token.empty();
  r.has_refresh_token = !r.sealed.refresh_token.empty();
  r.has_api_key = !r.sealed.api_key.empty();
  return r;
}

IntegrationInfo to_info(const IntegrationRecord& r) {
  IntegrationInfo i;
  i.id = r.id;
  i.tenant_id = r.tenant_id;
  i.user_id = r.user_id;
  i.team_id = r.team_id;
  i.kind = r.kind;
  i.status = r.status;
  i.active = r.active;
  i.last_sync_at = r.last_sync_at;
  return i;
}

Status not_found(int64_t id) { return Status::NotFound("integration " + std::to_string(id) + " not found"); }

std::string key_id_list(const IntegrationRecord& r) {
  std::string out;
  for (const std::string* b : {&r.sealed.access_token, &r.sealed.refresh_token, &r.sealed.api_key}) {
    if (!b->empty()) out += Sealer::key_id_of(*b) + ",";
  }
  return out;
}

}  // namespace

std::string sealing_aad(int64_t integration_id, const std::string& tenant_id, const std::string& user_id,
                        std::string_view field, int64_t token_version) {
  std::string aad = "fathom-bridge/integration";
  // A named string, not a temporary inside the braced list: before C++23 a temporary in a
  // range-for initializer dies before the loop body runs, leaving a dangling string_view.
  const std::string id = std::to_string(integration_id);
  for (std::string_view part : {std::string_view(id), std::string_view(tenant_id), std::string_view(user_id), field}) {
    aad.push_back('\0');
    aad.append(part);
  }
  aad.push_back('\0');
  aad += std::to_string(token_version);
  return aad;
}

int64_t refresh_buffer_for(const IntegrationRecord& row, int64_t buffer_s) {
  if (row.kind != "oauth") return 0;
  const int64_t lifetime = row.token_expires_at - row.last_refresh_at;
  if (row.last_refresh_at <= 0 || lifetime <= 0) return buffer_s;
  return std::min(buffer_s, lifetime / 2);
}

Result<std::unique_ptr<Sealer>> make_sealer(const TokenConfig& config, Random& random) {
  auto sealer = std::make_unique<Sealer>(random);
  std::string id;
  SecretString key;
  if (config.key.empty()) {
    return Status::Config("setting 'tokens.key' (FATHOM_BRIDGE_TOKEN_KEY) is missing: 32 random bytes, base64");
  }
  FB_TRY(parse_key_spec(config.key, &id, &key).with_context("setting 'tokens.key'"));
  FB_TRY(sealer->add_key(id, key).with_context("setting 'tokens.key'"));
  const std::string active = id;
  for (const auto& spec : config.old_keys) {
    FB_TRY(parse_key_spec(spec, &id, &key).with_context("setting 'tokens.old_keys'"));
    if (id == active) return Status::Config("setting 'tokens.old_keys' repeats the active key id '" + id + "'");
    FB_TRY(sealer->add_key(id, key).with_context("setting 'tokens.old_keys'"));
  }
  FB_TRY(sealer->set_active(active));
  return sealer;
}

IntegrationStore::IntegrationStore(Db& db, const Sealer& sealer, Clock& clock)
    : db_(db), sealer_(sealer), clock_(clock) {}

Status IntegrationStore::migrate() { return migrate_oauth_schema(db_); }

Status IntegrationStore::transaction(const std::function<Status()>& fn) { return db_.transaction(fn); }

Result<IntegrationRecord> IntegrationStore::load_where(const std::string& where,
                                                       const std::function<void(Stmt&)>& bind) {
  std::optional<IntegrationRecord> found;
  Status s = db_.with([&]() -> Status {
    Stmt& q = db_.prepare(std::string("SELECT ") + kColumns + " FROM integrations WHERE " + where);
    bind(q);
    return each_row(q, [&](const Stmt& row) { found = read_record(row); });
  });
  FB_TRY(s);
  if (!found) return Status::NotFound("integration not found");
  return std::move(*found);
}

Result<IntegrationRecord> IntegrationStore::load(int64_t integration_id) {
  auto r = load_where("id=?", [&](Stmt& q) { q.bind(1, integration_id); });
  if (r.code() == Code::kNotFound) return not_found(integration_id);
  return r;
}

Result<IntegrationRecord> IntegrationStore::get(const Principal& principal, int64_t integration_id) {
  FB_TRY(validate_principal(principal));
  auto r = load_where("id=? AND tenant_id=? AND user_id=?", [&](Stmt& q) {
    q.bind_all(integration_id, principal.tenant_id, principal.user_id);
  });
  if (r.code() == Code::kNotFound) {
    FB_LOG(kDebug, "oauth") << "scoped lookup of integration " << integration_id << " refused or missing";
    return not_found(integration_id);
  }
  return r;
}

Result<IntegrationRecord> IntegrationStore::find(const Principal& principal) {
  FB_TRY(validate_principal(principal));
  auto r = load_where("tenant_id=? AND user_id=?",
                      [&](Stmt& q) { q.bind_all(principal.tenant_id, principal.user_id); });
  if (r.code() == Code::kNotFound) return Status::NotFound("no Fathom integration for this user");
  return r;
}

Result<std::vector<IntegrationRecord>> IntegrationStore::list(const std::string& tenant_id,
                                                              const std::string& user_id) {
  std::vector<IntegrationRecord> out;
  Status s = db_.with([&]() -> Status {
    Stmt& q = db_.prepare(std::string("SELECT ") + kColumns +
                          " FROM integrations WHERE (?1 = '' OR tenant_id = ?1) AND (?2 = '' OR user_id = ?2)"
                          " ORDER BY id");
    q.bind_all(tenant_id, user_id);
    return each_row(q, [&](const Stmt& row) { out.push_back(read_record(row)); });
  });
  FB_TRY(s);
  return out;
}

Result<std::string> IntegrationStore::seal(const IntegrationRecord& row, std::string_view field, int64_t version,
                                           const SecretString& value) const {
  return sealer_.seal(value, sealing_aad(row.id, row.tenant_id, row.user_id, field, version));
}

Result<IntegrationSecrets> IntegrationStore::open_secrets(const IntegrationRecord& r) const {
  IntegrationSecrets out;
  struct Field {
    const std::string* blob;
    const char* name;
    SecretString* dest;
  };
  for (const Field& f : {Field{&r.sealed.access_token, "access_token", &out.access_token},
                         Field{&r.sealed.refresh_token, "refresh_token", &out.refresh_token},
                         Field{&r.sealed.api_key, "api_key", &out.api_key}}) {
    if (f.blob->empty()) continue;
    auto opened = sealer_.open(*f.blob, sealing_aad(r.id, r.tenant_id, r.user_id, f.name, r.token_version));
    if (!opened.ok()) {
      return opened.status().with_context("cannot open the sealed " + std::string(f.name) + " of integration " +
                                          std::to_string(r.id));
    }
    *f.dest = std::move(opened).value();
  }
  return out;
}

Status IntegrationStore::audit_locked(int64_t integration_id, const std::string& tenant_id,
                                      const std::string& user_id, const std::string& event,
                                      const std::string& detail) {
  Stmt& q = db_.prepare(
      "INSERT INTO audit_log(integration_id, tenant_id, user_id, event, detail, at) VALUES(?,?,?,?,?,?)");
  q.bind(1, integration_id == 0 ? std::optional<int64_t>() : std::optional<int64_t>(integration_id));
  q.bind(2, tenant_id).bind(3, user_id).bind(4, event).bind(5, detail).bind(6, clock_.now_s());
  return q.run();
}

Status IntegrationStore::append_audit(int64_t integration_id, const std::string& tenant_id,
                                      const std::string& user_id, const std::string& event,
                                      const std::string& detail) {
  return db_.with([&] { return audit_locked(integration_id, tenant_id, user_id, event, detail); });
}

Result<ConnectOutcome> IntegrationStore::save(const Principal& p, const std::string& kind, const TokenGrant* grant,
                                              const SecretString* api_key) {
  FB_TRY(validate_principal(p));
  ConnectOutcome out;
  const int64_t now = clock_.now_s();
  Status s = db_.transaction([&]() -> Status {
    IntegrationRecord row;
    {
      Stmt& q = db_.prepare(std::string("SELECT ") + kColumns + " FROM integrations WHERE tenant_id=? AND user_id=?");
      q.bind_all(p.tenant_id, p.user_id);
      bool found = false;
      FB_TRY(each_row(q, [&](const Stmt& r) {
        row = read_record(r);
        found = true;
      }));
      if (!found) {
        Stmt& ins = db_.prepare(
            "INSERT INTO integrations(tenant_id, user_id, team_id, kind, status, is_active, token_version, "
            "connected_at, created_at, updated_at) VALUES(?,?,?,?,'active',1,0,?,?,?)");
        ins.bind_all(p.tenant_id, p.user_id, p.team_id, kind, now, now, now);
        FB_TRY(ins.run());
        row.id = db_.last_insert_rowid();
        row.tenant_id = p.tenant_id;
        row.user_id = p.user_id;
        out.created = true;
      } else {
        out.previous_status = row.status;
        out.previous_failures = row.refresh_failures;
      }
    }
    out.integration_id = row.id;
    const int64_t version = row.token_version + 1;
    std::optional<std::string> access, refresh, key;
    if (grant) {
      FB_ASSIGN(access, seal(row, "access_token", version, grant->access_token));
      if (!grant->refresh_token.empty()) {
        FB_ASSIGN(refresh, seal(row, "refresh_token", version, grant->refresh_token));
      }
    }
    if (api_key) {
      FB_ASSIGN(key, seal(row, "api_key", version, *api_key));
    }
    Stmt& up = db_.prepare(
        "UPDATE integrations SET kind=?, team_id=?, status='active', is_active=1, access_token=?, refresh_token=?, "
        "api_key=?, token_version=?, token_expires_at=?, last_refresh_at=?, last_refresh_error=NULL, "
        "refresh_failures=0, cooldown_until=NULL, refresh_lease_owner=NULL, refresh_lease_until=NULL, "
        "refresh_in_doubt=0, connected_at=?, updated_at=? WHERE id=?");
    up.bind(1, kind).bind(2, p.team_id);
    if (access) up.bind_blob(3, *access); else up.bind(3, nullptr);
    if (refresh) up.bind_blob(4, *refresh); else up.bind(4, nullptr);
    if (key) up.bind_blob(5, *key); else up.bind(5, nullptr);
    up.bind(6, version);
    if (grant) up.bind(7, grant->expires_at); else up.bind(7, nullptr);
    up.bind(8, now).bind(9, now).bind(10, now).bind(11, row.id);
    FB_TRY(up.run());
    std::string detail = kind == "oauth" ? "OAuth connection stored" : "API key connection stored";
    if (!out.created) detail += " (previous status " + out.previous_status + ")";
    return audit_locked(row.id, p.tenant_id, p.user_id, out.created ? "connected" : "reconnected", detail);
  });
  FB_TRY(s);
  FB_LOG(kDebug, "oauth") << (out.created ? "created" : "reconnected") << " " << kind << " integration "
                          << out.integration_id;
  return out;
}

Result<ConnectOutcome> IntegrationStore::save_oauth(const Principal& principal, const TokenGrant& grant) {
  if (grant.access_token.empty()) return Status::InvalidArgument("token grant has no access token");
  return save(principal, "oauth", &grant, nullptr);
}

Result<ConnectOutcome> IntegrationStore::save_api_key(const Principal& principal, const SecretString& api_key) {
  if (api_key.empty()) return Status::InvalidArgument("api_key is empty");
  return save(principal, "api_key", nullptr, &api_key);
}

Status IntegrationStore::set_identity(const Principal& principal, int64_t integration_id,
                                      const FathomIdentity& identity) {
  FB_ASSIGN(IntegrationRecord row, get(principal, integration_id));
  return db_.transaction([&]() -> Status {
    Stmt& q = db_.prepare("UPDATE integrations SET fathom_email=?, fathom_name=?, updated_at=? WHERE id=?");
    q.bind(1, identity.email.empty() ? std::optional<std::string>() : identity.email);
    q.bind(2, identity.name.empty() ? std::optional<std::string>() : identity.name);
    q.bind(3, clock_.now_s()).bind(4, row.id);
    FB_TRY(q.run());
    return audit_locked(row.id, row.tenant_id, row.user_id, "identity_updated",
                        "Fathom account " + (identity.email.empty() ? std::string("unknown") : identity.email));
  });
}

Result<IntegrationRecord> IntegrationStore::disconnect(const Principal& principal, int64_t integration_id) {
  FB_ASSIGN(IntegrationRecord before, get(principal, integration_id));
  Status s = db_.transaction([&]() -> Status {
    // token_version moves too, so a refresh that was in flight loses its compare-and-swap.
    Stmt& q = db_.prepare(
        "UPDATE integrations SET access_token=NULL, refresh_token=NULL, api_key=NULL, status='disconnected', "
        "is_active=0, token_version=token_version+1, token_expires_at=NULL, refresh_lease_owner=NULL, "
        "refresh_lease_until=NULL, cooldown_until=NULL, updated_at=? WHERE id=? AND tenant_id=? AND user_id=?");
    q.bind_all(clock_.now_s(), before.id, before.tenant_id, before.user_id);
    FB_TRY(q.run());
    return audit_locked(before.id, before.tenant_id, before.user_id, "disconnected",
                        "disconnected by the user; stored credentials deleted");
  });
  FB_TRY(s);
  FB_LOG(kInfo, "oauth") << "disconnected integration " << before.id;
  return before;
}

Result<std::vector<AuditEntry>> IntegrationStore::audit_log(const Principal& principal, int64_t integration_id,
                                                           int limit) {
  FB_ASSIGN(IntegrationRecord row, get(principal, integration_id));
  return audit_entries(row.id, limit);
}

Result<std::vector<AuditEntry>> IntegrationStore::audit_entries(int64_t integration_id, int limit) {
  std::vector<AuditEntry> out;
  Status s = db_.with([&]() -> Status {
    Stmt& q = db_.prepare(
        "SELECT id, integration_id, tenant_id, user_id, event, detail, at FROM audit_log "
        "WHERE (?1 = 0 OR integration_id = ?1) ORDER BY id DESC LIMIT ?2");
    q.bind(1, integration_id).bind(2, limit <= 0 ? 100 : limit);
    return each_row(q, [&](const Stmt& r) {
      out.push_back({r.int64(0), r.is_null(1) ? 0 : r.int64(1), r.text(2), r.text(3), r.text(4), r.text(5),
                     r.int64(6)});
    });
  });
  FB_TRY(s);
  return out;
}

Result<int> IntegrationStore::reseal_all() {
  FB_ASSIGN(auto rows, list("", ""));
  int rewritten = 0;
  for (const auto& listed : rows) {
    bool stale = false;
    for (const std::string* b : {&listed.sealed.access_token, &listed.sealed.refresh_token, &listed.sealed.api_key}) {
      stale = stale || (!b->empty() && Sealer::key_id_of(*b) != sealer_.active_key_id());
    }
    if (!stale) continue;
    Status s = db_.transaction([&]() -> Status {
      FB_ASSIGN(IntegrationRecord row, load(listed.id));  // under the write lock: current version
      FB_ASSIGN(IntegrationSecrets sec, open_secrets(row));
      const int64_t v = row.token_version;
      std::optional<std::string> a, r, k;
      if (!sec.access_token.empty()) {
        FB_ASSIGN(a, seal(row, "access_token", v, sec.access_token));
      }
      if (!sec.refresh_token.empty()) {
        FB_ASSIGN(r, seal(row, "refresh_token", v, sec.refresh_token));
      }
      if (!sec.api_key.empty()) {
        FB_ASSIGN(k, seal(row, "api_key", v, sec.api_key));
      }
      Stmt& q = db_.prepare(
          "UPDATE integrations SET access_token=?, refresh_token=?, api_key=? WHERE id=? AND token_version=?");
      if (a) q.bind_blob(1, *a); else q.bind(1, nullptr);
      if (r) q.bind_blob(2, *r); else q.bind(2, nullptr);
      if (k) q.bind_blob(3, *k); else q.bind(3, nullptr);
      q.bind(4, row.id).bind(5, v);
      FB_TRY(q.run());
      FB_LOG(kDebug, "oauth") << "resealed integration " << row.id << " (keys " << key_id_list(row) << " -> "
                              << sealer_.active_key_id() << ")";
      return Status::Ok();
    });
    FB_TRY(s);
    ++rewritten;
  }
  return rewritten;
}

Status IntegrationStore::take_lease(int64_t integration_id, const std::string& owner, int64_t until_ms) {
  return db_.transaction([&]() -> Status {
    Stmt& q = db_.prepare("UPDATE integrations SET refresh_lease_owner=?, refresh_lease_until=? WHERE id=?");
    q.bind_all(owner, until_ms, integration_id);
    return q.run();
  });
}

Result<bool> IntegrationStore::renew_lease(int64_t integration_id, const std::string& owner, int64_t until_ms,
                                           std::optional<std::chrono::steady_clock::time_point> deadline) {
  bool held = false;
  auto renew = [&]() -> Status {
    Stmt& q = db_.prepare("UPDATE integrations SET refresh_lease_until=? WHERE id=? AND refresh_lease_owner=?");
    q.bind_all(until_ms, integration_id, owner);
    FB_TRY(q.run());
    held = db_.changes() == 1;
    return Status::Ok();
  };
  Status s = deadline ? db_.transaction_until(*deadline, renew) : db_.transaction(renew);
  FB_TRY(s);
  return held;
}

Status IntegrationStore::release_lease(int64_t integration_id, const std::string& owner) {
  return db_.transaction([&]() -> Status {
    Stmt& q = db_.prepare(
        "UPDATE integrations SET refresh_lease_owner=NULL, refresh_lease_until=NULL WHERE id=? AND "
        "refresh_lease_owner=?");
    q.bind_all(integration_id, owner);
    return q.run();
  });
}

Result<bool> IntegrationStore::commit_refresh(const IntegrationRecord& seen, const TokenGrant& grant) {
  const int64_t version = seen.token_version + 1;
  FB_ASSIGN(std::string access, seal(seen, "access_token", version, grant.access_token));
  std::optional<std::string> refresh;
  if (!grant.refresh_token.empty()) {
    FB_ASSIGN(refresh, seal(seen, "refresh_token", version, grant.refresh_token));
  }
  bool swapped = false;
  Status s = db_.transaction([&]() -> Status {
    const int64_t now = clock_.now_s();
    Stmt& q = db_.prepare(
        "UPDATE integrations SET access_token=?, refresh_token=?, token_version=?, token_expires_at=?, "
        "last_refresh_at=?, last_refresh_error=NULL, refresh_failures=0, cooldown_until=NULL, "
        "refresh_lease_owner=NULL, refresh_lease_until=NULL, refresh_in_doubt=0, updated_at=? "
        "WHERE id=? AND token_version=? AND status='active'");
    q.bind_blob(1, access);
    if (refresh) q.bind_blob(2, *refresh); else q.bind(2, nullptr);
    q.bind(3, version).bind(4, grant.expires_at).bind(5, now).bind(6, now).bind(7, seen.id).bind(8, seen.token_version);
    FB_TRY(q.run());
    swapped = db_.changes() == 1;
    if (swapped && seen.refresh_failures > 0) {
      FB_TRY(audit_locked(seen.id, seen.tenant_id, seen.user_id, "connection_recovered",
                          "token refresh succeeded after " + std::to_string(seen.refresh_failures) +
                              " failed attempt(s)"));
    }
    return Status::Ok();
  });
  FB_TRY(s);
  return swapped;
}

Result<bool> IntegrationStore::mark_reconnect_required(int64_t integration_id, int64_t expected_version,
                                                       const std::string& reason) {
  bool marked = false;
  Status s = db_.transaction([&]() -> Status {
    FB_ASSIGN(IntegrationRecord row, load(integration_id));
    Stmt& q = db_.prepare(
        "UPDATE integrations SET status='reconnect_required', last_refresh_error=?, refresh_lease_owner=NULL, "
        "refresh_lease_until=NULL, updated_at=? WHERE id=? AND token_version=? AND status='active'");
    q.bind_all(reason, clock_.now_s(), integration_id, expected_version);
    FB_TRY(q.run());
    marked = db_.changes() == 1;
    if (marked) FB_TRY(audit_locked(row.id, row.tenant_id, row.user_id, "reconnect_required", reason));
    return Status::Ok();
  });
  FB_TRY(s);
  return marked;
}

Status IntegrationStore::record_refresh_failure(int64_t integration_id, const std::string& owner,
                                                const std::string& error, int64_t cooldown_until, bool in_doubt) {
  return db_.transaction([&]() -> Status {
    FB_ASSIGN(IntegrationRecord row, load(integration_id));
    // In doubt stays in doubt until a send settles it (a success or invalid_grant).
    Stmt& q = db_.prepare(
        "UPDATE integrations SET refresh_failures=refresh_failures+1, last_refresh_error=?, cooldown_until=?, "
        "refresh_lease_owner=CASE WHEN refresh_lease_owner=? THEN NULL ELSE refresh_lease_owner END, "
        "refresh_lease_until=CASE WHEN refresh_lease_owner=? THEN NULL ELSE refresh_lease_until END, "
        "refresh_in_doubt=MAX(refresh_in_doubt, ?), updated_at=? WHERE id=?");
    q.bind_all(error, cooldown_until, owner, owner, int64_t{in_doubt ? 1 : 0}, clock_.now_s(), integration_id);
    FB_TRY(q.run());
    return audit_locked(row.id, row.tenant_id, row.user_id, in_doubt ? "refresh_outcome_unknown" : "refresh_failed",
                        error + " (attempt " + std::to_string(row.refresh_failures + 1) + ", next try after " +
                            format_iso8601(cooldown_until) + ")");
  });
}

Result<std::vector<IntegrationRecord>> IntegrationStore::deactivate(const std::vector<int64_t>& ids,
                                                                    const std::string& reason) {
  std::vector<IntegrationRecord> changed;
  Status s = db_.transaction([&]() -> Status {
    for (int64_t id : ids) {
      auto row = load(id);
      if (!row.ok() || !row->active) continue;
      Stmt& q = db_.prepare("UPDATE integrations SET is_active=0, updated_at=? WHERE id=? AND is_active=1");
      q.bind_all(clock_.now_s(), id);
      FB_TRY(q.run());
      if (db_.changes() != 1) continue;
      FB_TRY(audit_locked(row->id, row->tenant_id, row->user_id, "deactivated", reason));
      changed.push_back(std::move(row).value());
    }
    return Status::Ok();
  });
  FB_TRY(s);
  return changed;
}

std::vector<IntegrationInfo> IntegrationStore::list_active() {
  std::vector<IntegrationInfo> out;
  Status s = db_.with([&]() -> Status {
    Stmt& q = db_.prepare(std::string("SELECT ") + kColumns +
                          " FROM integrations WHERE is_active=1 AND status='active' ORDER BY id");
    return each_row(q, [&](const Stmt& r) { out.push_back(to_info(read_record(r))); });
  });
  // The first failure, then a line a minute with the count (at once for a new reason), and one
  // line when listing works again.
  if (!s.ok()) {
    if (int64_t more = 0; list_failures_.admit(clock_.mono_ms(), &more, s.message())) {
      FB_LOG(kError, "oauth") << "listing active integrations failed: " << s << LogThrottle::left_out_note(more);
    }
  } else if (int64_t failed = list_failures_.end_run()) {
    FB_LOG(kInfo, "oauth") << "active integrations can be listed again after " << failed << " failed attempts";
  }
  return out;
}

Result<IntegrationInfo> IntegrationStore::get(int64_t integration_id) {
  FB_ASSIGN(IntegrationRecord r, load(integration_id));
  return to_info(r);
}

Status IntegrationStore::record_sync(int64_t integration_id, int64_t at_s) {
  return db_.with([&]() -> Status {
    Stmt& q = db_.prepare("UPDATE integrations SET last_sync_at=MAX(COALESCE(last_sync_at, 0), ?) WHERE id=?");
    q.bind_all(at_s, integration_id);
    FB_TRY(q.run());
    if (db_.changes() != 1) return not_found(integration_id);
    return Status::Ok();
  });
}

}  // namespace fb::detail
