#pragma once

#include <string>

#include <pgbridge/config/config.hpp>
#include <pgbridge/pg/connection.hpp>

namespace pgbridge {

// How pgbridge reaches one side of the bridge as its runtime role (the config's conninfo and
// password file), giving up after timeout_ms.
pg::ConnectOptions side_connect_options(const SideConfig& side, int timeout_ms,
                                        std::string application_name);

}  // namespace pgbridge
