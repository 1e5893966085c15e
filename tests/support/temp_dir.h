// temp_dir.h: a unique temporary directory for one test, removed with everything in it afterwards.
#pragma once

#include <string>

namespace fb::test {

// Created under $TMPDIR (or /tmp) as "fb-test-XXXXXX". Set FB_KEEP_TEMP=1 to keep it for a
// post-mortem. Not copyable; not thread-safe to destroy while another thread writes into it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name. The file is not created.
  std::string file(const std::string& name) const;

 private:
  std::string path_;
};

// The whole content of a file ("" when it cannot be read), e.g. a log or database file a test checks.
std::string read_file(const std::string& path);

}  // namespace fb::test
