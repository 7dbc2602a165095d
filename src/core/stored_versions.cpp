#include <nlohmann/json.hpp>

#include <pgbridge/core/error.hpp>
#include <pgbridge/core/json_writer.hpp>
#include <pgbridge/core/stored_versions.hpp>

namespace pgbridge {
namespace {

using nlohmann::json;

json parse_object(std::string_view text, std::string_view what) {
    json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!doc.is_object()) {
        throw Error(ErrorKind::Protocol, "pgbridge.row_versions holds a malformed document")
            .with("field", std::string(what));
    }
    return doc;
}

std::uint64_t counter(const json& entry, const char* key) {
    const auto it = entry.find(key);
    if (it == entry.end()) {
        return 0;
    }
    // A negative count is refused like any other malformed one: read as unsigned it would wrap
    // to a count near 2^64, which outweighs every real one in the conflict rules.
    if (it->is_number_unsigned()) {
        return it->get<std::uint64_t>();
    }
    if (it->is_number_integer() && it->get<std::int64_t>() >= 0) {
        return static_cast<std::uint64_t>(it->get<std::int64_t>());
    }
    throw Error(ErrorKind::Protocol, "pgbridge.row_versions holds a malformed counter")
        .with("field", key);
}

Lsn lsn_field(const json& entry, const char* key) {
    const auto it = entry.find(key);
    if (it == entry.end() || !it->is_string()) {
        return Lsn();
    }
    return Lsn::parse(it->get<std::string>()).value_or(Lsn());
}

StoredStamp stamp_from(const json& entry) {
    StoredStamp stamp;
    stamp.local_lsn = lsn_field(entry, "l");
    const auto w = entry.find("w");
    if (w == entry.end() || !w->is_string()) {
        return stamp;
    }
    if (*w == "l") {
        stamp.writer = VersionWriter::Local;
        if (const auto x = entry.find("x"); x != entry.end()) {
            stamp.local_xid = x->is_string() ? x->get<std::string>() : x->dump();
        }
    } else if (*w == "r") {
        stamp.writer = VersionWriter::Remote;
    } else {
        return stamp;
    }
    if (const auto t = entry.find("t"); t != entry.end() && t->is_number_integer()) {
        stamp.remote_time = t->get<UnixMicros>();
    }
    return stamp;
}

// The members of a stamp, in the order of a document with sorted keys (after "l"): "t", "w",
// "x". A remote write never names an LSN of this side.
void write_stamp_tail(JsonWriter& w, const StoredStamp& stamp) {
    switch (stamp.writer) {
        case VersionWriter::Local:
            if (stamp.local_xid.empty()) {
                w.key("t");
                w.number(stamp.remote_time);
            }
            w.key("w");
            w.string("l");
            if (!stamp.local_xid.empty()) {
                w.key("x");
                w.string(stamp.local_xid);
            }
            break;
        case VersionWriter::Remote:
            w.key("t");
            w.number(stamp.remote_time);
            w.key("w");
            w.string("r");
            break;
        case VersionWriter::Unknown:
            break;
    }
}

void write_local_lsn(JsonWriter& w, const StoredStamp& stamp) {
    if (stamp.local_lsn.valid() && stamp.writer != VersionWriter::Remote) {
        w.key("l");
        w.string(stamp.local_lsn.to_string());
    }
}

const StoredColumnVersion kNoEntry{};

}  // namespace

ColumnVersions parse_column_versions(std::string_view text) {
    const json doc = parse_object(text, "columns");
    ColumnVersions out;
    for (const auto& [name, entry] : doc.items()) {
        if (!entry.is_object()) {
            throw Error(ErrorKind::Protocol, "pgbridge.row_versions holds a malformed column entry")
                .with("column", name);
        }
        StoredColumnVersion v;
        v.last_write = stamp_from(entry);
        v.local_writes = counter(entry, "n");
        v.seen_remote_writes = counter(entry, "s");
        v.applied_remote = lsn_field(entry, "m");
        out.emplace(name, std::move(v));
    }
    return out;
}

StoredStamp parse_stamp(std::string_view text) {
    return stamp_from(parse_object(text, "deleted"));
}

std::string column_versions_document(const ColumnVersions& columns) {
    JsonWriter w;
    w.open('{');
    for (const auto& [name, v] : columns) {
        w.key(name);
        w.open('{');
        write_local_lsn(w, v.last_write);
        if (v.applied_remote.valid()) {
            w.key("m");
            w.string(v.applied_remote.to_string());
        }
        w.key("n");
        w.number(v.local_writes);
        w.key("s");
        w.number(v.seen_remote_writes);
        write_stamp_tail(w, v.last_write);
        w.close('}');
    }
    w.close('}');
    return w.take();
}

std::string stamp_document(const StoredStamp& stamp) {
    JsonWriter w;
    w.open('{');
    write_local_lsn(w, stamp);
    write_stamp_tail(w, stamp);
    w.close('}');
    return w.take();
}

const StoredColumnVersion& column_entry(const ColumnVersions& columns, std::string_view name) {
    if (const auto it = columns.find(name); it != columns.end()) {
        return it->second;
    }
    if (const auto it = columns.find(kDefaultColumnEntry); it != columns.end()) {
        return it->second;
    }
    return kNoEntry;
}

ColumnVersions compact_columns(const std::vector<std::string>& names,
                               std::vector<StoredColumnVersion> entries) {
    std::size_t best = 0;
    std::size_t best_count = 0;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        if (i > 0 && entries[i] == entries[best]) {
            continue;  // counted with the best already
        }
        const auto count =
            static_cast<std::size_t>(std::count(entries.begin(), entries.end(), entries[i]));
        if (count > best_count) {
            best = i;
            best_count = count;
        }
    }
    ColumnVersions out;
    const bool with_default = best_count > 1;  // a default for one column saves nothing
    for (std::size_t i = 0; i < entries.size() && i < names.size(); ++i) {
        if (!with_default || entries[i] != entries[best]) {
            out.emplace(names[i], entries[i]);
        }
    }
    if (with_default) {
        out.emplace(std::string(kDefaultColumnEntry), std::move(entries[best]));
    }
    return out;
}

}  // namespace pgbridge
