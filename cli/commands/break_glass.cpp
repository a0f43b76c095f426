// break-glass: this host's one-time codes for when the database of store = postgresql is down.
#include "pbx/totp/break_glass.hpp"

#include "commands.hpp"

namespace pbx::cli {

Command add_break_glass(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "break-glass", "make this host's one-time codes for when the database is down (root)");
  auto count = std::make_shared<int>(5);
  auto json = std::make_shared<bool>(false);
  sub->add_option("--count", *count, "how many codes (1 to 20, default 5)")
      ->check(CLI::Range(1, totp::kMaxBreakGlassCodes));
  sub->add_flag("--json", *json, "print one JSON object");
  return {sub, [count, json](Session& s) -> int {
            if (auto st = need_database(s); !st) return fail(s, st.error());
            auto codes = totp::make_break_glass_codes(s.config, *count);
            if (!codes) return fail(s, codes.error());
            audit(s, "break-glass codes=" + std::to_string(*count) + " (earlier codes replaced)");
            if (*json) {
              nlohmann::json j = {{"codes", nlohmann::json::array()}};
              for (const auto& c : *codes) j["codes"].push_back(c.str());
              print_secret_json(s, j);
              return kExitOk;
            }
            s.out() << "Break-glass codes for this server. Each works once, for any user, and "
                       "only while the database cannot be reached; earlier codes no longer "
                       "work. Keep them offline:\n";
            for (const auto& c : *codes) s.out() << "  " << c.str() << "\n";
            return kExitOk;
          }};
}

}  // namespace pbx::cli
