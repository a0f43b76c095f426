// HMAC (RFC 2104) over OpenSSL's low-level SHA-1/SHA-256/SHA-512, and a plain SHA-256.
//
// Issue 20: the first EVP call that computes anything in a process (EVP_MAC_fetch, EVP_Digest,
// even the one-shot SHA1()) initialises OpenSSL, loads openssl.cnf and constructs the default
// provider's algorithms: ~6.7 M instructions on a cold host (pamtester, su, login), ~150 k on one
// that has initialised OpenSSL itself (sshd), for every login. SHA1_Init/Update/Final and their
// SHA-256/512 siblings call no provider and never initialise the library. They are deprecated in
// OpenSSL 3.0 but shipped, hence OPENSSL_SUPPRESS_DEPRECATED, defined in this file only. The digest
// itself remains OpenSSL's; only the RFC 2104 construction around it is ours. If a future OpenSSL
// drops the low-level API, return to EVP_MAC (the Hmac class in lib/src/hotp.cpp at f3865e4),
// whose cost is then that of the provider set-up again.
//
// Trade-off to keep in mind: these functions are outside the provider machinery, so a site
// configuration (a FIPS-only openssl.cnf, `default_properties = fips=yes`) does not govern the
// login's HMAC any more, as it did with EVP_MAC. See bench/login/PROFILE-issue20.md.
#define OPENSSL_SUPPRESS_DEPRECATED

#include "hmac.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <new>

#include "pbx/totp/hotp.hpp"

namespace pbx::totp {
namespace {

// One of OpenSSL's low-level digests: its context, block and digest sizes, and functions.
template <typename C, std::size_t Block, std::size_t Size, int (*Init)(C*),
          int (*Update)(C*, const void*, std::size_t), int (*Final)(unsigned char*, C*)>
struct Digest {
  using Ctx = C;
  static constexpr std::size_t kBlock = Block;
  static constexpr std::size_t kSize = Size;
  static int init(Ctx* c) noexcept { return Init(c); }
  static int update(Ctx* c, const void* d, std::size_t n) noexcept { return Update(c, d, n); }
  static int finish(unsigned char* md, Ctx* c) noexcept { return Final(md, c); }
};

using Sha1 = Digest<SHA_CTX, SHA_CBLOCK, SHA_DIGEST_LENGTH, SHA1_Init, SHA1_Update, SHA1_Final>;
using Sha256 = Digest<SHA256_CTX, SHA256_CBLOCK, SHA256_DIGEST_LENGTH, SHA256_Init, SHA256_Update,
                      SHA256_Final>;
using Sha512 = Digest<SHA512_CTX, SHA512_CBLOCK, SHA512_DIGEST_LENGTH, SHA512_Init, SHA512_Update,
                      SHA512_Final>;

static_assert(Sha512::kSize <= detail::kMaxMacSize && Sha256::kSize <= detail::kMaxMacSize);

// One key, prepared: the inner and outer digests after their ipad/opad block. A code then costs
// a copy of each and the two finishing hashes.
class HmacState {
 public:
  HmacState() = default;
  virtual ~HmacState() = default;
  HmacState(const HmacState&) = delete;
  HmacState& operator=(const HmacState&) = delete;
  HmacState(HmacState&&) = delete;
  HmacState& operator=(HmacState&&) = delete;
  virtual std::size_t mac(const std::uint8_t* data, std::size_t size,
                          std::uint8_t* out) const noexcept = 0;
};

template <class D>
class KeyedHmac final : public HmacState {
 public:
  KeyedHmac() = default;
  ~KeyedHmac() override {
    OPENSSL_cleanse(&inner_, sizeof inner_);
    OPENSSL_cleanse(&outer_, sizeof outer_);
  }
  KeyedHmac(const KeyedHmac&) = delete;
  KeyedHmac& operator=(const KeyedHmac&) = delete;
  KeyedHmac(KeyedHmac&&) = delete;
  KeyedHmac& operator=(KeyedHmac&&) = delete;

  // RFC 2104: a key longer than the block is hashed first; then zero-padded to the block.
  bool set_key(const std::uint8_t* key, std::size_t size) noexcept {
    unsigned char block[D::kBlock] = {};
    typename D::Ctx ctx{};
    bool ok = true;
    if (size > D::kBlock) {
      ok = D::init(&ctx) == 1 && D::update(&ctx, key, size) == 1 && D::finish(block, &ctx) == 1;
    } else if (size > 0) {
      std::memcpy(block, key, size);
    }
    unsigned char pad[D::kBlock];
    for (std::size_t i = 0; i < D::kBlock; ++i)
      pad[i] = static_cast<unsigned char>(block[i] ^ 0x36U);
    ok = ok && D::init(&inner_) == 1 && D::update(&inner_, pad, sizeof pad) == 1;
    for (std::size_t i = 0; i < D::kBlock; ++i)
      pad[i] = static_cast<unsigned char>(block[i] ^ 0x5cU);
    ok = ok && D::init(&outer_) == 1 && D::update(&outer_, pad, sizeof pad) == 1;
    OPENSSL_cleanse(pad, sizeof pad);
    OPENSSL_cleanse(block, sizeof block);
    OPENSSL_cleanse(&ctx, sizeof ctx);
    return ok;
  }

  std::size_t mac(const std::uint8_t* data, std::size_t size,
                  std::uint8_t* out) const noexcept override {
    typename D::Ctx ctx = inner_;
    unsigned char inner_md[D::kSize];
    bool ok = D::update(&ctx, data, size) == 1 && D::finish(inner_md, &ctx) == 1;
    ctx = outer_;
    ok = ok && D::update(&ctx, inner_md, sizeof inner_md) == 1 && D::finish(out, &ctx) == 1;
    OPENSSL_cleanse(inner_md, sizeof inner_md);
    OPENSSL_cleanse(&ctx, sizeof ctx);
    if (!ok) {
      OPENSSL_cleanse(out, D::kSize);
      return 0;
    }
    return D::kSize;
  }

 private:
  typename D::Ctx inner_{};
  typename D::Ctx outer_{};
};

template <class D>
HmacState* make_state(const std::uint8_t* key, std::size_t size) noexcept {
  std::unique_ptr<KeyedHmac<D>> state(new (std::nothrow) KeyedHmac<D>());
  if (!state || !state->set_key(key, size)) return nullptr;
  return state.release();
}

HmacState* make_state(Algorithm algorithm, const std::uint8_t* key, std::size_t size) noexcept {
  switch (algorithm) {
    case Algorithm::kSha256:
      return make_state<Sha256>(key, size);
    case Algorithm::kSha512:
      return make_state<Sha512>(key, size);
    case Algorithm::kSha1:
      break;
  }
  return make_state<Sha1>(key, size);
}

}  // namespace

Hmac::Hmac(Algorithm algorithm, const SecretBytes& key)
    : ctx_(make_state(algorithm, key.data(), key.size())) {}

Hmac::~Hmac() { delete static_cast<HmacState*>(ctx_); }

std::size_t Hmac::mac(const std::uint8_t* data, std::size_t size, std::uint8_t* out) noexcept {
  const auto* state = static_cast<const HmacState*>(ctx_);
  return state != nullptr ? state->mac(data, size, out) : 0;
}

namespace detail {

std::optional<std::array<unsigned char, kSha256Size>> sha256(std::string_view data) noexcept {
  std::array<unsigned char, kSha256Size> md{};
  SHA256_CTX ctx;
  const bool ok = SHA256_Init(&ctx) == 1 && SHA256_Update(&ctx, data.data(), data.size()) == 1 &&
                  SHA256_Final(md.data(), &ctx) == 1;
  OPENSSL_cleanse(&ctx, sizeof ctx);
  if (!ok) return std::nullopt;
  return md;
}

}  // namespace detail
}  // namespace pbx::totp
