#include <fmt/format.h>

#include <pgbridge/cli/side_record.hpp>
#include <pgbridge/config/side_connection.hpp>
#include <pgbridge/core/error.hpp>

namespace pgbridge::cli {

std::string plain(const nlohmann::json& value) {
    if (value.is_null()) {
        return "-";
    }
    return value.is_string() ? value.get<std::string>() : value.dump();
}

pg::Connection open_side(const Config& config, const SideConfig& side,
                         std::string_view application_name) {
    return pg::Connection::open(
        side_connect_options(side, config.engine.timeout_ms, std::string(application_name)));
}

SideRecordId parse_side_record_id(const Config& config, const std::string& text,
                                  std::string_view what) {
    const auto colon = text.rfind(':');
    SideRecordId id;
    if (colon != std::string::npos) {
        id.side = text.substr(0, colon);
        id.number = text.substr(colon + 1);
        config.side(id.side);  // throws for an unknown side
    } else {
        id.number = text;
    }
    if (id.number.empty() || id.number.size() > 18 ||
        id.number.find_first_not_of("0123456789") != std::string::npos) {
        throw Error(ErrorKind::Usage, fmt::format("a {} id is SIDE:NUMBER, as list shows it", what))
            .with("id", text);
    }
    return id;
}

nlohmann::json find_side_record(
    const Config& config, const std::string& text, std::string_view what,
    std::string_view application_name, const std::string& select,
    const std::function<nlohmann::json(const std::string& side, const pg::Result&, int row)>&
        to_json) {
    return find_side_record(
        config, text, what, application_name,
        [&](pg::Connection& conn, const std::string& side, const std::string& number) {
            const pg::Result r = conn.exec(select, {number});
            std::vector<nlohmann::json> found;
            for (int i = 0; i < r.rows(); ++i) {
                found.push_back(to_json(side, r, i));
            }
            return found;
        });
}

nlohmann::json find_side_record(const Config& config, const std::string& text,
                                std::string_view what, std::string_view application_name,
                                const SideRecordReader& read) {
    const SideRecordId id = parse_side_record_id(config, text, what);
    std::vector<nlohmann::json> found;
    for (const auto& side : config.sides) {
        if (!id.side.empty() && side.name != id.side) {
            continue;
        }
        auto conn = open_side(config, side, application_name);
        for (auto& record : read(conn, side.name, id.number)) {
            found.push_back(std::move(record));
        }
    }
    if (found.empty()) {
        throw Error(ErrorKind::Usage, fmt::format("no such {}", what)).with("id", text);
    }
    if (found.size() > 1) {
        throw Error(ErrorKind::Usage,
                    fmt::format("both sides have a {} with this number; say which, as "
                                "SIDE:NUMBER",
                                what))
            .with("id", text);
    }
    return found.front();
}

}  // namespace pgbridge::cli
