#include "crypto/sealer.h"

#include <openssl/evp.h>

#include <memory>

#include "crypto/encoding.h"

namespace fb::detail {
namespace {

constexpr std::string_view kMagic = "FB1";
constexpr size_t kNonce = 12;
constexpr size_t kTag = 16;

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using Ctx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

}  // namespace

Status Sealer::add_key(const std::string& id, const SecretString& key) {
  if (id.empty() || id.size() > 64) return Status::InvalidArgument("key id must be 1..64 characters");
  for (char c : id) {
    if (c < 0x21 || c > 0x7e || c == ':' || c == ',') {
      return Status::InvalidArgument("key id has a character outside printable ASCII or ':' ','");
    }
  }
  if (key.size() != 32) return Status::InvalidArgument("key '" + id + "' must be 32 bytes");
  keys_[id] = key;
  if (active_.empty()) active_ = id;
  return Status::Ok();
}

Status Sealer::set_active(const std::string& id) {
  if (!keys_.count(id)) return Status::NotFound("no key with id '" + id + "'");
  active_ = id;
  return Status::Ok();
}

Result<std::string> Sealer::seal(const SecretString& plaintext, std::string_view aad) const {
  auto it = keys_.find(active_);
  if (it == keys_.end()) return Status::FailedPrecondition("no token-encryption key configured");
  const std::string& pt = plaintext.reveal();
  std::string out;
  out.reserve(kMagic.size() + 1 + active_.size() + kNonce + pt.size() + kTag);
  out.append(kMagic);
  out += static_cast<char>(active_.size());
  out.append(active_);
  size_t nonce_at = out.size();
  out.resize(nonce_at + kNonce);
  random_.fill(reinterpret_cast<uint8_t*>(out.data() + nonce_at), kNonce);
  size_t ct_at = out.size();
  out.resize(ct_at + pt.size() + kTag);

  Ctx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  auto u = [](const char* p) { return reinterpret_cast<const unsigned char*>(p); };
  auto* w = reinterpret_cast<unsigned char*>(out.data());
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonce, nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, u(it->second.reveal().data()), w + nonce_at) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, u(aad.data()), static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), w + ct_at, &len, u(pt.data()), static_cast<int>(pt.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), w + ct_at + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTag, w + ct_at + pt.size()) != 1) {
    return Status::Internal("AES-256-GCM encryption failed");
  }
  return out;
}

std::string Sealer::key_id_of(std::string_view blob) {
  if (blob.size() < kMagic.size() + 1 || blob.substr(0, kMagic.size()) != kMagic) return "";
  size_t idlen = static_cast<unsigned char>(blob[kMagic.size()]);
  if (blob.size() < kMagic.size() + 1 + idlen) return "";
  return std::string(blob.substr(kMagic.size() + 1, idlen));
}

Result<SecretString> Sealer::open(std::string_view blob, std::string_view aad) const {
  if (blob.size() < kMagic.size() + 1 || blob.substr(0, kMagic.size()) != kMagic) {
    return Status::Malformed("sealed value has an unknown format");
  }
  size_t idlen = static_cast<unsigned char>(blob[kMagic.size()]);
  size_t header = kMagic.size() + 1 + idlen;
  if (blob.size() < header + kNonce + kTag) return Status::Malformed("sealed value is truncated");
  std::string id(blob.substr(kMagic.size() + 1, idlen));
  auto it = keys_.find(id);
  if (it == keys_.end()) return Status::NotFound("sealed with key id '" + id + "', which is not configured");
  const char* nonce = blob.data() + header;
  const char* ct = nonce + kNonce;
  size_t ctlen = blob.size() - header - kNonce - kTag;
  std::string pt(ctlen, '\0');
  Ctx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  auto u = [](const char* p) { return reinterpret_cast<const unsigned char*>(p); };
  bool ok = ctx && EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonce, nullptr) == 1 &&
            EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, u(it->second.reveal().data()), u(nonce)) == 1 &&
            EVP_DecryptUpdate(ctx.get(), nullptr, &len, u(aad.data()), static_cast<int>(aad.size())) == 1 &&
            EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(pt.data()), &len, u(ct),
                              static_cast<int>(ctlen)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTag,
                                const_cast<char*>(ct + ctlen)) == 1 &&
            EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(pt.data()) + len, &len) == 1;
  if (!ok) {
    SecretString wipe(std::move(pt));
    return Status::Rejected("sealed value failed authentication (wrong key or tampered)");
  }
  return SecretString(std::move(pt));
}

Status parse_key_spec(std::string_view spec, std::string* id, SecretString* key) {
  std::string_view b64 = spec;
  *id = "k1";
  if (auto colon = spec.find(':'); colon != std::string_view::npos) {
    *id = std::string(spec.substr(0, colon));
    b64 = spec.substr(colon + 1);
  }
  auto raw = base64_decode(b64);
  if (!raw) return Status::Config("token key is not valid base64");
  if (raw->size() != 32) {
    SecretString wipe(std::move(*raw));
    return Status::Config("token key must decode to 32 bytes (AES-256)");
  }
  *key = SecretString(std::move(*raw));
  return Status::Ok();
}

}  // namespace fb::detail
