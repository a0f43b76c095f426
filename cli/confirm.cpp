#include "confirm.hpp"

namespace pbx::cli {
namespace {

constexpr std::size_t kMaxNameLength = 128;  // as the config's issuer

}  // namespace

totp::Result<std::optional<totp::QrStyle>> qr_style(const Session& s, const CLI::Option& qr_opt,
                                                    const std::string& value, bool json) {
  const bool given = qr_opt.count() > 0;
  std::string qr = given ? value : std::string(s.env.out_is_tty ? "ansi" : "none");
  std::optional<totp::QrStyle> style;
  if (qr == "ansi") {
    style = totp::QrStyle::kAnsi;
  } else if (qr == "utf8") {
    style = totp::QrStyle::kUtf8;
  } else if (qr == "ascii") {
    style = totp::QrStyle::kAscii;
  } else if (qr != "none") {
    return totp::make_error(totp::Errc::kInvalid,
                            "--qr: expected ansi, utf8, ascii or none, got '" + value + "'");
  }
  if (json) {
    // stdout carries the JSON object alone; a drawing asked for explicitly would be lost.
    if (given && style) {
      return totp::make_error(totp::Errc::kInvalid, "--qr " + value +
                                                        ": no QR code is drawn with --json (use "
                                                        "--qr none, or leave out --json)");
    }
    style.reset();
  }
  return style;
}

std::optional<std::string> name_problem(std::string_view value) {
  if (value.empty() || value.size() > kMaxNameLength) {
    return "must be 1 to " + std::to_string(kMaxNameLength) + " characters";
  }
  for (char ch : value) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return std::string("must not contain control characters");
    if (c == ':') return std::string("must not contain ':' (it separates issuer and account)");
  }
  return std::nullopt;
}

totp::Status show_secret(Session& s, const std::optional<totp::QrStyle>& qr,
                         const totp::SecretString& grouped, const totp::SecretString& uri,
                         bool to_err) {
  if (to_err) {
    s.err() << "Secret: " << grouped.str() << "\n"
            << "URI:    " << uri.str() << "\n";
    return totp::Ok{};
  }
  if (qr) {
    auto drawing = totp::render_qr(uri.view(), *qr);
    if (!drawing) return drawing.error();
    totp::SecretString picture(std::move(drawing.value()));
    s.out() << "Scan this QR code with an authenticator app:\n\n" << picture.str() << "\n";
  }
  s.out() << "Secret: " << grouped.str() << "\n"
          << "URI:    " << uri.str() << "\n\n";
  return totp::Ok{};
}

int tries(const Session& s) { return s.batch ? 1 : kTries; }

Check confirm(Session& s, std::string_view prompt,
              const std::function<bool(const totp::SecretString& typed)>& matches,
              std::string_view wrong) {
  const int most = tries(s);
  for (int attempt = 1; attempt <= most; ++attempt) {
    s.out().flush();
    if (!s.env.read_secret) return Check::kNoAnswer;
    // Batch mode: a program writes the lines; stderr holds the one message of a failure.
    auto typed = s.env.read_secret(s.batch ? std::string_view() : prompt);
    if (!typed) return Check::kNoAnswer;
    if (matches(*typed)) return Check::kPassed;
    if (attempt < most) {
      s.err() << wrong << " (" << (most - attempt) << " tries left).\n";
    }
  }
  return Check::kWrong;
}

Check confirm_code(Session& s, const totp::NewEnrollment& pending, std::int64_t& step,
                   std::string_view prompt) {
  const std::string wrong = "Wrong code: it does not match the new secret. Type the " +
                            std::to_string(pending.plan().digits) + " digits the app shows now";
  return confirm(
      s, prompt,
      [&](const totp::SecretString& typed) {
        auto m = pending.match(typed.view(), s.config.window, s.env.clock->now());
        if (m) step = *m;
        return m.has_value();
      },
      wrong);
}

Check confirm_password(Session& s, const std::string& user_name) {
  return confirm(
      s, "Password: ",
      [&](const totp::SecretString& typed) {
        // No password checker is a failed check: never a pass.
        return s.env.check_password && s.env.check_password(user_name, typed);
      },
      "Wrong password");
}

std::optional<int> refused_check(Session& s, Check check, std::string_view what,
                                 std::string_view error, std::string_view hint) {
  switch (check) {
    case Check::kPassed:
      return std::nullopt;
    case Check::kWrong: {
      const int most = tries(s);
      return fail_as(s, kExitRejected, error,
                     "wrong " + std::string(what) +
                         (most == 1 ? std::string() : " " + std::to_string(most) + " times") +
                         "; nothing was saved" + std::string(hint));
    }
    case Check::kNoAnswer:
      break;
  }
  return fail_as(s, kExitRejected, "no-answer",
                 "no " + std::string(what) + " entered; nothing was saved");
}

}  // namespace pbx::cli
