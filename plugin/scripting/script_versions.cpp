#include "scripting/script_versions.h"

#include <chrono>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "crypto/encoding.h"
#include "crypto/hash.h"
#include "scripting/script_files.h"
#include "store/db.h"

namespace fb::detail {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Engine-neutral SQL (plugin/store/README.md): the active version of a scope is the version of
// its newest activation, so activation is one INSERT and the counter is MAX(id).
const std::vector<Migration> kMigrations = {
    {1,
     "CREATE TABLE script_versions ("
     " id INTEGER PRIMARY KEY AUTOINCREMENT,"
     " scope TEXT NOT NULL,"
     " content_hash TEXT NOT NULL,"
     " files TEXT NOT NULL,"
     " author TEXT NOT NULL,"
     " note TEXT NOT NULL,"
     " created_at INTEGER NOT NULL);"
     "CREATE INDEX script_versions_scope ON script_versions(scope, content_hash);"
     "CREATE TABLE script_activations ("
     " id INTEGER PRIMARY KEY AUTOINCREMENT,"
     " scope TEXT NOT NULL,"
     " version_id INTEGER NOT NULL,"
     " previous_version_id INTEGER NOT NULL,"
     " kind TEXT NOT NULL,"
     " author TEXT NOT NULL,"
     " created_at INTEGER NOT NULL);"
     "CREATE INDEX script_activations_scope ON script_activations(scope, id);"}};

constexpr const char* kInfoColumns = "id, scope, content_hash, author, note, created_at, files";

ScriptVersionInfo read_info(Stmt& q) {
  ScriptVersionInfo v;
  v.id = q.int64(0);
  v.scope = q.text(1);
  v.content_hash = q.text(2);
  v.author = q.text(3);
  v.note = q.text(4);
  v.created_at = q.int64(5);
  json files = json::parse(q.text(6), nullptr, false);
  if (files.is_object()) {
    for (auto it = files.begin(); it != files.end(); ++it) v.paths.push_back(it.key());
  }
  return v;
}

ScriptActivation read_activation(Stmt& q) {
  return {q.int64(0), q.text(1), q.int64(2), q.int64(3), q.text(4), q.text(5), q.int64(6)};
}

constexpr const char* kActivationColumns = "id, scope, version_id, previous_version_id, kind, author, created_at";

// The newest activation of scope (nullopt when it never had one). REQUIRES: inside with/transaction.
Result<std::optional<ScriptActivation>> newest_activation(Db& db, const std::string& scope) {
  Stmt& q = db.prepare(std::string("SELECT ") + kActivationColumns +
                       " FROM script_activations WHERE scope = ? ORDER BY id DESC LIMIT 1");
  q.reset().bind_all(scope);
  std::optional<ScriptActivation> out;
  FB_TRY(each_row(q, [&](Stmt& r) { out = read_activation(r); }));
  return out;
}

}  // namespace

std::string ScriptVersionInfo::to_json() const {
  return json{{"id", id},
              {"scope", scope.empty() ? json(nullptr) : json(scope)},
              {"content_hash", content_hash},
              {"author", author},
              {"note", note},
              {"created_at", created_at},
              {"active", active},
              {"files", paths}}
      .dump();
}

std::string script_files_hash(const ScriptFiles& files) {
  std::string all;
  for (const auto& [path, text] : files) {  // std::map: sorted by path
    all += std::to_string(path.size()) + ":" + path + std::to_string(text.size()) + ":" + text;
  }
  return hex_encode(sha256(all));
}

Status check_script_files(const ScriptFiles& files) {
  if (!files.count("mapping.lua")) return Status::InvalidArgument("the script set has no mapping.lua");
  if (files.size() > 200) return Status::TooLarge("a script set holds at most 200 files");
  for (const auto& [path, text] : files) {
    bool ok = path.size() > 4 && path.size() <= 200 && path.compare(path.size() - 4, 4, ".lua") == 0;
    if (ok) {
      std::string dotted = path.substr(0, path.size() - 4);
      for (char& c : dotted) c = c == '/' ? '.' : c;
      auto rel = module_path(dotted);
      ok = rel.ok() && *rel == path;  // the path a require of that module name reads
    }
    if (!ok) {
      return Status::InvalidArgument("script file name '" + path.substr(0, 200) +
                                     "' is not a relative path like 'helpers/domains.lua'");
    }
    if (text.size() > kMaxScriptBytes) {
      return Status::TooLarge(path + " is over " + std::to_string(kMaxScriptBytes) + " bytes");
    }
  }
  return Status::Ok();
}

Result<ScriptFiles> read_script_folder(const std::string& dir) {
  FB_ASSIGN(std::string root, canonical_dir(dir));
  ScriptFiles files;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file() || it->path().extension() != ".lua") continue;
    std::string rel = fs::relative(it->path(), root).generic_string();
    FB_ASSIGN(std::string text, read_script(root, rel));
    if (text.rfind("---@meta", 0) == 0) continue;  // editor type stubs (types/), never run
    files.emplace(rel, std::move(text));
  }
  if (ec) return Status::Io("cannot read the folder '" + dir + "': " + ec.message());
  FB_TRY(check_script_files(files));
  return files;
}

Result<std::unique_ptr<ScriptVersionStore>> ScriptVersionStore::open(Db* db) {
  if (!db) return Status::FailedPrecondition("script versions need a store");
  FB_TRY(db->migrate("script_versions", kMigrations));
  return std::unique_ptr<ScriptVersionStore>(new ScriptVersionStore(db));
}

Result<ScriptVersionInfo> ScriptVersionStore::add(const std::string& scope, const ScriptFiles& files,
                                                  const std::string& author, const std::string& note) {
  FB_TRY(check_script_files(files));
  std::string hash = script_files_hash(files);
  json doc = json::object();
  for (const auto& [path, text] : files) doc[path] = text;
  std::string text = doc.dump(-1, ' ', false, json::error_handler_t::replace);
  int64_t id = 0;
  Status done = db_->transaction([&]() -> Status {
    Stmt& find = db_->prepare("SELECT id FROM script_versions WHERE scope = ? AND content_hash = ? ORDER BY id LIMIT 1");
    find.reset().bind_all(scope, hash);
    FB_TRY(each_row(find, [&](Stmt& r) { id = r.int64(0); }));
    if (id != 0) return Status::Ok();
    Stmt& ins = db_->prepare(
        "INSERT INTO script_versions (scope, content_hash, files, author, note, created_at) VALUES (?, ?, ?, ?, ?, ?)");
    ins.reset().bind_all(scope, hash, text, author, note, unix_now());
    FB_TRY(ins.run());
    id = db_->last_insert_rowid();
    return Status::Ok();
  });
  FB_TRY(done);
  return info(id);
}

Result<ScriptVersionInfo> ScriptVersionStore::info(int64_t id) {
  std::optional<ScriptVersionInfo> out;
  Status done = db_->with([&]() -> Status {
    Stmt& q = db_->prepare(std::string("SELECT ") + kInfoColumns + " FROM script_versions WHERE id = ?");
    q.reset().bind_all(id);
    FB_TRY(each_row(q, [&](Stmt& r) { out = read_info(r); }));
    if (!out) return Status::Ok();
    FB_ASSIGN(auto act, newest_activation(*db_, out->scope));
    out->active = act && act->version_id == id;
    return Status::Ok();
  });
  FB_TRY(done);
  if (!out) return Status::NotFound("no script version " + std::to_string(id));
  return *out;
}

Result<ScriptFiles> ScriptVersionStore::files(int64_t id) {
  std::optional<std::string> text;
  Status done = db_->with([&]() -> Status {
    Stmt& q = db_->prepare("SELECT files FROM script_versions WHERE id = ?");
    q.reset().bind_all(id);
    return each_row(q, [&](Stmt& r) { text = r.text(0); });
  });
  FB_TRY(done);
  if (!text) return Status::NotFound("no script version " + std::to_string(id));
  json doc = json::parse(*text, nullptr, false);
  if (!doc.is_object()) return Status::Internal("script version " + std::to_string(id) + " has unreadable files");
  ScriptFiles files;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (it->is_string()) files.emplace(it.key(), it->get<std::string>());
  }
  return files;
}

Result<std::vector<ScriptVersionInfo>> ScriptVersionStore::list(const std::string& scope, int limit) {
  std::vector<ScriptVersionInfo> out;
  Status done = db_->with([&]() -> Status {
    Stmt& q = db_->prepare(std::string("SELECT ") + kInfoColumns +
                           " FROM script_versions WHERE scope = ? ORDER BY id DESC LIMIT ?");
    q.reset().bind_all(scope, static_cast<int64_t>(limit));
    FB_TRY(each_row(q, [&](Stmt& r) { out.push_back(read_info(r)); }));
    FB_ASSIGN(auto act, newest_activation(*db_, scope));
    for (auto& v : out) v.active = act && act->version_id == v.id;
    return Status::Ok();
  });
  FB_TRY(done);
  return out;
}

Result<ScriptActivation> ScriptVersionStore::record(const std::string& scope, int64_t version_id,
                                                    const std::string& kind, const std::string& author) {
  ScriptActivation a;
  Status done = db_->transaction([&]() -> Status {
    FB_ASSIGN(auto current, newest_activation(*db_, scope));
    int64_t active = current ? current->version_id : 0;
    int64_t previous = active;
    if (kind == "rollback") {
      if (!current || active == 0) {
        return Status::FailedPrecondition("no script version is active for " +
                                          (scope.empty() ? std::string("the default") : "tenant '" + scope + "'"));
      }
      version_id = current->previous_version_id;
      // Rolling back again goes one step further: the new entry's "previous" is what preceded the
      // activation that made version_id active.
      previous = 0;
      Stmt& q = db_->prepare(
          "SELECT previous_version_id FROM script_activations WHERE scope = ? AND version_id = ? AND id < ?"
          " ORDER BY id DESC LIMIT 1");
      q.reset().bind_all(scope, version_id, current->id);
      FB_TRY(each_row(q, [&](Stmt& r) { previous = r.int64(0); }));
    } else {
      Stmt& q = db_->prepare("SELECT scope FROM script_versions WHERE id = ?");
      q.reset().bind_all(version_id);
      std::optional<std::string> owner;
      FB_TRY(each_row(q, [&](Stmt& r) { owner = r.text(0); }));
      if (!owner || *owner != scope) {
        return Status::NotFound("no script version " + std::to_string(version_id) + " for " +
                                (scope.empty() ? std::string("the default") : "tenant '" + scope + "'"));
      }
    }
    Stmt& ins = db_->prepare(
        "INSERT INTO script_activations (scope, version_id, previous_version_id, kind, author, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)");
    a = {0, scope, version_id, previous, kind, author, unix_now()};
    ins.reset().bind_all(scope, version_id, previous, kind, author, a.created_at);
    FB_TRY(ins.run());
    a.id = db_->last_insert_rowid();
    return Status::Ok();
  });
  FB_TRY(done);
  return a;
}

Result<ScriptActivation> ScriptVersionStore::activate(const std::string& scope, int64_t id, const std::string& author) {
  return record(scope, id, "activate", author);
}

Result<ScriptActivation> ScriptVersionStore::rollback(const std::string& scope, const std::string& author) {
  return record(scope, 0, "rollback", author);
}

Result<int64_t> ScriptVersionStore::counter() {
  int64_t n = 0;
  Status done = db_->with([&]() -> Status {
    Stmt& q = db_->prepare("SELECT MAX(id) FROM script_activations");
    q.reset();
    return each_row(q, [&](Stmt& r) { n = r.is_null(0) ? 0 : r.int64(0); });
  });
  FB_TRY(done);
  return n;
}

Result<std::map<std::string, int64_t>> ScriptVersionStore::active_versions() {
  std::map<std::string, int64_t> out;
  Status done = db_->with([&]() -> Status {
    Stmt& q = db_->prepare(
        "SELECT a.scope, a.version_id FROM script_activations a"
        " JOIN (SELECT scope, MAX(id) AS id FROM script_activations GROUP BY scope) n ON a.id = n.id"
        " WHERE a.version_id <> 0");
    q.reset();
    return each_row(q, [&](Stmt& r) { out[r.text(0)] = r.int64(1); });
  });
  FB_TRY(done);
  return out;
}

Result<std::vector<ScriptActivation>> ScriptVersionStore::history(const std::string& scope, int limit) {
  std::vector<ScriptActivation> out;
  Status done = db_->with([&]() -> Status {
    Stmt& q = db_->prepare(std::string("SELECT ") + kActivationColumns +
                           " FROM script_activations WHERE scope = ? ORDER BY id DESC LIMIT ?");
    q.reset().bind_all(scope, static_cast<int64_t>(limit));
    return each_row(q, [&](Stmt& r) { out.push_back(read_activation(r)); });
  });
  FB_TRY(done);
  return out;
}

}  // namespace fb::detail
