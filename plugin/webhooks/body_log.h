// body_log.h: the append-only log that holds webhook bodies outside SQLite.
//
// Why: a 20 KB body stored in SQLite is written twice (WAL frames, then the checkpoint copies them
// into the database file) and read back once, which is a quarter of the CPU of an accepted
// delivery. Here a group commit writes every body of its batch with one pwritev into a segment file
// before its SQLite transaction, and the rows only reference (segment, offset, length).
//
// Layout: a directory of segment files "seg-<unix ms>-<16 hex>.log" (unique names: several
// processes may share one database and one directory). Each writer (one per Inbox) creates a new
// segment of its own, holds flock(LOCK_EX) on it while it appends to it, and moves to a new one
// once it holds segment_bytes. A segment is a sequence of records: a 32-byte header (magic, body
// length, integration id, FNV-1a 64 of the webhook-id; host byte order) then the body. The header
// ties the record to its row, so a read that lands on the wrong bytes (a damaged or truncated
// segment) fails instead of returning another event's body. Bodies have no checksum, like bodies
// in the SQLite file.
//
// Durability: with sync set (the Db is synchronous=FULL) every append is fdatasync'ed, and a new
// segment's directory entry is fsync'ed, before append() returns, hence before the rows that
// reference it commit. Without sync the bytes are in the page cache once append() returns, which
// survives a process crash like synchronous=NORMAL does.
//
// Bytes whose rows never commit (a failed commit) are orphans, reclaimed with their
// segment. Inbox::collect_body_segments() deletes segments no row references.
//
// Threading: append() from one thread at a time (the Inbox writer); read(), the segment listing and
// lock_segment()/remove() from any thread.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fathom_bridge/status.h"

namespace fb::detail {

struct BodyLogOptions {
  std::string dir;                        // created (one level, 0700) when missing; segments are 0600
  uint64_t segment_bytes = 64ull << 20;   // start a new segment once the active one holds this much
  bool sync = false;                      // fdatasync each append (the Db is synchronous=FULL)
};

// What ties a record to its row.
struct BodyKey {
  int64_t integration_id = 0;
  std::string_view webhook_id;
};

// A record to append: the body is written straight from the caller's buffer.
struct BodyRecord {
  BodyKey key;
  std::string_view body;
};

// Where a body lives: offset is the record's (its header's) position in the segment.
struct BodyRef {
  std::string segment;
  int64_t offset = 0;
  int64_t length = 0;  // body bytes
};

// An exclusive lock on a segment no writer owns (see BodyLog::lock_segment).
class SegmentLock {
 public:
  SegmentLock(int fd, int64_t mtime_ms) : fd_(fd), mtime_ms_(mtime_ms) {}
  SegmentLock(SegmentLock&& o) noexcept : fd_(o.fd_), mtime_ms_(o.mtime_ms_) { o.fd_ = -1; }
  SegmentLock(const SegmentLock&) = delete;
  SegmentLock& operator=(const SegmentLock&) = delete;
  SegmentLock& operator=(SegmentLock&&) = delete;
  ~SegmentLock();
  int fd() const { return fd_; }
  int64_t mtime_ms() const { return mtime_ms_; }  // last write (wall clock)

 private:
  int fd_;
  int64_t mtime_ms_;
};

class BodyLog {
 public:
  static constexpr size_t kHeaderBytes = 32;

  explicit BodyLog(BodyLogOptions options);
  // Closes the active segment, which releases its lock.
  ~BodyLog();
  BodyLog(const BodyLog&) = delete;
  BodyLog& operator=(const BodyLog&) = delete;

  const std::string& dir() const { return options_.dir; }

  // Appends the records to the active segment (a new one when none is open or it is full) with one
  // pwritev (per IOV_MAX/2 records), then fdatasync when sync. On success *segment names the
  // segment and offsets[i] is records[i]'s offset. On failure (kIo) nothing may reference the
  // bytes; the segment is abandoned (deleted when it held no earlier append) and the next append
  // starts a new one.
  Status append(const std::vector<BodyRecord>& records, std::string* segment, std::vector<int64_t>* offsets);
  // The active segment's name ("" when none is open). Writer thread only.
  const std::string& active_segment() const { return active_name_; }

  // Reads the body of ref into *body and checks its header against key. kNotFound when the segment
  // does not exist (the caller may look again: it may have been inlined and removed); kIo when the
  // record is damaged or cut short; kUnavailable when the file cannot be opened for a reason that
  // may pass (out of descriptors). Messages name the event and segment, never body bytes.
  Status read(const BodyRef& ref, const BodyKey& key, int64_t event_id, std::string* body);
  // The same through an open descriptor (a SegmentLock's).
  static Status read_fd(int fd, const BodyRef& ref, const BodyKey& key, int64_t event_id, std::string* body);

  // The segment files in the directory, by name (empty when the directory does not exist).
  Result<std::vector<std::string>> segments() const;
  // Locks a segment that no writer owns: nullopt when a writer holds it (or it vanished). While the
  // lock is held no writer can start appending to it.
  std::optional<SegmentLock> lock_segment(const std::string& name) const;
  // Unlinks a segment (hold its lock) and closes this process's cached descriptor for it.
  Status remove(const std::string& name);
  // Closes cached read descriptors of segments that were unlinked (by any process), so their
  // disk space is given back.
  void drop_unlinked();

 private:
  struct Fd;
  Status open_segment();
  void close_segment();
  Result<std::shared_ptr<Fd>> reader(const std::string& segment);

  BodyLogOptions options_;
  // Writer state (writer thread only).
  int active_fd_ = -1;
  std::string active_name_;
  uint64_t active_size_ = 0;
  bool dir_ready_ = false;
  std::vector<unsigned char> headers_;  // reused per append
  std::vector<iovec> iov_;                // reused per append

  std::mutex readers_mu_;
  std::unordered_map<std::string, std::shared_ptr<Fd>> readers_;  // guarded by readers_mu_
};

}  // namespace fb::detail
