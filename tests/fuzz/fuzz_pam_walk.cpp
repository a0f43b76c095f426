// doctor's walk of PAM auth stacks (cli/doctor/pam_walk.hpp) over the flows PamStackReader
// reads from files in memory (virtual_files.hpp: the input is the service "sshd" and the files
// after it). The walk ends within its state cap, gives the same answer twice, and its witnesses
// are the entries they claim to be. For flows of at most kOracleBranches two-way entries, every
// path is also run one by one, without merging states, by a plain transcription of libpam's
// _pam_dispatch_aux: both must find the same bypass, ignored failure and unguarded module.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "doctor/pam_walk.hpp"
#include "fuzz_check.hpp"
#include "virtual_files.hpp"

using namespace pbx::cli::doctor;

namespace {

const std::string kDir = "/etc/pam.d";
constexpr std::size_t kMaxServices = 8;
constexpr std::uint64_t kOraclePaths = 4096;
constexpr std::size_t kMaxLevels = 32;

struct Oracle {
  bool bypass = false;
  bool ignored_failure = false;
  bool unguarded = false;
  bool module_runs = false;
};

bool two_way(const PamEntry& e) {
  if (e.kind != PamEntry::Kind::kModule) return false;
  ModuleRole r = module_role(e);
  return r != ModuleRole::kPermit && r != ModuleRole::kDeny;
}

// What an entry may answer: a password module succeeds or fails (PAM_AUTH_ERR); the module
// answers what pam/outcome.hpp lists (and PAM_MODULE_UNKNOWN when it cannot be loaded); any
// other module anything. Values libpam treats alike (same action, both or neither
// PAM_SUCCESS) are kept once.
std::vector<int> answers(const PamEntry& e) {
  std::vector<int> candidates;
  ModuleRole r = module_role(e);
  if (r == ModuleRole::kPassword) {
    candidates = {0, 7};
  } else if (r == ModuleRole::kTotp) {
    candidates = {0, 7, 9, 3, 19, 5, 28};
  } else {
    for (int v = 0; v < kReturnValues; ++v) candidates.push_back(v);
  }
  std::array<int, kReturnValues> actions = pam_actions(e.control);
  std::vector<int> out;
  for (int v : candidates) {
    bool same = false;
    for (int w : out) {
      same =
          same || (actions[static_cast<std::size_t>(w)] == actions[static_cast<std::size_t>(v)] &&
                   (w == 0) == (v == 0));
    }
    if (!same) out.push_back(v);
  }
  return out;
}

// One path: `choice` picks, in mixed radix, the answer of each two-way entry.
void run_path(const std::vector<PamEntry>& flow, std::uint64_t choice, bool has_password,
              Oracle& o) {
  enum { kUndef, kPos, kNeg };
  int impression = kUndef;
  bool ok = false;
  int saved_imp[kMaxLevels] = {};
  bool saved_ok[kMaxLevels] = {};
  int prev_level = 0;
  bool password_ok = false, totp_ran = false, totp_failed = false;
  for (std::size_t h = 0; h < flow.size(); ++h) {
    const PamEntry& e = flow[h];
    int level = e.level;
    if (prev_level < level && static_cast<std::size_t>(level) < kMaxLevels) {
      saved_imp[level] = impression;
      saved_ok[level] = ok;
    }
    prev_level = level;
    if (e.kind == PamEntry::Kind::kSubstack || e.kind == PamEntry::Kind::kUnknown) continue;
    int retval = 6;
    std::array<int, kReturnValues> actions{};
    actions.fill(kActBad);
    if (e.kind == PamEntry::Kind::kModule) {
      actions = pam_actions(e.control);
      ModuleRole r = module_role(e);
      if (r == ModuleRole::kPermit) {
        retval = 0;
      } else if (r == ModuleRole::kDeny) {
        retval = 7;
      } else {
        std::vector<int> a = answers(e);
        retval = a[choice % a.size()];
        choice /= a.size();
      }
      if (r == ModuleRole::kTotp) {
        o.module_runs = true;
        if (!password_ok && has_password) o.unguarded = true;
        totp_ran = true;
        totp_failed = totp_failed || retval != 0;
      }
      if (r == ModuleRole::kPassword && retval == 0) password_ok = true;
    }
    int action = actions[static_cast<std::size_t>(retval)];
    bool decided = false;
    if (action == kActReset) {
      if (static_cast<std::size_t>(level) < kMaxLevels) {
        impression = saved_imp[level];
        ok = saved_ok[level];
      }
    } else if (action == kActOk || action == kActDone) {
      if (impression == kUndef || (impression == kPos && ok)) {
        impression = kPos;
        ok = retval == 0;
      }
      decided = impression == kPos && action == kActDone;
    } else if (action == kActBad || action == kActDie) {
      if (impression != kNeg) {
        impression = kNeg;
        ok = retval == 0;
      }
      decided = action == kActDie;
    } else if (action > 0) {
      while (h + 1 < flow.size() && flow[h + 1].level >= level && action > 0) {
        do {
          ++h;
        } while (h + 1 < flow.size() && flow[h + 1].level > level);
        --action;
      }
      if (action != 0) {
        impression = kNeg;
        ok = false;
      }
    }
    if (decided) {
      while (h + 1 < flow.size() && flow[h + 1].level >= level) ++h;
    }
  }
  bool success = impression == kPos && ok;
  if (success && password_ok && !totp_ran) o.bypass = true;
  if (success && totp_failed) o.ignored_failure = true;
}

void check_flow(const std::vector<PamEntry>& flow) {
  PamWalk w = walk_auth_flow(flow);
  PamWalk again = walk_auth_flow(flow);
  FUZZ_CHECK(w.states <= kMaxWalkStates + 1);
  FUZZ_CHECK(w.states == again.states && w.bypass == again.bypass &&
             w.ignored_failure == again.ignored_failure && w.unguarded == again.unguarded &&
             w.incomplete == again.incomplete);
  auto is_kind = [&](std::optional<std::size_t> i, ModuleRole role) {
    return i && *i < flow.size() && flow[*i].kind == PamEntry::Kind::kModule &&
           module_role(flow[*i]) == role;
  };
  bool any_totp = false, any_password = false;
  for (const auto& e : flow) {
    any_totp = any_totp || (e.kind == PamEntry::Kind::kModule && is_totp_entry(e));
    any_password = any_password ||
                   (e.kind == PamEntry::Kind::kModule && module_role(e) == ModuleRole::kPassword);
  }
  FUZZ_CHECK(w.has_totp == any_totp && w.has_password == any_password);
  if (w.bypass) {
    FUZZ_CHECK(*w.bypass < flow.size());
    FUZZ_CHECK(is_kind(w.bypass_password, ModuleRole::kPassword));
  }
  if (w.ignored_failure) FUZZ_CHECK(is_kind(w.ignored_failure, ModuleRole::kTotp));
  if (w.unguarded) {
    FUZZ_CHECK(is_kind(w.unguarded, ModuleRole::kTotp) && w.has_password && w.module_runs);
  }
  if (w.unguarded_after) FUZZ_CHECK(is_kind(w.unguarded_after, ModuleRole::kPassword));
  if (!any_totp) FUZZ_CHECK(!w.module_runs && !w.ignored_failure && !w.unguarded);

  // The oracle, where it is cheap and the walk finished.
  std::uint64_t paths = 1;
  for (const auto& e : flow) {
    if (two_way(e)) paths *= answers(e).size();
    if (paths > kOraclePaths) return;
  }
  if (!w.incomplete.empty()) return;
  for (const auto& e : flow) {
    if (static_cast<std::size_t>(e.level) >= kMaxLevels) return;
  }
  Oracle o;
  for (std::uint64_t choice = 0; choice < paths; ++choice) {
    run_path(flow, choice, any_password, o);
  }
  FUZZ_CHECK(o.bypass == w.bypass.has_value());
  FUZZ_CHECK(o.ignored_failure == w.ignored_failure.has_value());
  FUZZ_CHECK(o.unguarded == w.unguarded.has_value());
  FUZZ_CHECK(o.module_runs == w.module_runs);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  VirtualFiles vf = split_into_files(input, kDir, "sshd");
  PamStackReader reader(kDir, vf.files);
  std::set<std::string> done;
  for (const auto& service : vf.names) {
    if (done.size() >= kMaxServices) break;
    if (!done.insert(service).second) continue;
    std::vector<PamEntry> flow = reader.auth_flow(service);
    for (const auto& e : flow) {
      FUZZ_CHECK(e.level >= 0);
      if (e.kind != PamEntry::Kind::kModule) FUZZ_CHECK(e.args.empty() && e.path.empty());
    }
    check_flow(flow);
  }
  return 0;
}
