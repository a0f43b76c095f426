#include "pbx/totp/state_file.hpp"

#include <openssl/crypto.h>

#include <cstring>

#include "hmac.hpp"

namespace pbx::totp {
namespace {

constexpr std::string_view kMagic{"PBXSTAT\x01", 8};
constexpr std::size_t kSumAt = 8;
constexpr std::size_t kSumSize = 32;
constexpr std::size_t kSequenceAt = 40;
constexpr std::size_t kLengthAt = 48;
constexpr std::size_t kSlotSizeAt = 52;
static_assert(kSlotSizeAt + 4 == kStateSlotHeaderSize);
static_assert(kMaxStateSlotSize <= UINT32_MAX);

void put_le(char* at, std::uint64_t v, std::size_t bytes) {
  for (std::size_t i = 0; i < bytes; ++i) at[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

std::uint64_t get_le(const char* at, std::size_t bytes) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < bytes; ++i) {
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(at[i])) << (8 * i);
  }
  return v;
}

// SHA-256 of [from, end), through detail::sha256: EVP_Digest would initialise OpenSSL and its
// provider in every login of a cold host (bench/login/PROFILE-issue20.md).
bool checksum(const char* from, const char* end, unsigned char (&out)[kSumSize]) {
  static_assert(kSumSize == detail::kSha256Size);
  const auto sum = detail::sha256(std::string_view(from, static_cast<std::size_t>(end - from)));
  if (!sum) return false;
  std::memcpy(out, sum->data(), kSumSize);
  return true;
}

struct Slot {
  bool valid = false;
  std::uint64_t sequence = 0;
  std::string_view payload;
};

Slot read_slot(std::string_view slot) {
  Slot s;
  if (slot.size() < kStateSlotHeaderSize || slot.substr(0, kMagic.size()) != kMagic) return s;
  const std::size_t length = get_le(slot.data() + kLengthAt, 4);
  const std::size_t slot_size = get_le(slot.data() + kSlotSizeAt, 4);
  if (slot_size != slot.size() || length > kMaxStateFileSize ||
      length > slot.size() - kStateSlotHeaderSize) {
    return s;
  }
  unsigned char sum[kSumSize];
  const char* end = slot.data() + kStateSlotHeaderSize + length;
  if (!checksum(slot.data() + kSequenceAt, end, sum) ||
      CRYPTO_memcmp(sum, slot.data() + kSumAt, kSumSize) != 0) {
    return s;
  }
  s.valid = true;
  s.sequence = get_le(slot.data() + kSequenceAt, 8);
  s.payload = slot.substr(kStateSlotHeaderSize, length);
  return s;
}

}  // namespace

std::size_t state_slot_size_for(std::size_t payload_size) noexcept {
  if (payload_size > kMaxStateFileSize) return 0;
  return (kStateSlotHeaderSize + payload_size + kStateSlotAlign - 1) / kStateSlotAlign *
         kStateSlotAlign;
}

bool state_slot_file_size(std::size_t file_size) noexcept {
  return file_size > 0 && file_size % (2 * kStateSlotAlign) == 0 &&
         file_size <= kMaxStateSlotFileSize;
}

bool is_text_state_file(std::string_view bytes) noexcept {
  return bytes.substr(0, 8) == "version ";
}

std::string encode_state_slot(std::string_view payload, std::uint64_t sequence,
                              std::size_t slot_size) {
  std::string out(kStateSlotHeaderSize, '\0');
  out.append(payload);
  std::memcpy(out.data(), kMagic.data(), kMagic.size());
  put_le(out.data() + kSequenceAt, sequence, 8);
  put_le(out.data() + kLengthAt, payload.size(), 4);
  put_le(out.data() + kSlotSizeAt, slot_size, 4);
  unsigned char sum[kSumSize];
  if (!checksum(out.data() + kSequenceAt, out.data() + out.size(), sum)) {
    // A slot without its checksum reads as torn: the store refuses to write one.
    return std::string();
  }
  std::memcpy(out.data() + kSumAt, sum, kSumSize);
  return out;
}

std::string encode_state_file(std::string_view payload, std::uint64_t sequence,
                              std::size_t slot_size) {
  std::string out = encode_state_slot(payload, sequence, slot_size);
  if (out.empty()) return out;
  out.resize(2 * slot_size, '\0');
  return out;
}

StateSlots decode_state_slots(std::string_view bytes) noexcept {
  StateSlots out;
  if (!state_slot_file_size(bytes.size())) return out;
  out.slot_size = bytes.size() / 2;
  Slot a = read_slot(bytes.substr(0, out.slot_size));
  Slot b = read_slot(bytes.substr(out.slot_size));
  // Two valid slots with one number cannot be written by the store; the first then wins.
  if (a.valid && (!b.valid || a.sequence >= b.sequence)) {
    out.newest = 0;
    out.sequence = a.sequence;
    out.payload = a.payload;
  } else if (b.valid) {
    out.newest = 1;
    out.sequence = b.sequence;
    out.payload = b.payload;
  }
  if (a.valid != b.valid) {
    const std::string_view other = bytes.substr(a.valid ? out.slot_size : 0, out.slot_size);
    out.other_damaged = other.find_first_not_of('\0') != std::string_view::npos;
  }
  return out;
}

Result<std::string_view> state_file_text(std::string_view bytes, const std::string& path) {
  const std::string prefix = "state file " + path + ": ";
  if (is_text_state_file(bytes)) {
    if (bytes.size() > kMaxStateFileSize) {
      return make_error(Errc::kUnsafe,
                        prefix + "larger than " + std::to_string(kMaxStateFileSize) + " bytes");
    }
    return bytes;
  }
  if (!state_slot_file_size(bytes.size())) {
    return make_error(Errc::kCorrupt, prefix + std::to_string(bytes.size()) +
                                          " bytes, not a state file (damaged, or not written "
                                          "by pbx-mfa)");
  }
  StateSlots slots = decode_state_slots(bytes);
  if (slots.newest < 0) {
    return make_error(Errc::kCorrupt,
                      prefix + "neither of its two slots holds a valid state (damaged)");
  }
  return slots.payload;
}

}  // namespace pbx::totp
