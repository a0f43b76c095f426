// A libpq connection string taken apart as libpq does, without libpq (the CLI does not link it).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "pbx/totp/result.hpp"

namespace pbx::cli::doctor {

using ConninfoParams = std::map<std::string, std::string>;

// The keywords and values of a conninfo as PQconninfoParse() gives them: "key=value ..." (values
// quoted with '...', backslash escapes) or a postgresql:// (postgres://) URI, whose user,
// password, host list, port list and dbname are stored under those keywords and whose query
// parameters are percent-decoded (ssl=true is sslmode=require). A keyword given twice keeps the
// later value. Keywords are not checked against libpq's list. Errors never quote the text: it
// may hold a password.
totp::Result<ConninfoParams> parse_conninfo(std::string_view text);

// One element of the host list, as libpq tries it.
struct ConninfoHost {
  std::string name;  // host, else hostaddr; "" for libpq's default socket directory
  bool tcp = false;  // false: a Unix socket (an absolute path, '@' abstract name, or the default)
};

// The hosts libpq would try, in order: host and hostaddr split at commas and paired by position
// (libpq refuses lists of different lengths; here the longer one counts, its extra elements
// unpaired). A hostaddr makes its element TCP whatever host says.
std::vector<ConninfoHost> conninfo_hosts(const ConninfoParams& params);

}  // namespace pbx::cli::doctor
