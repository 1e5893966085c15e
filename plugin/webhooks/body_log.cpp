#include "webhooks/body_log.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "core/log.h"

namespace fb::detail {

namespace {

constexpr uint32_t kMagic = 0x42574246;  // "FBWB" in a little-endian file
constexpr uint32_t kVersion = 1;
constexpr size_t kMaxReaders = 16;  // cached read descriptors per process

struct Header {
  uint32_t magic;
  uint32_t version;
  uint64_t length;
  int64_t integration_id;
  uint64_t key_hash;
};
static_assert(sizeof(Header) == BodyLog::kHeaderBytes);

uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

Header header_for(const BodyKey& key, uint64_t length) {
  return {kMagic, kVersion, length, key.integration_id, fnv1a64(key.webhook_id)};
}

std::string errno_text(int e) { return std::strerror(e); }

// Names come from the database: accept only what open_segment() makes, so a row can never point
// outside the directory.
bool valid_name(const std::string& name) {
  if (name.size() < 8 || name.rfind("seg-", 0) != 0 || name.compare(name.size() - 4, 4, ".log") != 0) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' || c == '.';
  });
}

Status fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::Io("cannot open directory '" + dir + "': " + errno_text(errno));
  int rc = ::fsync(fd);
  int e = errno;
  ::close(fd);
  if (rc != 0) return Status::Io("cannot fsync directory '" + dir + "': " + errno_text(e));
  return Status::Ok();
}

std::string parent_dir(const std::string& dir) {
  auto slash = dir.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : dir.substr(0, slash);
}

}  // namespace

struct BodyLog::Fd {
  explicit Fd(int f) : fd(f) {}
  ~Fd() { ::close(fd); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int fd;
};

SegmentLock::~SegmentLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

BodyLog::BodyLog(BodyLogOptions options) : options_(std::move(options)) {
  if (options_.segment_bytes == 0) options_.segment_bytes = 1;
}

BodyLog::~BodyLog() { close_segment(); }

void BodyLog::close_segment() {
  if (active_fd_ >= 0) ::close(active_fd_);
  active_fd_ = -1;
  active_name_.clear();
  active_size_ = 0;
}

Status BodyLog::open_segment() {
  const bool made_dir_now = !dir_ready_;
  if (!dir_ready_) {
    // Private, like the database: the bodies are meeting content. An existing directory keeps its mode.
    if (::mkdir(options_.dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return Status::Io("cannot create webhook body directory '" + options_.dir + "': " + errno_text(errno));
    }
    // Also when the directory was there: whoever made it may have died (or failed, or run without
    // sync) before its entry in the parent was synced. Once per BodyLog.
    if (options_.sync) FB_TRY(fsync_dir(parent_dir(options_.dir)));
    dir_ready_ = true;
  }
  for (int attempt = 0; attempt < 8; ++attempt) {
    uint64_t rnd = 0;
    if (::getrandom(&rnd, sizeof rnd, 0) != static_cast<ssize_t>(sizeof rnd)) {
      return Status::Io("cannot name a webhook body segment: getrandom failed");
    }
    auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    char name[64];
    std::snprintf(name, sizeof name, "seg-%lld-%016llx.log", static_cast<long long>(now_ms),
                  static_cast<unsigned long long>(rnd));
    std::string path = options_.dir + "/" + name;
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT && !made_dir_now) {
      // The directory went away while we ran (an operator cleaned up): make it again rather than
      // refusing every delivery until a restart.
      FB_LOG(kWarn, "webhooks") << "webhook body directory '" << options_.dir << "' vanished; creating it again";
      dir_ready_ = false;
      return open_segment();
    }
    if (fd < 0) {
      if (errno == EEXIST) continue;
      return Status::Io("cannot create webhook body segment '" + path + "': " + errno_text(errno));
    }
    // Between open and flock a collector in another process may lock the empty file and unlink
    // it: then we hold a lock on a file nobody can find, and start over with a new name.
    struct stat st {};
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0 || ::fstat(fd, &st) != 0 || st.st_nlink == 0) {
      ::close(fd);
      continue;
    }
    if (options_.sync) {
      Status s = fsync_dir(options_.dir);
      if (!s.ok()) {
        ::close(fd);
        return s;
      }
    }
    active_fd_ = fd;
    active_name_ = name;
    active_size_ = 0;
    return Status::Ok();
  }
  return Status::Io("cannot create a webhook body segment in '" + options_.dir + "' (names kept vanishing)");
}

Status BodyLog::append(const std::vector<BodyRecord>& records, std::string* segment, std::vector<int64_t>* offsets) {
  offsets->clear();
  if (active_fd_ < 0 || active_size_ >= options_.segment_bytes) {
    close_segment();
    FB_TRY(open_segment());
  }
  const bool fresh = active_size_ == 0;  // no record of this segment was handed out yet
  headers_.resize(records.size() * kHeaderBytes);
  iov_.clear();
  uint64_t pos = active_size_;
  for (size_t i = 0; i < records.size(); ++i) {
    const BodyRecord& r = records[i];
    Header h = header_for(r.key, r.body.size());
    unsigned char* hp = headers_.data() + i * kHeaderBytes;
    std::memcpy(hp, &h, kHeaderBytes);
    iov_.push_back({hp, kHeaderBytes});
    if (!r.body.empty()) iov_.push_back({const_cast<char*>(r.body.data()), r.body.size()});
    offsets->push_back(static_cast<int64_t>(pos));
    pos += kHeaderBytes + r.body.size();
  }
  uint64_t off = active_size_;
  size_t next = 0;
  int err = 0;
  while (next < iov_.size()) {
    int count = static_cast<int>(std::min<size_t>(iov_.size() - next, IOV_MAX));
    ssize_t w = ::pwritev(active_fd_, &iov_[next], count, static_cast<off_t>(off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      err = w < 0 ? errno : ENOSPC;
      break;
    }
    off += static_cast<uint64_t>(w);
    auto left = static_cast<size_t>(w);
    while (left > 0) {  // a short write: resume inside the iovec where it stopped
      if (left >= iov_[next].iov_len) {
        left -= iov_[next].iov_len;
        ++next;
      } else {
        iov_[next].iov_base = static_cast<char*>(iov_[next].iov_base) + left;
        iov_[next].iov_len -= left;
        left = 0;
      }
    }
  }
  if (err == 0 && options_.sync && ::fdatasync(active_fd_) != 0) err = errno;
  if (err != 0) {
    std::string where = options_.dir + "/" + active_name_;
    // A segment this failure left without one whole append (a full disk fails the first write of
    // every new segment) holds nothing a row can reference: delete it rather than leave one
    // (empty) file per failed delivery. A segment with earlier appends is kept for its records.
    if (fresh && ::unlink(where.c_str()) != 0 && errno != ENOENT) {
      FB_LOG(kWarn, "webhooks") << "cannot delete the failed webhook body segment '" << where
                                << "': " << errno_text(errno);
    }
    close_segment();  // its tail is unknown now: never append to it again
    return Status::Io("cannot write webhook bodies to segment '" + where + "': " + errno_text(err));
  }
  active_size_ = off;
  *segment = active_name_;
  return Status::Ok();
}

Status BodyLog::read_fd(int fd, const BodyRef& ref, const BodyKey& key, int64_t event_id, std::string* body) {
  std::string where = "webhook event " + std::to_string(event_id) + ": body record at offset " +
                      std::to_string(ref.offset) + " of segment '" + ref.segment + "'";
  if (ref.offset < 0 || ref.length < 0) return Status::Io(where + " has an invalid reference");
  // Before the buffer is sized from the row: a damaged length must fail here, not throw (or
  // overflow the offset arithmetic below).
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::Io(where + " cannot be read: " + errno_text(errno));
  if (ref.offset > st.st_size || ref.length > st.st_size - ref.offset) {
    body->clear();
    return Status::Io(where + " is cut short (the segment holds " + std::to_string(st.st_size) + " bytes)");
  }
  Header h{};
  body->resize(static_cast<size_t>(ref.length));
  iovec iov[2] = {{&h, kHeaderBytes}, {body->data(), body->size()}};
  size_t want = kHeaderBytes + body->size();
  size_t got = 0;
  int idx = 0;
  while (got < want) {
    ssize_t n = ::preadv(fd, iov + idx, 2 - idx, static_cast<off_t>(ref.offset + static_cast<int64_t>(got)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Io(where + " cannot be read: " + errno_text(errno));
    if (n == 0) {
      body->clear();
      return Status::Io(where + " is cut short (the segment ends " + std::to_string(want - got) +
                        " bytes before the record does)");
    }
    got += static_cast<size_t>(n);
    auto left = static_cast<size_t>(n);
    while (left > 0 && idx < 2) {
      if (left >= iov[idx].iov_len) {
        left -= iov[idx].iov_len;
        iov[idx].iov_len = 0;
        ++idx;
      } else {
        iov[idx].iov_base = static_cast<char*>(iov[idx].iov_base) + left;
        iov[idx].iov_len -= left;
        left = 0;
      }
    }
  }
  Header expect = header_for(key, static_cast<uint64_t>(ref.length));
  if (std::memcmp(&h, &expect, kHeaderBytes) != 0) {
    body->clear();
    return Status::Io(where + " is damaged (its header does not match the event)");
  }
  return Status::Ok();
}

Result<std::shared_ptr<BodyLog::Fd>> BodyLog::reader(const std::string& segment) {
  if (!valid_name(segment)) return Status::Io("invalid webhook body segment name '" + segment + "'");
  std::lock_guard lk(readers_mu_);
  auto it = readers_.find(segment);
  if (it != readers_.end()) return it->second;
  int fd = ::open((options_.dir + "/" + segment).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    std::string m = "cannot open webhook body segment '" + options_.dir + "/" + segment + "': " + errno_text(e);
    if (e == ENOENT) return Status::NotFound(m);
    if (e == EMFILE || e == ENFILE || e == ENOMEM || e == EINTR) return Status::Unavailable(m);
    return Status::Io(m);
  }
  if (readers_.size() >= kMaxReaders) readers_.clear();  // readers in progress keep theirs alive
  auto f = std::make_shared<Fd>(fd);
  readers_.emplace(segment, f);
  return f;
}

Status BodyLog::read(const BodyRef& ref, const BodyKey& key, int64_t event_id, std::string* body) {
  auto f = reader(ref.segment);
  if (!f.ok()) {
    body->clear();
    return Status(f.status().code(), "webhook event " + std::to_string(event_id) + ": " + f.status().message());
  }
  return read_fd((*f)->fd, ref, key, event_id, body);
}

Result<std::vector<std::string>> BodyLog::segments() const {
  std::vector<std::string> out;
  DIR* d = ::opendir(options_.dir.c_str());
  if (!d) {
    if (errno == ENOENT) return out;
    return Status::Io("cannot list webhook body directory '" + options_.dir + "': " + errno_text(errno));
  }
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (valid_name(name)) out.push_back(std::move(name));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<SegmentLock> BodyLog::lock_segment(const std::string& name) const {
  if (!valid_name(name)) return std::nullopt;
  int fd = ::open((options_.dir + "/" + name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct stat st {};
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0 || ::fstat(fd, &st) != 0 || st.st_nlink == 0) {
    ::close(fd);
    return std::nullopt;
  }
  int64_t mtime_ms = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000;
  return SegmentLock(fd, mtime_ms);
}

Status BodyLog::remove(const std::string& name) {
  if (!valid_name(name)) return Status::InvalidArgument("invalid webhook body segment name '" + name + "'");
  std::string path = options_.dir + "/" + name;
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Status::Io("cannot delete webhook body segment '" + path + "': " + errno_text(errno));
  }
  std::lock_guard lk(readers_mu_);
  readers_.erase(name);
  return Status::Ok();
}

void BodyLog::drop_unlinked() {
  std::lock_guard lk(readers_mu_);
  for (auto it = readers_.begin(); it != readers_.end();) {
    struct stat st {};
    if (::fstat(it->second->fd, &st) != 0 || st.st_nlink == 0) {
      it = readers_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace fb::detail
