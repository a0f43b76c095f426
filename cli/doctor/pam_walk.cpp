#include "pam_walk.hpp"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdint>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "pbx/totp/strings.hpp"

namespace pbx::cli::doctor {
namespace {

constexpr int kSuccess = 0;     // PAM_SUCCESS
constexpr int kPermDenied = 6;  // PAM_PERM_DENIED: PAM_MUST_FAIL_CODE
constexpr int kAuthErr = 7;     // PAM_AUTH_ERR: what a failing module answers here
constexpr int kMaxLevels = 21;  // 3 bits each in 64; the reader stops at depth 17
// What pam_pbx_totp.so answers other than PAM_IGNORE (pam/outcome.hpp): PAM_SUCCESS,
// PAM_AUTH_ERR, PAM_AUTHINFO_UNAVAIL, PAM_SERVICE_ERR, PAM_CONV_ERR, PAM_BUF_ERR; and libpam's
// PAM_MODULE_UNKNOWN when the module cannot be loaded.
constexpr std::array<int, 7> kTotpResults = {kSuccess, kAuthErr, 9, 3, 19, 5, 28};

// libpam/pam_tokens.h, in its order: return values are matched by prefix, first match wins.
constexpr std::array<std::string_view, kReturnValues + 1> kReturnNames = {"success",
                                                                          "open_err",
                                                                          "symbol_err",
                                                                          "service_err",
                                                                          "system_err",
                                                                          "buf_err",
                                                                          "perm_denied",
                                                                          "auth_err",
                                                                          "cred_insufficient",
                                                                          "authinfo_unavail",
                                                                          "user_unknown",
                                                                          "maxtries",
                                                                          "new_authtok_reqd",
                                                                          "acct_expired",
                                                                          "session_err",
                                                                          "cred_unavail",
                                                                          "cred_expired",
                                                                          "cred_err",
                                                                          "no_module_data",
                                                                          "conv_err",
                                                                          "authtok_err",
                                                                          "authtok_recover_err",
                                                                          "authtok_lock_busy",
                                                                          "authtok_disable_aging",
                                                                          "try_again",
                                                                          "ignore",
                                                                          "abort",
                                                                          "authtok_expired",
                                                                          "module_unknown",
                                                                          "bad_item",
                                                                          "conv_again",
                                                                          "incomplete",
                                                                          "default"};
constexpr std::array<std::string_view, 6> kActionNames = {"ignore", "ok",  "done",
                                                          "bad",    "die", "reset"};
constexpr int kUndef = -6;

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

void set_default(std::array<int, kReturnValues>& a, int action) {
  for (int& x : a) {
    if (x == kUndef) x = action;
  }
}

// pam_misc.c's _pam_parse_control; false on a parse error.
bool parse_control(std::string_view tok, std::array<int, kReturnValues>& a) {
  std::size_t i = 0;
  auto rest = [&] { return tok.substr(i); };
  while (i < tok.size()) {
    while (i < tok.size() && is_space(tok[i])) ++i;
    if (i >= tok.size()) break;
    std::size_t ret = 0;
    for (; ret < kReturnNames.size(); ++ret) {
      if (rest().substr(0, kReturnNames[ret].size()) == kReturnNames[ret]) break;
    }
    if (ret == kReturnNames.size()) return false;
    i += kReturnNames[ret].size();
    if (i >= tok.size()) return false;
    while (i < tok.size() && is_space(tok[i])) ++i;
    if (i >= tok.size() || tok[i] != '=') return false;
    ++i;
    while (i < tok.size() && is_space(tok[i])) ++i;
    if (i >= tok.size()) return false;
    int act = 1;
    for (std::size_t k = 0; k < kActionNames.size(); ++k) {
      if (rest().substr(0, kActionNames[k].size()) == kActionNames[k]) {
        act = -static_cast<int>(k);
        i += kActionNames[k].size();
        break;
      }
    }
    if (act > 0) {
      if (i >= tok.size() || std::isdigit(static_cast<unsigned char>(tok[i])) == 0) return false;
      act = 0;
      while (i < tok.size() && std::isdigit(static_cast<unsigned char>(tok[i])) != 0) {
        int digit = tok[i] - '0';
        if (act > (INT_MAX - digit) / 10) return false;
        act = act * 10 + digit;
        ++i;
      }
      if (act == 0) return false;
    }
    if (ret < kReturnValues) {
      a[ret] = act;
    } else {
      set_default(a, act);
    }
  }
  return true;
}

enum Impression : std::uint8_t { kUndefImp, kPositive, kNegative };

// What the dispatcher's loop carries from one entry to the next, plus what the questions need.
// Only the first group is compared when states are merged; the witnesses ride along.
struct State {
  std::size_t pos = 0;
  int prev_level = 0;
  std::uint8_t impression = kUndefImp;
  bool status_ok = false;       // status == PAM_SUCCESS
  std::uint64_t substates = 0;  // 3 bits a level: impression, status_ok
  bool password_ok = false;
  bool totp_ran = false;
  bool totp_failed = false;
  // Witnesses.
  int opener = -1;           // first entry whose jump/done/die skipped the module
  int password_at = -1;      // first password module that succeeded
  int failed_password = -1;  // last password module that failed
  int failed_totp = -1;

  auto key() const {
    return std::make_tuple(pos, prev_level, impression, status_ok, substates, password_ok, totp_ran,
                           totp_failed);
  }
};

void save_level(State& s, int level) {
  if (level < 0 || level >= kMaxLevels) return;
  auto shift = static_cast<unsigned>(level * 3);
  std::uint64_t bits = s.impression | (s.status_ok ? 4U : 0U);
  s.substates = (s.substates & ~(std::uint64_t{7} << shift)) | (bits << shift);
}

void restore_level(State& s, int level) {
  if (level < 0 || level >= kMaxLevels) return;
  auto bits = (s.substates >> static_cast<unsigned>(level * 3)) & 7U;
  s.impression = static_cast<std::uint8_t>(bits & 3U);
  s.status_ok = (bits & 4U) != 0;
}

// Levels deeper than `level` are dead until re-entered (and then saved afresh).
void forget_below(State& s, int level) {
  if (level < 0) level = 0;
  if (level >= kMaxLevels - 1) return;
  auto kept = static_cast<unsigned>(level + 1) * 3U;
  s.substates &= (std::uint64_t{1} << kept) - 1;
}

class Walker {
 public:
  Walker(const std::vector<PamEntry>& flow, std::size_t max_states)
      : flow_(flow), max_states_(max_states) {
    actions_.reserve(flow.size());
    for (const auto& e : flow) {
      std::array<int, kReturnValues> a{};
      a.fill(kUndef);
      if (e.kind == PamEntry::Kind::kFail) {
        a.fill(kActBad);
      } else if (e.kind == PamEntry::Kind::kModule) {
        a = pam_actions(e.control);
      }
      actions_.push_back(a);
      if (e.kind == PamEntry::Kind::kModule) {
        roles_.push_back(module_role(e));
      } else {
        roles_.push_back(ModuleRole::kOther);
      }
      if (e.kind == PamEntry::Kind::kModule && roles_.back() == ModuleRole::kTotp) {
        out_.has_totp = true;
      }
      if (e.kind == PamEntry::Kind::kModule && roles_.back() == ModuleRole::kPassword) {
        out_.has_password = true;
      }
      if ((e.level < 0 || e.level >= kMaxLevels) && out_.incomplete.empty()) {
        out_.incomplete = "substacks nested deeper than " + std::to_string(kMaxLevels - 1);
      }
    }
  }

  PamWalk run() {
    std::vector<State> todo{State{}};
    while (!todo.empty()) {
      State s = todo.back();
      todo.pop_back();
      if (!seen_.insert(s.key()).second) continue;
      if (seen_.size() > max_states_) {
        out_.incomplete = "more than " + std::to_string(max_states_) +
                          " states: too many branches to follow them all";
        break;
      }
      step(s, todo);
    }
    out_.states = seen_.size();
    return out_;
  }

 private:
  // One return value of `candidates` for each different thing libpam can do with entry i's
  // answer (its action, and whether the answer is PAM_SUCCESS).
  // Without `candidates`: every return value libpam knows (PAM_SUCCESS..PAM_INCOMPLETE).
  std::vector<int> distinct_results(std::size_t i, const std::vector<int>& candidates = {}) const {
    std::vector<int> all;
    if (candidates.empty()) {
      for (int r = 0; r < kReturnValues; ++r) all.push_back(r);
    }
    std::vector<int> out;
    std::set<std::pair<int, bool>> seen;
    for (int r : candidates.empty() ? all : candidates) {
      if (seen.insert({actions_[i][static_cast<std::size_t>(r)], r == kSuccess}).second) {
        out.push_back(r);
      }
    }
    return out;
  }

  bool is_totp(std::size_t i) const {
    return flow_[i].kind == PamEntry::Kind::kModule && roles_[i] == ModuleRole::kTotp;
  }
  bool skips_totp(std::size_t from, std::size_t to) const {
    for (std::size_t k = from; k <= to && k < flow_.size(); ++k) {
      if (is_totp(k)) return true;
    }
    return false;
  }

  void finish(const State& s) {
    bool success = s.impression == kPositive && s.status_ok;
    if (!success) return;
    if (s.password_ok && !s.totp_ran && !out_.bypass) {
      out_.bypass = static_cast<std::size_t>(s.opener >= 0 ? s.opener : s.password_at);
      out_.bypass_password = static_cast<std::size_t>(s.password_at);
    }
    if (s.totp_failed && !out_.ignored_failure) {
      out_.ignored_failure = static_cast<std::size_t>(s.failed_totp);
    }
  }

  // One entry of _pam_dispatch_aux's loop, for every result the entry can have.
  void step(const State& in, std::vector<State>& todo) {
    if (in.pos >= flow_.size()) {
      finish(in);
      return;
    }
    const std::size_t i = in.pos;
    const PamEntry& e = flow_[i];
    const int level = e.level;
    State base = in;
    if (base.prev_level < level) save_level(base, level);
    base.prev_level = level;
    if (e.kind == PamEntry::Kind::kSubstack) {
      base.pos = i + 1;
      todo.push_back(base);
      return;
    }
    if (e.kind == PamEntry::Kind::kUnknown) {
      if (out_.incomplete.empty()) {
        out_.incomplete = "the include of '" + e.module + "' at " + e.where + " is not followed";
        if (e.module.empty()) {
          out_.incomplete = "an include at " + e.where + " names a file outside the directory";
        }
      }
      base.pos = i + 1;
      forget_below(base, level);
      todo.push_back(base);
      return;
    }
    std::vector<int> results;
    if (e.kind == PamEntry::Kind::kFail) {
      results = {kPermDenied};
    } else {
      switch (roles_[i]) {
        case ModuleRole::kPermit:
          results = {kSuccess};
          break;
        case ModuleRole::kDeny:
          results = {kAuthErr};
          break;
        case ModuleRole::kPassword:
          results = {kSuccess, kAuthErr};
          break;
        case ModuleRole::kTotp:
          // Every failure the module answers (pam/outcome.hpp), not only a wrong code: a
          // conversation the client breaks off or a database row it refuses must not slip
          // through a control that ignores everything but auth_err.
          results = distinct_results(i, {kTotpResults.begin(), kTotpResults.end()});
          break;
        default:
          // Any module doctor does not know may answer anything.
          results = distinct_results(i);
      }
    }
    if (is_totp(i)) {
      out_.module_runs = true;
      if (!base.password_ok && out_.has_password && !out_.unguarded) {
        out_.unguarded = i;
        if (base.failed_password >= 0) {
          out_.unguarded_after = static_cast<std::size_t>(base.failed_password);
        }
      }
    }
    for (int retval : results) {
      State s = base;
      if (e.kind == PamEntry::Kind::kModule) record_result(s, i, retval);
      apply(s, i, level, retval);
      forget_below(s, level);
      todo.push_back(s);
    }
  }

  void record_result(State& s, std::size_t i, int retval) {
    if (roles_[i] == ModuleRole::kPassword) {
      if (retval == kSuccess) {
        if (!s.password_ok) s.password_at = static_cast<int>(i);
        s.password_ok = true;
      } else {
        s.failed_password = static_cast<int>(i);
      }
    }
    if (roles_[i] == ModuleRole::kTotp) {
      s.totp_ran = true;
      if (retval != kSuccess) {
        if (!s.totp_failed) s.failed_totp = static_cast<int>(i);
        s.totp_failed = true;
      }
    }
  }

  // The switch on the action; leaves s.pos at the next entry to run.
  void apply(State& s, std::size_t i, int level, int retval) {
    int action = actions_[i][static_cast<std::size_t>(retval)];
    std::size_t h = i;
    bool decided = false;
    switch (action) {
      case kActReset:
        restore_level(s, level);
        break;
      case kActOk:
      case kActDone:
        if (s.impression == kUndefImp || (s.impression == kPositive && s.status_ok)) {
          s.impression = kPositive;
          s.status_ok = retval == kSuccess;
        }
        decided = s.impression == kPositive && action == kActDone;
        break;
      case kActBad:
      case kActDie:
        if (s.impression != kNegative) {
          s.impression = kNegative;
          s.status_ok = retval == kSuccess;
        }
        decided = action == kActDie;
        break;
      case kActIgnore:
        break;
      default:
        if (action > 0) {
          // Skip `action` entries of this level, a substack with everything in it counting as one.
          while (h + 1 < flow_.size() && flow_[h + 1].level >= level && action > 0) {
            do {
              ++h;
            } while (h + 1 < flow_.size() && flow_[h + 1].level > level);
            --action;
          }
        }
        if (action != 0) {  // a jump past the end of its (sub)stack: "bad jump in stack"
          s.impression = kNegative;
          s.status_ok = false;
        }
        if (h > i && s.opener < 0 && skips_totp(i + 1, h)) s.opener = static_cast<int>(i);
        break;
    }
    if (decided) {
      while (h + 1 < flow_.size() && flow_[h + 1].level >= level) ++h;
      if (h > i && s.opener < 0 && skips_totp(i + 1, h)) s.opener = static_cast<int>(i);
    }
    s.pos = h + 1;
  }

  const std::vector<PamEntry>& flow_;
  std::size_t max_states_;
  std::vector<std::array<int, kReturnValues>> actions_;
  std::vector<ModuleRole> roles_;
  std::set<decltype(State{}.key())> seen_;
  PamWalk out_;
};

}  // namespace

PamWalk walk_auth_flow(const std::vector<PamEntry>& flow, std::size_t max_states) {
  return Walker(flow, max_states).run();
}

bool is_password_module(std::string_view base_name) {
  static constexpr std::array<std::string_view, 11> kPasswordModules = {
      "pam_unix.so", "pam_unix2.so",   "pam_sss.so",         "pam_ldap.so",
      "pam_krb5.so", "pam_winbind.so", "pam_userdb.so",      "pam_radius_auth.so",
      "pam_pwdb.so", "pam_tacplus.so", "pam_systemd_home.so"};
  return std::find(kPasswordModules.begin(), kPasswordModules.end(), base_name) !=
         kPasswordModules.end();
}

bool is_totp_entry(const PamEntry& e) {
  if (e.module == kTotpModule) return true;
  return !e.path.empty() && totp::base_name(e.path) == kTotpModule;
}

ModuleRole module_role(const PamEntry& e) {
  if (is_totp_entry(e)) return ModuleRole::kTotp;
  if (is_password_module(e.module)) return ModuleRole::kPassword;
  if (e.module == "pam_permit.so") return ModuleRole::kPermit;
  if (e.module == "pam_deny.so") return ModuleRole::kDeny;
  return ModuleRole::kOther;
}

std::array<int, kReturnValues> pam_actions(std::string_view control) {
  std::array<int, kReturnValues> a{};
  a.fill(kUndef);
  std::string lower = totp::to_lower(control);
  constexpr int kNewAuthtokReqd = 12;
  constexpr int kIgnore = 25;
  auto fixed = [&](int on_success, int dflt, bool ignore_ignored) {
    a[kSuccess] = on_success;
    a[kNewAuthtokReqd] = on_success;
    if (ignore_ignored) a[kIgnore] = kActIgnore;
    set_default(a, dflt);
  };
  if (lower == "required") {
    fixed(kActOk, kActBad, true);
  } else if (lower == "requisite") {
    fixed(kActOk, kActDie, true);
  } else if (lower == "optional") {
    fixed(kActOk, kActIgnore, false);
  } else if (lower == "sufficient") {
    fixed(kActDone, kActIgnore, false);
  } else {
    std::string_view tok = control;
    if (!tok.empty() && tok.front() == '[') tok.remove_prefix(1);
    if (!tok.empty() && tok.back() == ']') tok.remove_suffix(1);
    if (!parse_control(tok, a)) a.fill(kActBad);
    set_default(a, kActBad);
  }
  return a;
}

}  // namespace pbx::cli::doctor
