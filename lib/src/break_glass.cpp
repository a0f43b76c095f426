#include "pbx/totp/break_glass.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

#include "file_util.hpp"
#include "hex.hpp"
#include "text_format.hpp"

namespace pbx::totp {
namespace {

constexpr const char* kWhat = "break-glass file";
constexpr int kLockTimeoutMs = 5000;

struct BreakGlassSet {
  RecoverySet codes;
  std::vector<int> used;
  int failures = 0;  // wrong answers since the set was made or unlocked
};

Error corrupt(const std::string& why) {
  return make_error(Errc::kCorrupt, std::string(kWhat) + ": " + why);
}

std::string serialize(const BreakGlassSet& set) {
  std::string s = "# pbx-mfa break-glass codes: accepted only while the database is unreachable\n";
  s += "version 1\n";
  s += "salt " + set.codes.salt + "\n";
  s += "kdf " + kdf_text(set.codes.kdf) + "\n";
  for (const auto& h : set.codes.hashes) s += "code " + h + "\n";
  if (!set.used.empty()) s += "used " + detail::index_list(set.used) + "\n";
  if (set.failures > 0) s += "failures " + std::to_string(set.failures) + "\n";
  return s + "end\n";
}

Result<BreakGlassSet> parse(std::string_view text) {
  auto lines = detail::parse_key_values(text, kWhat);
  if (!lines) return lines.error();
  BreakGlassSet set;
  bool have_kdf = false;
  bool have_failures = false;
  for (const auto& kv : *lines) {
    if (kv.key == "salt" && set.codes.salt.empty()) {
      if (!detail::is_hex(kv.value, 32)) return corrupt("bad salt");
      set.codes.salt = kv.value;
    } else if (kv.key == "kdf" && !have_kdf) {
      if (!parse_kdf_text(kv.value, set.codes.kdf)) return corrupt("bad kdf");
      have_kdf = true;
    } else if (kv.key == "code") {
      if (!detail::is_hex(kv.value, 64) ||
          set.codes.hashes.size() >= static_cast<std::size_t>(kMaxBreakGlassCodes)) {
        return corrupt("bad code hash");
      }
      set.codes.hashes.push_back(kv.value);
    } else if (kv.key == "used" && set.used.empty()) {
      if (!detail::parse_index_list(kv.value, kMaxBreakGlassCodes - 1, kMaxBreakGlassCodes,
                                    set.used)) {
        return corrupt("bad used list");
      }
    } else if (kv.key == "failures" && !have_failures) {
      // Never written above the limit: a larger count is not ours, and fails closed.
      std::int64_t n = 0;
      if (!detail::parse_i64(kv.value, 1, kBreakGlassMaxFailures, n)) {
        return corrupt("bad failure count");
      }
      set.failures = static_cast<int>(n);
      have_failures = true;
    } else {
      return corrupt("line " + std::to_string(kv.line) + ": unexpected");
    }
  }
  if (set.codes.salt.empty() || !have_kdf) return corrupt("no salt or kdf");
  // Each mark names a code of the set, once.
  std::vector<bool> marked(set.codes.hashes.size(), false);
  for (int i : set.used) {
    auto k = static_cast<std::size_t>(i);
    if (k >= marked.size() || marked[k]) return corrupt("bad used list");
    marked[k] = true;
  }
  return set;
}

// A leading dot: user names become file names with a leading dot escaped, so never this one.
std::string lock_path(const Config& config) { return config.state_dir + "/.break-glass.lock"; }

Result<std::optional<BreakGlassSet>> read_set(const Config& config) {
  auto text = detail::read_private_file(break_glass_path(config), config.trusted_uid,
                                        std::size_t{16} * 1024, kWhat);
  if (!text) return text.error();
  if (!text->has_value()) return std::optional<BreakGlassSet>{};
  auto set = parse((*text)->view());
  if (!set) return set.error();
  return std::optional<BreakGlassSet>(std::move(set.value()));
}

// Checks state_dir and takes the break-glass lock: every change of the set, and every answer,
// happens while the returned descriptor is open.
Result<detail::Fd> lock_set(const Config& config, bool create_dir) {
  if (auto st =
          detail::check_private_dir(config.state_dir, config.trusted_uid, create_dir, "state_dir");
      !st) {
    return st.error();
  }
  return detail::lock_file(lock_path(config), config.trusted_uid, kLockTimeoutMs);
}

Status write_set(const Config& config, const BreakGlassSet& set) {
  detail::WriteOptions opts;
  opts.mode = 0600;
  opts.sync_dir = true;  // a used code must stay used after a power cut
  return detail::write_file_atomic(break_glass_path(config), serialize(set), opts, kWhat);
}

}  // namespace

std::string break_glass_path(const Config& config) { return config.state_dir + "/break-glass"; }

Result<std::vector<SecretString>> make_break_glass_codes(const Config& config, int count,
                                                         const KdfParams& kdf) {
  if (count < 1 || count > kMaxBreakGlassCodes) {
    return make_error(Errc::kInvalid, "break-glass code count must be 1 to 20");
  }
  auto lock = lock_set(config, true);
  if (!lock) return lock.error();
  auto codes = generate_recovery_codes(count, kBreakGlassGroups);
  if (!codes) return codes.error();
  auto hashed = hash_recovery_codes(*codes, kdf);
  if (!hashed) return hashed.error();
  BreakGlassSet set;
  set.codes = std::move(hashed.value());
  if (auto st = write_set(config, set); !st) return st.error();
  return codes;
}

Result<int> break_glass_left(const Config& config) {
  auto status = break_glass_status(config);
  if (!status) return status.error();
  return status->left;
}

Result<BreakGlassStatus> break_glass_status(const Config& config) {
  auto set = read_set(config);
  if (!set) return set.error();
  BreakGlassStatus status;
  if (!set->has_value()) return status;
  status.codes = static_cast<int>((*set)->codes.hashes.size());
  status.left = status.codes - static_cast<int>((*set)->used.size());
  status.failures = (*set)->failures;
  return status;
}

Result<BreakGlassAnswer> answer_break_glass(const Config& config, std::string_view input) {
  BreakGlassAnswer answer;
  // Only the shape of a break-glass code costs a slow hash, or counts: a TOTP code typed out of
  // habit is no guess at a break-glass code.
  SecretString normalized = normalize_recovery_code(input);
  if (normalized.view().size() != static_cast<std::size_t>(kBreakGlassGroups) * 4 ||
      !std::all_of(normalized.view().begin(), normalized.view().end(),
                   [](char c) { return c >= 'a' && c <= 'z'; })) {
    return answer;
  }
  auto lock = lock_set(config, false);
  if (!lock) return lock.error();
  auto set = read_set(config);
  if (!set) return set.error();
  if (!set->has_value()) return answer;
  BreakGlassSet& bg = **set;
  answer.failures = bg.failures;
  answer.left = static_cast<int>(bg.codes.hashes.size()) - static_cast<int>(bg.used.size());
  if (bg.failures >= kBreakGlassMaxFailures) {
    answer.verdict = BreakGlassVerdict::kLocked;
    return answer;
  }
  // Counted as wrong before the hash: a process killed in between has used up an attempt.
  ++bg.failures;
  if (auto st = write_set(config, bg); !st) return st.error();
  auto idx = match_recovery_code(bg.codes, input, bg.used);
  if (!idx) return idx.error();
  if (!idx->has_value()) {
    answer.verdict = BreakGlassVerdict::kWrong;
    answer.failures = bg.failures;
    return answer;
  }
  bg.used.push_back(**idx);
  --bg.failures;
  // Recorded before it is accepted: a code that cannot be marked used is not accepted.
  if (auto st = write_set(config, bg); !st) return st.error();
  answer.verdict = BreakGlassVerdict::kAccepted;
  answer.failures = bg.failures;
  answer.left -= 1;
  return answer;
}

Result<bool> use_break_glass_code(const Config& config, std::string_view input) {
  auto answer = answer_break_glass(config, input);
  if (!answer) return answer.error();
  return answer->verdict == BreakGlassVerdict::kAccepted;
}

Result<int> unlock_break_glass(const Config& config) {
  auto lock = lock_set(config, false);
  if (!lock) return lock.error();
  auto set = read_set(config);
  if (!set) return set.error();
  if (!set->has_value() || (*set)->failures == 0) return 0;
  int forgotten = (*set)->failures;
  (*set)->failures = 0;
  if (auto st = write_set(config, **set); !st) return st.error();
  return forgotten;
}

}  // namespace pbx::totp
