// secret.h: a string that holds a token or secret and refuses to be printed.
//
// SecretString has no implicit conversion and no operator<<; the only way to the bytes is
// reveal(), so every place that needs the plaintext (an Authorization header, the sealer) is
// visible in review. Its memory is wiped on destruction.
#pragma once

#include <string>
#include <string_view>

namespace fb::detail {

class SecretString {
 public:
  SecretString() = default;
  explicit SecretString(std::string value) : value_(std::move(value)) {}
  SecretString(const SecretString&) = default;
  SecretString& operator=(const SecretString&) = default;
  SecretString(SecretString&& o) noexcept : value_(std::move(o.value_)) { o.wipe(); }
  SecretString& operator=(SecretString&& o) noexcept {
    if (this != &o) {
      wipe();
      value_ = std::move(o.value_);
      o.wipe();
    }
    return *this;
  }
  ~SecretString() { wipe(); }

  const std::string& reveal() const { return value_; }
  bool empty() const { return value_.empty(); }
  size_t size() const { return value_.size(); }
  bool operator==(const SecretString& o) const;  // constant time
  // What logs and reports show instead of the value.
  static constexpr std::string_view kRedacted = "[redacted]";

 private:
  void wipe() noexcept;
  std::string value_;
};

}  // namespace fb::detail
