#include <nlohmann/json.hpp>

#include <pgbridge/apply/remote_change.hpp>
#include <pgbridge/core/error.hpp>

namespace pgbridge::apply {
namespace {

Error change_error(ErrorKind kind, std::string message, const TargetTable& target,
                   const SourceTransaction& transaction) {
    Error error(kind, std::move(message));
    error.with("table", target.name.display())
        .with("source", transaction.source_side)
        .with("lsn", transaction.commit_lsn.to_string());
    return error;
}

// Where a source column that is left out goes: nowhere.
constexpr std::size_t kLeftOut = std::string::npos;

Row place(const Row& source_row, const std::vector<std::size_t>& positions, std::size_t width) {
    Row out(width, Value{Value::Kind::UnchangedToast, {}});
    for (std::size_t j = 0; j < source_row.size() && j < positions.size(); ++j) {
        if (positions[j] != kLeftOut) {
            out[positions[j]] = source_row[j];
        }
    }
    return out;
}

}  // namespace

MappedChange map_change(const ChangeEvent& event, const SourceTransaction& transaction,
                        const TableConfig& table, const TargetTable& target,
                        const std::set<std::string>& gone) {
    const std::string& source = transaction.source_side;
    const auto& source_columns = event.table->columns;
    const std::size_t width = target.columns.size();

    // Where each source column goes on the target.
    std::vector<std::size_t> positions(source_columns.size());
    for (std::size_t j = 0; j < source_columns.size(); ++j) {
        const std::string canonical = table.canonical_column(source, source_columns[j].name);
        const std::size_t index = target.find(table.column_on(target.side, canonical));
        if (index == std::string::npos && !gone.contains(canonical)) {
            // Added on the source and not yet here, or dropped here and not yet there: the
            // applier finds out which (docs/schema-changes.md).
            throw change_error(ErrorKind::Setup,
                               "a column of the source table is missing on the target", target,
                               transaction)
                .with("column", source_columns[j].name)
                .with("waiting_for", "column");
        }
        positions[j] = index;  // kLeftOut when gone
    }

    MappedChange out;
    RemoteChange& c = out.change;
    c.side = source;
    c.commit_lsn = transaction.commit_lsn;
    c.commit_time = transaction.commit_time;
    c.op = event.op;
    c.old_is_key_only = event.old_is_key_only;
    if (event.old_row) {
        c.old_row = place(*event.old_row, positions, width);
    }
    if (event.new_row) {
        c.new_row = place(*event.new_row, positions, width);
    }
    if (event.versions) {
        c.seen_row = event.versions->row.seen;
        c.sender_row = event.versions->row.own;
        // The sender's default entry (kDefaultColumnEntry) stands for every column it does
        // not list.
        VersionVector fallback;
        if (const auto it = event.versions->columns.find(""); it != event.versions->columns.end()) {
            fallback = it->second;
        }
        c.seen_columns.assign(width, fallback.seen);
        c.sender_columns.assign(width, fallback.own);
        for (std::size_t j = 0; j < source_columns.size(); ++j) {
            const auto it = event.versions->columns.find(source_columns[j].name);
            if (it != event.versions->columns.end() && positions[j] != kLeftOut) {
                c.seen_columns[positions[j]] = it->second.seen;
                c.sender_columns[positions[j]] = it->second.own;
            }
        }
    }

    const Row* keyed = c.new_row ? &*c.new_row : (c.old_row ? &*c.old_row : nullptr);
    for (const std::size_t k : target.key) {
        if (keyed == nullptr || (*keyed)[k].kind != Value::Kind::Text) {
            throw change_error(ErrorKind::Protocol, "the change carries no usable primary key",
                               target, transaction)
                .with("column", target.columns[k].name);
        }
        out.key.push_back((*keyed)[k].data);
    }
    return out;
}

std::string key_json(const TargetTable& target, const std::vector<std::string>& key) {
    nlohmann::json doc = nlohmann::json::object();
    for (std::size_t k = 0; k < target.key.size() && k < key.size(); ++k) {
        doc[target.columns[target.key[k]].name] = key[k];
    }
    return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace pgbridge::apply
