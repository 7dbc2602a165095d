#include <pgbridge/config/side_connection.hpp>

namespace pgbridge {

pg::ConnectOptions side_connect_options(const SideConfig& side, int timeout_ms,
                                        std::string application_name) {
    pg::ConnectOptions o;
    o.conninfo = side.conninfo;
    o.password = side.password;
    o.side = side.name;
    o.connect_timeout_ms = timeout_ms;
    o.application_name = std::move(application_name);
    return o;
}

}  // namespace pgbridge
