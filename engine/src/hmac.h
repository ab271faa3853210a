#pragma once
// HMAC-SHA256 through OpenSSL, for the store's keyed hashes: the unsubscribe tokens of campaign
// letters (email.cc) and the marks of forgotten customer ids (store.cc). Engine-internal.

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <string>
#include <string_view>

namespace affinity {

// HMAC-SHA256(key, data): 32 bytes, or empty if OpenSSL fails (for SHA-256 only when it cannot
// allocate).
inline std::string HmacSha256(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int length = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(),
            &length)) {
    return {};
  }
  return std::string(reinterpret_cast<const char*>(mac.data()), length);
}

}  // namespace affinity
