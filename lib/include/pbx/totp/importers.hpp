// Importers: secrets from other TOTP tools (google-authenticator, oath users file, otpauth URI).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pbx/totp/otpauth_uri.hpp"
#include "pbx/totp/result.hpp"
#include "pbx/totp/secret.hpp"
#include "pbx/totp/user.hpp"

namespace pbx::totp {

enum class ImportFormat { kGoogleAuthenticator, kOath, kUri };

// "google-authenticator", "oath", "uri".
const char* import_format_name(ImportFormat format) noexcept;
std::optional<ImportFormat> parse_import_format(std::string_view name);

// Size caps: the source is read up to kMaxImportSize bytes; each format caps itself lower.
inline constexpr std::size_t kMaxImportSize = std::size_t{1024} * 1024;  // a users.oath file
inline constexpr std::size_t kMaxGoogleAuthenticatorSize =
    std::size_t{64} * 1024;                                 // what pam module allows
inline constexpr std::size_t kMaxUriImportSize = 4096 + 2;  // a URI and a newline

struct ImportedSecret {
  OtpParams params;                         // secret, algorithm, digits, period (+ label if any)
  std::vector<SecretString> scratch_codes;  // google-authenticator emergency codes
  // google-authenticator WINDOW_SIZE: codes accepted around now (3 = one step each side).
  std::optional<int> window_size;
  // What the source held that pbx-mfa does not carry over, for the person importing.
  std::vector<std::string> notes;
};

// A ~/.google_authenticator file: base32 secret line, `" OPTION` lines, 8-digit scratch codes.
// HOTP files (`" HOTP_COUNTER`) are refused: pbx-mfa does time-based codes only.
Result<ImportedSecret> parse_google_authenticator(std::string_view text);

// The one line of `user` in a pam_oath / oathtool users file
// (`HOTP/T30[/D] USER PIN HEXSECRET ...`). Event-based `HOTP` lines and PINs are refused.
Result<ImportedSecret> parse_oath_users(std::string_view text, std::string_view user);

// One otpauth://totp/ URI (surrounding white space allowed).
Result<ImportedSecret> parse_otpauth_import(std::string_view text);

Result<ImportedSecret> parse_import(ImportFormat format, std::string_view text,
                                    std::string_view user);

// Reads an import source file for `user`: never through a symlink (refused: kUnsafe), never a
// FIFO, device or directory (kUnsafe), at most kMaxImportSize bytes (kInvalid). Root reads it
// with the filesystem ids of `user` (unless `user` is root), wherever the path points, so a
// link or a relative path cannot make root read what the user may not; a file only root can
// read is refused (kIo) and must come on standard input. Missing or unreadable: kIo.
Result<SecretString> read_import_file(const std::string& path, const User& user);

}  // namespace pbx::totp
