#include "scripting/script_files.h"

#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace fb::detail {
namespace {

constexpr int64_t kRacyNs = 3'000'000'000;  // well over any file system's timestamp granularity

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h | 1;  // never 0, which means "not hashed"
}

int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<std::string> real_path(const std::string& p) {
  char* r = ::realpath(p.c_str(), nullptr);
  if (!r) {
    int e = errno;
    if (e == ENOENT) return Status::NotFound(p + ": no such file");
    return Status::Io(p + ": " + std::strerror(e));
  }
  std::string out(r);
  std::free(r);
  return out;
}

}  // namespace

bool same_file(const FileSig& a, const FileSig& b) {
  if (a.exists != b.exists) return false;
  if (!a.exists) return true;
  if (a.size != b.size || a.mtime_ns != b.mtime_ns || a.ino != b.ino) return false;
  return a.hash == 0 || b.hash == 0 || a.hash == b.hash;
}

FileSig sample_file(const std::string& dir, const std::string& rel, const FileSig* previous) {
  FileSig sig;
  sig.rel = rel;
  auto path = resolve_in_dir(dir, rel);
  struct stat st {};
  if (!path.ok() || ::stat(path->c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return sig;
  sig.exists = true;
  sig.size = st.st_size;
  sig.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  sig.ino = st.st_ino;
  bool racy = wall_ns() - sig.mtime_ns < kRacyNs || (previous && previous->hash != 0);
  if (racy) {
    auto text = read_script(dir, rel);
    if (text.ok()) sig.hash = fnv1a(*text);
  }
  return sig;
}

Result<std::string> canonical_dir(const std::string& dir) {
  if (dir.empty()) return Status::InvalidArgument("scripts directory is empty (scripts.dir)");
  auto r = real_path(dir);
  if (!r.ok()) return Status(r.code(), "scripts directory " + r.status().message());
  struct stat st {};
  if (::stat(r->c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument("scripts directory '" + dir + "' is not a directory");
  }
  return r;
}

Result<std::string> resolve_in_dir(const std::string& dir, std::string_view rel) {
  if (rel.empty() || rel.front() == '/' || rel.find('\0') != std::string_view::npos) {
    return Status::PermissionDenied("'" + std::string(rel) + "' is not a relative path inside the scripts directory");
  }
  for (size_t start = 0; start <= rel.size();) {
    size_t end = rel.find('/', start);
    if (end == std::string_view::npos) end = rel.size();
    if (rel.substr(start, end - start) == "..") {
      return Status::PermissionDenied("'" + std::string(rel) + "' leaves the scripts directory");
    }
    start = end + 1;
  }
  FB_ASSIGN(std::string real, real_path(dir + "/" + std::string(rel)));
  if (real.size() <= dir.size() || real.compare(0, dir.size(), dir) != 0 || real[dir.size()] != '/') {
    return Status::PermissionDenied("'" + std::string(rel) + "' resolves outside the scripts directory");
  }
  return real;
}

Result<std::string> read_script(const std::string& dir, std::string_view rel) {
  FB_ASSIGN(std::string path, resolve_in_dir(dir, rel));
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Status::NotFound("'" + std::string(rel) + "' is not a regular file");
  }
  if (st.st_size > static_cast<off_t>(kMaxScriptBytes)) {
    return Status::TooLarge("'" + std::string(rel) + "' is over " + std::to_string(kMaxScriptBytes) + " bytes");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Io("cannot open '" + std::string(rel) + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<std::string> module_path(std::string_view name) {
  auto bad = [&] {
    return Status::InvalidArgument("invalid module name '" + std::string(name.substr(0, 80)) +
                                   "' (use dot-separated names like 'helpers.domains')");
  };
  if (name.empty() || name.size() > 128 || name.front() == '.' || name.back() == '.') return bad();
  std::string rel;
  char prev = 0;
  for (char c : name) {
    if (c == '.') {
      if (prev == '.') return bad();
      rel += '/';
    } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-') {
      rel += c;
    } else {
      return bad();
    }
    prev = c;
  }
  return rel + ".lua";
}

Generation::Generation(uint64_t id, std::string dir, std::string display_prefix, std::vector<ScriptSource> entries,
                       std::vector<FileSig> entry_sigs)
    : id_(id), dir_(std::move(dir)), prefix_(std::move(display_prefix)), entries_(std::move(entries)),
      sigs_(std::move(entry_sigs)) {}

Generation::Generation(uint64_t id, std::string display_prefix, std::vector<ScriptSource> entries,
                       std::shared_ptr<const ScriptFiles> files, int64_t version_id)
    : id_(id), prefix_(std::move(display_prefix)), entries_(std::move(entries)), files_(std::move(files)),
      version_id_(version_id) {}

Result<std::shared_ptr<const ScriptSource>> Generation::module(const std::string& rel) {
  {
    std::lock_guard lock(mu_);
    if (auto it = modules_.find(rel); it != modules_.end()) return it->second;
  }
  if (files_) {
    auto f = files_->find(rel);
    if (f == files_->end()) {
      return Status::NotFound("'" + rel + "' is not in script version " + std::to_string(version_id_));
    }
    auto src = std::make_shared<const ScriptSource>(ScriptSource{rel, display(rel), f->second});
    std::lock_guard lock(mu_);
    return modules_.emplace(rel, src).first->second;
  }
  FileSig sig = sample_file(dir_, rel, nullptr);
  auto text = read_script(dir_, rel);
  if (!text.ok()) {
    // Watch the missing or unreadable file too: creating or fixing it is a change.
    std::lock_guard lock(mu_);
    bool known = false;
    for (const FileSig& s : sigs_) known = known || s.rel == rel;
    if (!known) sigs_.push_back(sig);
    return text.status();
  }
  auto src = std::make_shared<const ScriptSource>(ScriptSource{rel, display(rel), std::move(text).value()});
  std::lock_guard lock(mu_);
  auto [it, inserted] = modules_.emplace(rel, src);
  if (inserted) sigs_.push_back(sig);
  return it->second;
}

std::vector<FileSig> Generation::signatures() const {
  std::lock_guard lock(mu_);
  return sigs_;
}

}  // namespace fb::detail
