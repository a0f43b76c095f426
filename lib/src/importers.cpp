#include "pbx/totp/importers.hpp"

#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <limits>
#include <optional>
#include <vector>

#include "file_util.hpp"
#include "hex.hpp"
#include "pbx/totp/base32.hpp"
#include "pbx/totp/hotp.hpp"
#include "pbx/totp/recovery.hpp"
#include "pbx/totp/strings.hpp"

namespace pbx::totp {
namespace {

constexpr std::size_t kMinSecretBytes = 10;   // 80 bits, what google-authenticator once made
constexpr std::size_t kMaxSecretBytes = 128;  // what the secret file accepts
constexpr int kGaMaxStep = 60;                // google-authenticator's own STEP_SIZE range
constexpr int kGaMaxWindow = 100;             // and WINDOW_SIZE range
constexpr int kMaxImportPeriod = 300;         // what the secret file accepts

Error invalid(std::string message) { return make_error(Errc::kInvalid, std::move(message)); }

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Text files only: NUL bytes and other control characters (and, when !allow_8bit, non-ASCII
// bytes) mean this is not the file it claims to be. Says so without echoing any of it (it may
// hold a secret).
Status check_text(std::string_view text, const char* what, bool allow_8bit) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    auto u = static_cast<unsigned char>(text[i]);
    if (u == '\n' || u == '\r' || u == '\t') continue;
    if (u < 0x20 || u == 0x7F || (u > 0x7F && !allow_8bit)) {
      return invalid(std::string(what) + ": binary data (byte " + std::to_string(i + 1) +
                     "): not a " + what);
    }
  }
  return Ok{};
}

std::optional<int> parse_int(std::string_view text, int lo, int hi) {
  int v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size() || v < lo || v > hi) {
    return std::nullopt;
  }
  return v;
}

Status check_secret_size(const SecretBytes& secret, const std::string& what) {
  if (secret.size() < kMinSecretBytes) {
    return invalid(what + ": the secret is shorter than 80 bits (" +
                   std::to_string(secret.size() * 8) + " bits): too weak to keep; enroll afresh");
  }
  if (secret.size() > kMaxSecretBytes) {
    return invalid(what + ": the secret is longer than 1024 bits");
  }
  return Ok{};
}

std::optional<SecretBytes> decode_hex(std::string_view text) {
  if (text.empty() || text.size() % 2 != 0) return std::nullopt;
  SecretBytes out(text.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    int hi = detail::hex_value(text[2 * i]);
    int lo = detail::hex_value(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.data()[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return out;
}

constexpr const char* kGa = "google-authenticator file";

}  // namespace

const char* import_format_name(ImportFormat format) noexcept {
  switch (format) {
    case ImportFormat::kGoogleAuthenticator:
      return "google-authenticator";
    case ImportFormat::kOath:
      return "oath";
    case ImportFormat::kUri:
      return "uri";
  }
  return "uri";
}

std::optional<ImportFormat> parse_import_format(std::string_view name) {
  if (name == "google-authenticator") return ImportFormat::kGoogleAuthenticator;
  if (name == "oath") return ImportFormat::kOath;
  if (name == "uri") return ImportFormat::kUri;
  return std::nullopt;
}

Result<ImportedSecret> parse_google_authenticator(std::string_view text) {
  if (text.size() > kMaxGoogleAuthenticatorSize) {
    return invalid(std::string(kGa) + ": larger than 64 KiB; not a google-authenticator file");
  }
  if (auto st = check_text(text, kGa, false); !st) return st.error();
  std::vector<std::string_view> lines = split_lines(text, LineEnd::kCrLf);
  if (lines.empty() || trim(lines[0], kWhitespace).empty()) {
    return invalid(std::string(kGa) + ": empty, or no secret on the first line");
  }
  ImportedSecret out;
  out.params.algorithm = Algorithm::kSha1;  // google-authenticator knows no other
  out.params.digits = 6;
  out.params.period = 30;
  {
    auto secret = base32_decode(trim(lines[0], kWhitespace));
    if (!secret) {
      return invalid(std::string(kGa) + ": the first line is not a base32 secret");
    }
    if (auto st = check_secret_size(*secret, kGa); !st) return st.error();
    out.params.secret = std::move(secret.value());
  }

  bool step_seen = false;
  bool window_seen = false;
  bool disallow_reuse = false;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    std::string where = std::string(kGa) + " line " + std::to_string(i + 1);
    std::string_view line = lines[i];
    if (trim(line, kWhitespace).empty()) continue;
    if (line.front() == '"') {
      // `" NAME VALUE...`; google-authenticator reads the first of a repeated option.
      std::vector<std::string_view> f = split_ws(line.substr(1));
      if (f.empty()) continue;
      std::string_view name = f[0];
      if (name == "HOTP_COUNTER") {
        return invalid(std::string(kGa) +
                       " is counter-based (HOTP_COUNTER): pbx-mfa supports time-based codes "
                       "only; enroll afresh with 'pbx-mfa enroll'");
      } else if (name == "TOTP_AUTH") {
        // The default anyway: a file without HOTP_COUNTER is time-based.
      } else if (name == "STEP_SIZE") {
        if (step_seen) continue;
        step_seen = true;
        auto v = f.size() == 2 ? parse_int(f[1], 1, kGaMaxStep) : std::nullopt;
        if (!v) return invalid(where + ": STEP_SIZE must be 1 to 60 seconds");
        out.params.period = *v;
      } else if (name == "WINDOW_SIZE") {
        if (window_seen) continue;
        window_seen = true;
        auto v = f.size() == 2 ? parse_int(f[1], 1, kGaMaxWindow) : std::nullopt;
        if (!v) return invalid(where + ": WINDOW_SIZE must be 1 to 100");
        out.window_size = *v;
      } else if (name == "DISALLOW_REUSE") {
        disallow_reuse = true;  // what follows are used time steps: pbx-mfa keeps its own
      } else if (name == "RATE_LIMIT") {
        std::string limit;
        if (f.size() >= 3 && parse_int(f[1], 1, 100) && parse_int(f[2], 1, 3600)) {
          limit = " (" + std::string(f[1]) + " logins per " + std::string(f[2]) + " s)";
        }
        out.notes.push_back("RATE_LIMIT" + limit +
                            " is not carried over: pbx-mfa locks a user out after max_failures "
                            "wrong codes instead");
      } else if (name == "TIME_SKEW" || name == "RESETTING_TIME_SKEW") {
        out.notes.push_back(std::string(name) +
                            ": the learned clock skew is not carried over; pbx-mfa learns its own");
      } else {
        bool printable_name = name.size() <= 32;
        for (char c : name) {
          if (!((c >= 'A' && c <= 'Z') || c == '_' || is_digit(c))) printable_name = false;
        }
        out.notes.push_back(printable_name ? "option " + std::string(name) + " ignored"
                                           : where + ": unknown option ignored");
      }
      continue;
    }
    // Scratch codes: eight digits, the first not 0 (google-authenticator's own rule).
    std::string_view code = trim(line, kWhitespace);
    bool scratch = code.size() == 8 && code.front() != '0';
    for (char c : code) scratch = scratch && is_digit(c);
    if (!scratch) {
      return invalid(where + ": neither an option nor an 8-digit scratch code");
    }
    if (out.scratch_codes.size() >= static_cast<std::size_t>(kMaxRecoveryCodes)) {
      return invalid(std::string(kGa) + ": more than 20 scratch codes (pbx-mfa keeps at most 20)");
    }
    out.scratch_codes.emplace_back(std::string(code));
  }
  if (!disallow_reuse) {
    out.notes.push_back(
        "the file allowed a code to be used more than once; pbx-mfa accepts each code once");
  }
  return out;
}

Result<ImportedSecret> parse_oath_users(std::string_view text, std::string_view user) {
  constexpr const char* kOath = "oath users file";
  if (text.size() > kMaxImportSize) return invalid("oath users file: larger than 1 MiB");
  if (auto st = check_text(text, kOath, true); !st) return st.error();
  if (user.empty()) return invalid("oath users file: no user name given");
  std::vector<std::string_view> lines = split_lines(text, LineEnd::kCrLf);
  std::optional<std::size_t> found;
  int matches = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::string_view line = trim(lines[i], kWhitespace);
    if (line.empty() || line.front() == '#') continue;
    std::vector<std::string_view> f = split_ws(line);
    if (f.size() >= 2 && f[1] == user) {
      ++matches;
      if (!found) found = i;
    }
  }
  std::string who = "'" + std::string(user) + "'";
  if (matches == 0) return invalid("oath users file: no line for user " + who);
  if (matches > 1) {
    return invalid("oath users file: " + std::to_string(matches) + " lines for user " + who +
                   "; import from a copy holding only the one in use");
  }
  std::string where = "oath users file line " + std::to_string(*found + 1);
  std::vector<std::string_view> f = split_ws(trim(lines[*found], kWhitespace));
  if (f.size() < 4) return invalid(where + ": expected TYPE USER PIN SECRET");

  // TYPE: HOTP, HOTP/E, HOTP/E/D (counter-based) or HOTP/Tn, HOTP/Tn/D (time-based).
  std::string_view type = f[0];
  constexpr std::string_view kHotp = "HOTP";
  if (type.substr(0, kHotp.size()) != kHotp) {
    return invalid(where + ": unknown token type (expected HOTP/T30, HOTP/T60, HOTP/T30/8, ...)");
  }
  std::string_view rest = type.substr(kHotp.size());
  if (rest.empty() || rest == "/E" || rest.substr(0, 3) == "/E/") {
    return invalid(
        where +
        ": the token is counter-based (event) HOTP: pbx-mfa supports time-based codes only "
        "(HOTP/T30 and the like); enroll afresh with 'pbx-mfa enroll'");
  }
  if (rest.substr(0, 2) != "/T") {
    return invalid(where + ": unknown token type (expected HOTP/T30, HOTP/T60, HOTP/T30/8, ...)");
  }
  rest.remove_prefix(2);
  std::size_t slash = rest.find('/');
  auto period = parse_int(rest.substr(0, slash), 1, kMaxImportPeriod);
  if (!period) return invalid(where + ": the time step in HOTP/Tn must be 1 to 300 seconds");
  int digits = 6;
  if (slash != std::string_view::npos) {
    auto d = parse_int(rest.substr(slash + 1), kMinDigits, kMaxDigits);
    if (!d) return invalid(where + ": digits in HOTP/Tn/D must be 6 to 8");
    digits = *d;
  }

  // PIN: pam_oath wants it typed before the code. pbx-mfa has none (the account password is
  // the first factor), and dropping it silently would weaken a login: refuse.
  if (f[2] != "-") {
    return invalid(where +
                   ": the line has a PIN, which pbx-mfa does not support (the account "
                   "password is the first factor); import a copy of the line with '-' "
                   "in the PIN field if that is what you want");
  }
  auto secret = decode_hex(f[3]);
  if (!secret) return invalid(where + ": the secret is not hexadecimal");
  if (auto st = check_secret_size(*secret, where); !st) return st.error();

  ImportedSecret out;
  out.params.account = std::string(user);
  out.params.secret = std::move(*secret);
  out.params.algorithm = Algorithm::kSha1;  // the users file has no other
  out.params.digits = digits;
  out.params.period = *period;
  if (f.size() > 4) {
    out.notes.push_back("the last-used code and counter fields of the line are not carried over");
  }
  return out;
}

Result<ImportedSecret> parse_otpauth_import(std::string_view text) {
  if (text.size() > kMaxUriImportSize) return invalid("otpauth URI: longer than 4 KiB");
  std::string_view uri = trim(text, kWhitespace);
  if (uri.empty()) return invalid("otpauth URI: empty input");
  if (uri.find('\n') != std::string_view::npos) {
    return invalid("otpauth URI: more than one line; give exactly one URI");
  }
  auto params = parse_otpauth_uri(uri);
  if (!params) return params.error();
  if (auto st = check_secret_size(params->secret, "otpauth URI"); !st) return st.error();
  ImportedSecret out;
  out.params = std::move(params.value());
  return out;
}

Result<ImportedSecret> parse_import(ImportFormat format, std::string_view text,
                                    std::string_view user) {
  switch (format) {
    case ImportFormat::kGoogleAuthenticator:
      return parse_google_authenticator(text);
    case ImportFormat::kOath:
      return parse_oath_users(text, user);
    case ImportFormat::kUri:
      return parse_otpauth_import(text);
  }
  return invalid("unknown import format");
}

namespace {

// The user's supplementary groups for a scope (the CLI, single-threaded). setfsuid/setfsgid
// leave the process's own list alone, and root's (group root under sudo) would still open a
// file of group root that the user cannot read.
class GroupsOf {
 public:
  explicit GroupsOf(const User& user) {
    int n = ::getgroups(0, nullptr);
    if (n < 0) return;
    saved_.resize(static_cast<std::size_t>(n));
    if (n > 0 && ::getgroups(n, saved_.data()) != n) return;
    int count = 32;
    std::vector<gid_t> groups(static_cast<std::size_t>(count));
    if (::getgrouplist(user.name.c_str(), user.gid, groups.data(), &count) < 0) {
      groups.resize(static_cast<std::size_t>(count));
      if (::getgrouplist(user.name.c_str(), user.gid, groups.data(), &count) < 0) count = 0;
    }
    groups.resize(static_cast<std::size_t>(count));
    if (groups.empty()) groups.push_back(user.gid);  // unknown to the group database
    if (::setgroups(groups.size(), groups.data()) != 0) return;
    changed_ = true;
  }
  ~GroupsOf() {
    if (changed_) (void)::setgroups(saved_.size(), saved_.data());
  }
  GroupsOf(const GroupsOf&) = delete;
  GroupsOf& operator=(const GroupsOf&) = delete;
  bool ok() const { return changed_; }

 private:
  std::vector<gid_t> saved_;
  bool changed_ = false;
};

}  // namespace

Result<SecretString> read_import_file(const std::string& path, const User& user) {
  if (path.empty()) return invalid("import source: empty file name");
  // Root importing for another user reads with that user's filesystem ids, whatever the path
  // looks like: a relative path, "//home/...", a symlinked directory anywhere on the way are all
  // resolved by the kernel with the user's permissions, so the decision rests on the file
  // actually reached, never on the spelling. A file only root may read is refused; root passes
  // it on standard input instead (an explicit act, not something a link can cause).
  const bool as_user = ::geteuid() == 0 && user.uid != 0;
  std::optional<GroupsOf> groups;
  std::optional<detail::FsIds> ids;
  if (as_user) {
    groups.emplace(user);
    if (!groups->ok()) return make_error(Errc::kIo, "cannot switch to the user's groups");
    ids.emplace(user.uid, user.gid);
    if (!ids->ok()) return make_error(Errc::kIo, "cannot switch to the user's filesystem ids");
  }
  std::string prefix = "import source " + path + ": ";
  // Any owner and mode: the file is the caller's (read with the user's filesystem ids when
  // root imports for another user). Its size is checked below: too large means "not a secret
  // file", a wrong input rather than an unsafe one.
  auto opened = detail::open_checked_file(
      path, FileCheck{std::nullopt, 0, std::numeric_limits<std::size_t>::max()}, "import source");
  if (!opened) {
    struct stat lst {};
    if (opened.error().code == Errc::kUnsafe && ::lstat(path.c_str(), &lst) == 0 &&
        S_ISLNK(lst.st_mode)) {
      return make_error(Errc::kUnsafe,
                        prefix + "is a symbolic link (refused; name the file it points to)");
    }
    if (as_user && opened.error().message.ends_with(detail::errno_text(EACCES))) {
      return make_error(Errc::kIo, opened.error().message + " (read with " + user.name +
                                       "'s file system ids; a file only root may read: pass "
                                       "it on standard input, as SOURCE '-')");
    }
    return opened.error();
  }
  if (!opened->valid()) {
    return make_error(Errc::kIo, prefix + "cannot open: " + detail::errno_text(ENOENT));
  }
  detail::Fd fd = std::move(opened.value());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return make_error(Errc::kIo, prefix + "cannot stat: " + detail::errno_text(errno));
  }
  if (static_cast<std::uint64_t>(st.st_size) > kMaxImportSize) {
    return invalid(prefix + "larger than 1 MiB; not a secret file");
  }
  SecretString content;
  content.reserve(static_cast<std::size_t>(st.st_size) + 1);
  if (int err = detail::read_all_capped(fd.get(), kMaxImportSize, content); err != 0) {
    if (err < 0) return invalid(prefix + "larger than 1 MiB; not a secret file");
    return make_error(Errc::kIo, prefix + "cannot read: " + detail::errno_text(err));
  }
  return content;
}

}  // namespace pbx::totp
