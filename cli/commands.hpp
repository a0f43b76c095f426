// One registration function per subcommand: commands/<name>.cpp, doctor in doctor/.
#pragma once

#include "session.hpp"

namespace pbx::cli {

Command add_enroll(CLI::App& app);
Command add_import(CLI::App& app);
Command add_status(CLI::App& app);
Command add_verify(CLI::App& app);
Command add_recovery_codes(CLI::App& app);
Command add_reset(CLI::App& app);
Command add_unlock(CLI::App& app);
Command add_doctor(CLI::App& app);
Command add_db(CLI::App& app);
Command add_break_glass(CLI::App& app);
Command add_temp_code(CLI::App& app);
Command add_require(CLI::App& app);
Command add_list(CLI::App& app);
Command add_device(CLI::App& app);
Command add_events(CLI::App& app);

}  // namespace pbx::cli
