// The files store's state file: two checksummed slots written in place (its bytes, no I/O).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "pbx/totp/result.hpp"
#include "pbx/totp/state.hpp"

namespace pbx::totp {

// Layout (pam_pbx_totp(8), FILES): two slots of the same size, a multiple of 4096 bytes (4096
// unless a state needs more); the file is exactly two slots long. A slot is
//   0   magic "PBXSTAT\x01"
//   8   SHA-256 of the bytes from offset 40 to the end of the payload
//   40  sequence number (u64, little endian)
//   48  payload length (u32, little endian), at most kMaxStateFileSize
//   52  slot size (u32, little endian), the file's: a slot copied from another file is invalid
//   56  payload: serialize_state()'s text, unchanged
// and the rest of the slot is ignored. The state is the valid slot with the higher sequence
// number; a change goes into the other slot with the next number, in place, then one
// fdatasync: a crash or power cut while it is written leaves that slot invalid (torn) and the
// other one holding the state before. Both invalid: the file is corrupt, never "no state".
inline constexpr std::size_t kStateSlotAlign = 4096;
inline constexpr std::size_t kStateSlotHeaderSize = 56;
inline constexpr std::size_t kMaxStateSlotSize =
    (kStateSlotHeaderSize + kMaxStateFileSize + kStateSlotAlign - 1) / kStateSlotAlign *
    kStateSlotAlign;
inline constexpr std::size_t kMaxStateSlotFileSize = 2 * kMaxStateSlotSize;

// The smallest slot size holding a payload of this many bytes; 0 when it is over
// kMaxStateFileSize.
std::size_t state_slot_size_for(std::size_t payload_size) noexcept;

// Whether a file of this size can be a two-slot state file.
bool state_slot_file_size(std::size_t file_size) noexcept;

// A state file in the format of earlier releases: serialize_state()'s text alone.
bool is_text_state_file(std::string_view bytes) noexcept;

// The bytes of one slot holding `payload` (header and payload, not padded to the slot size).
// `slot_size` must be a valid one for the payload (state_slot_size_for or larger).
std::string encode_state_slot(std::string_view payload, std::uint64_t sequence,
                              std::size_t slot_size);

// A whole new file of two `slot_size` slots: the first holds `payload`, the second zeros
// (invalid), so every block is written once and the file is not sparse.
std::string encode_state_file(std::string_view payload, std::uint64_t sequence,
                              std::size_t slot_size);

// What the two slots of a file's bytes hold.
struct StateSlots {
  int newest = -1;  // the slot holding the state (0 or 1); -1: neither slot is valid
  std::uint64_t sequence = 0;
  std::size_t slot_size = 0;
  std::string_view payload;  // into the bytes given
  // One slot valid and the other neither valid nor the zeros of a new file: a change whose
  // write was cut short (a crash or power cut before its fdatasync) or a damaged disk. The
  // state may then be one change old; a store reading under its lock reports it (take_notice).
  bool other_damaged = false;
};

// The slots of `bytes`, a file of a valid two-slot size (state_slot_file_size).
StateSlots decode_state_slots(std::string_view bytes) noexcept;

// The state text a file's bytes hold: a text-format file as it is, else the newest valid
// slot's payload (a view into `bytes`). kCorrupt when it is neither, with a message that says
// why, names the file ("state file PATH: ...") and never shows a byte of it.
Result<std::string_view> state_file_text(std::string_view bytes, const std::string& path);

}  // namespace pbx::totp
