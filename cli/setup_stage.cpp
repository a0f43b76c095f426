#include "setup_stage.hpp"

#include <string>
#include <utility>

#include "pbx/totp/base32.hpp"
#include "pbx/totp/hotp.hpp"
#include "pbx/totp/qr.hpp"

namespace pbx::cli {

void add_stage_flags(CLI::App& sub, StageOptions& o) {
  sub.add_flag("--begin", o.begin,
               "with --json: make a secret and print it with its QR code; save nothing");
  sub.add_flag("--finish", o.finish,
               "with --json: read the key, the code(s) and the password from stdin; save");
}

totp::Result<Stage> stage_of(Session& s, const StageOptions& o, bool json, bool no_confirm) {
  if (!o.begin && !o.finish) return Stage::kKeyboard;
  s.batch = json;  // a usage error below is then a JSON object too
  const std::string flag = o.begin ? "--begin" : "--finish";
  if (o.begin && o.finish) {
    return totp::make_error(totp::Errc::kInvalid, "--begin and --finish are two separate runs");
  }
  if (!json) {
    return totp::make_error(totp::Errc::kInvalid,
                            flag + " needs --json (it is for programs such as the web console)");
  }
  if (no_confirm) {
    return totp::make_error(totp::Errc::kInvalid,
                            flag + " and --no-confirm do not go together (--finish confirms)");
  }
  return o.begin ? Stage::kBegin : Stage::kFinish;
}

std::optional<int> new_secret(Session& s, Stage stage, const totp::EnrollmentPlan& plan,
                              std::string_view command, std::optional<totp::NewEnrollment>& out) {
  if (stage != Stage::kFinish) {
    auto created = totp::NewEnrollment::create(plan);
    if (!created) return fail(s, created.error());
    out = std::move(created.value());
    return std::nullopt;
  }
  // No prompt: a program writes the lines (as confirm() in batch mode).
  auto typed = s.env.read_secret ? s.env.read_secret("") : std::nullopt;
  if (!typed) return fail_as(s, kExitRejected, "no-answer", "no key entered; nothing was saved");
  auto key = totp::base32_decode(typed->view());
  auto restored = key ? totp::NewEnrollment::restore(plan, std::move(key.value()))
                      : totp::Result<totp::NewEnrollment>(key.error());
  if (!restored) {
    return fail_as(s, kExitUsage, "invalid-key",
                   "the key is not one `" + std::string(command) + " --begin` made (" +
                       restored.error().message + "); nothing was saved");
  }
  out = std::move(restored.value());
  return std::nullopt;
}

int print_begin(Session& s, const totp::NewEnrollment& pending, nlohmann::json fields) {
  const totp::EnrollmentPlan& plan = pending.plan();
  totp::SecretString uri = pending.uri();
  auto matrix = totp::qr_matrix(uri.view());
  if (!matrix) return fail(s, matrix.error());
  nlohmann::json modules = nlohmann::json::array();
  for (const auto& row : matrix->rows) modules.push_back(row.str());
  fields["issuer"] = plan.issuer;
  fields["account"] = plan.account;
  fields["algorithm"] = totp::algorithm_name(plan.algorithm);
  fields["digits"] = plan.digits;
  fields["period"] = plan.period;
  fields["secret"] = pending.secret_base32().str();
  fields["secret_grouped"] = pending.secret_grouped().str();
  fields["otpauth_uri"] = uri.str();
  fields["qr"] = {{"size", matrix->size}, {"modules", std::move(modules)}};
  print_secret_json(s, fields);
  return kExitOk;
}

}  // namespace pbx::cli
