// temp-code: a temporary access code for one user (root; the helpdesk through sudo): shown once,
// stored only as a salted slow hash with its expiry, uses left, issuer and reason; --revoke ends
// it. The lost-phone call, and with enroll_at_login = with-code the key to an enrollment.
#include "pbx/totp/temp_code.hpp"

#include <charconv>
#include <optional>
#include <string>
#include <string_view>

#include "commands.hpp"
#include "duration.hpp"
#include "events_record.hpp"

namespace pbx::cli {
namespace {

// "90", "90s", "30m", "1h", "2d", "1h30m": seconds (a bare number is seconds). nullopt when
// malformed; values over a year are refused here already so nothing overflows.
std::optional<std::int64_t> parse_duration(std::string_view text) {
  constexpr std::int64_t kCap = std::int64_t{366} * 86400;
  if (text.empty()) return std::nullopt;
  std::int64_t total = 0;
  bool bare = true;
  while (!text.empty()) {
    std::int64_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || end == text.data() || n > kCap) return std::nullopt;
    text.remove_prefix(static_cast<std::size_t>(end - text.data()));
    std::int64_t unit = 1;
    if (!text.empty()) {
      auto u = duration_unit(text.front(), /*weeks=*/false);
      if (!u) return std::nullopt;
      unit = *u;
      text.remove_prefix(1);
      bare = false;
    } else if (!bare) {
      return std::nullopt;  // "1h30": the last number needs its unit too
    }
    total += n * unit;
    if (total > kCap) return std::nullopt;
  }
  return total;
}

// "1h", "90m", "2d 1h": a readable form of `seconds` for the text output.
std::string describe_duration(std::int64_t seconds) {
  std::string out;
  auto part = [&](std::int64_t unit, const char* name) {
    if (seconds >= unit) {
      if (!out.empty()) out += ' ';
      out += std::to_string(seconds / unit) + name;
      seconds %= unit;
    }
  };
  part(86400, "d");
  part(3600, "h");
  part(60, "min");
  part(1, "s");
  return out.empty() ? "0s" : out;
}

int revoke(Session& s, totp::Store& store, totp::Verifier& verifier, const totp::User& u,
           const std::string& reason, bool json) {
  auto was = verifier.revoke_temp_code(u);
  if (!was) return fail(s, was.error());
  std::string line = "temp-code revoke user=" + audit_field(u.name);
  if (!reason.empty()) line += " reason=" + audit_field(reason);
  line += *was ? " (the active code no longer works)" : " (none was active)";
  audit(s, line);
  // Revoking when none was active changes nothing: no event.
  if (*was) {
    record_event(s, "temp-code-revoked", u.name,
                 reason.empty() ? "the active code no longer works"
                                : "the active code no longer works, reason: " + reason,
                 &store);
  }
  if (json) {
    print_json(s, {{"user", u.name}, {"revoked", *was}});
  } else if (*was) {
    s.out() << u.name << ": temporary access code revoked; it no longer works\n";
  } else {
    s.out() << u.name << ": no temporary access code was active; nothing to revoke\n";
  }
  return kExitOk;
}

// What the code can do for a user who is not enrolled, as enroll_at_login decides.
void explain_not_enrolled(Session& s, const totp::User& u) {
  if (s.config.enroll_with_code) {
    s.err() << "pbx-mfa: " << u.name
            << " is not enrolled: with enroll_at_login = with-code this code lets " << u.name
            << " enroll at the next login (the QR code is shown after the code is typed)\n";
  } else if (s.config.enroll_at_login) {
    s.err() << "pbx-mfa: warning: " << u.name
            << " is not enrolled, and enroll_at_login = yes enrolls at the next login without "
               "any code; the temp code is stored but not needed\n";
  } else {
    s.err() << "pbx-mfa: warning: " << u.name
            << " is not enrolled and enroll_at_login = no: the temp code is stored but cannot "
               "log "
            << u.name
            << " in (enroll the user, or set enroll_at_login = with-code in pbx-mfa.conf)\n";
  }
}

}  // namespace

Command add_temp_code(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "temp-code", "make a temporary access code for a user, shown once; --revoke ends it (root)");
  auto user = std::make_shared<std::string>();
  auto ttl = std::make_shared<std::string>("1h");
  auto uses = std::make_shared<int>(totp::kTempCodeDefaultUses);
  auto reason = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto revoke_flag = std::make_shared<bool>(false);
  sub->add_option("--user", *user, "the user")->required();
  auto* ttl_opt = sub->add_option(
      "--ttl", *ttl, "how long it is valid: 90s, 30m, 1h, 2d or seconds (default 1h, at most 72h)");
  auto* uses_opt =
      sub->add_option("--uses", *uses, "how many logins it allows (default 1, at most 10)")
          ->check(CLI::Range(1, totp::kTempCodeMaxUses));
  sub->add_option("--reason", *reason, "why, for the log (e.g. a ticket number)");
  sub->add_flag("--revoke", *revoke_flag, "end the user's temporary access code")
      ->excludes(ttl_opt)
      ->excludes(uses_opt);
  sub->add_flag("--json", *json, "print one JSON object");
  return {sub, [user, ttl, uses, reason, json, revoke_flag](Session& s) -> int {
            // Every argument is checked before anything is read or written.
            auto seconds = parse_duration(*ttl);
            if (!seconds) {
              return fail(s, kExitUsage,
                          "--ttl " + *ttl +
                              ": not a duration (a number with s, m, h or d, as in 90s, 30m, "
                              "1h, 2d; a bare number is seconds)");
            }
            if (*seconds < 1 || *seconds > totp::kTempCodeMaxTtl) {
              return fail(s, kExitUsage, "--ttl " + *ttl + ": from 1s to 72h");
            }
            if (!totp::valid_temp_code_reason(*reason)) {
              return fail(s, kExitUsage,
                          "--reason: printable text without control characters, at most " +
                              std::to_string(totp::kMaxTempCodeReason) + " bytes");
            }
            auto u = target_user(s, *user, true);
            if (!u) return fail(s, u.error());
            auto store = open_store(s);
            if (!store) return fail(s, store.error());
            totp::Verifier verifier(s.config, **store, *s.env.clock);
            if (*revoke_flag) return revoke(s, **store, verifier, *u, *reason, *json);

            auto before = verifier.status(*u);
            if (!before) return fail(s, before.error());
            const std::int64_t now = s.env.clock->now();
            // The issuer is who runs pbx-mfa (pbx-mfa(1) TEMP-CODE).
            auto issued = totp::make_temp_code(now, *seconds, *uses, acting_user(s), *reason);
            if (!issued) return fail(s, issued.error());
            if (auto st = verifier.set_temp_code(*u, issued->record); !st) {
              return fail(s, st.error());
            }
            const std::string expires = iso8601(issued->record.expires).get<std::string>();
            std::string line = "temp-code user=" + audit_field(u->name) +
                               " ttl=" + std::to_string(*seconds) +
                               " uses=" + std::to_string(*uses) + " expires=" + expires;
            if (!reason->empty()) line += " reason=" + audit_field(*reason);
            if (!before->enrolled) line += " (not enrolled)";
            if (before->temp_code_active) line += " (replacing an active one)";
            audit(s, line);
            std::string detail = "expires " + expires + ", " + std::to_string(*uses) +
                                 (*uses == 1 ? " use" : " uses");
            if (!reason->empty()) detail += ", reason: " + *reason;
            if (before->temp_code_active) detail += ", replacing an active one";
            if (!before->enrolled) detail += ", not enrolled";
            record_event(s, "temp-code-issued", u->name, detail, store->get());
            if (!before->enrolled) explain_not_enrolled(s, *u);

            if (*json) {
              nlohmann::json j = {{"user", u->name},
                                  {"code", issued->code.str()},
                                  {"expires", expires},
                                  {"uses", *uses}};
              print_secret_json(s, j);
              return kExitOk;
            }
            s.out() << "Temporary access code for " << u->name << " (shown only now):\n\n  "
                    << issued->code.str() << "\n\n"
                    << "Valid until " << expires << " (" << describe_duration(*seconds) << "), for "
                    << *uses << (*uses == 1 ? " login" : " logins")
                    << (before->temp_code_active ? "; the earlier code no longer works" : "")
                    << ".\n"
                    << u->name << " types it at the Security code: prompt instead of a code.\n";
            return kExitOk;
          }};
}

}  // namespace pbx::cli
