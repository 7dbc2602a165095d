#include <nlohmann/json.hpp>

#include <pgbridge/apply/row_versions.hpp>
#include <pgbridge/core/error.hpp>

namespace pgbridge::apply {
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
    if (it->is_number_unsigned() || it->is_number_integer()) {
        return it->get<std::uint64_t>();
    }
    throw Error(ErrorKind::Protocol, "pgbridge.row_versions holds a malformed counter")
        .with("field", key);
}

StoredStamp stamp_from(const json& entry) {
    StoredStamp stamp;
    const auto w = entry.find("w");
    if (w == entry.end() || !w->is_string()) {
        return stamp;
    }
    if (*w == "l") {
        stamp.writer = WriteStamp::Writer::Local;
        if (const auto x = entry.find("x"); x != entry.end()) {
            stamp.local_xid = x->is_string() ? x->get<std::string>() : x->dump();
        }
        if (const auto t = entry.find("t"); t != entry.end() && t->is_number_integer()) {
            stamp.remote_time = t->get<UnixMicros>();
        }
        if (const auto l = entry.find("l"); l != entry.end() && l->is_string()) {
            stamp.local_lsn = l->get<std::string>();
        }
    } else if (*w == "r") {
        stamp.writer = WriteStamp::Writer::Remote;
        if (const auto t = entry.find("t"); t != entry.end() && t->is_number_integer()) {
            stamp.remote_time = t->get<UnixMicros>();
        }
    }
    return stamp;
}

void put_stamp(json& entry, const StoredStamp& stamp) {
    switch (stamp.writer) {
        case WriteStamp::Writer::Local:
            entry["w"] = "l";
            if (!stamp.local_xid.empty()) {
                entry["x"] = stamp.local_xid;
            } else {
                entry["t"] = stamp.remote_time;
            }
            if (!stamp.local_lsn.empty()) {
                entry["l"] = stamp.local_lsn;
            }
            break;
        case WriteStamp::Writer::Remote:
            entry["w"] = "r";
            entry["t"] = stamp.remote_time;
            break;
        case WriteStamp::Writer::Unknown:
            break;
    }
}

WriteStamp resolve_stamp(const StoredStamp& stamp, const CommitTimes& commit_times) {
    switch (stamp.writer) {
        case WriteStamp::Writer::Local: {
            if (stamp.local_xid.empty()) {
                return {WriteStamp::Writer::Local, stamp.remote_time};
            }
            const auto it = commit_times.find(stamp.local_xid);
            return {WriteStamp::Writer::Local, it != commit_times.end() ? it->second : 0};
        }
        case WriteStamp::Writer::Remote:
            return {WriteStamp::Writer::Remote, stamp.remote_time};
        case WriteStamp::Writer::Unknown:
            break;
    }
    return {};
}

// The stored form of a stamp after the resolver: unchanged when it is the same write,
// otherwise the applied write it now is.
StoredStamp store_stamp(const WriteStamp& after, const StoredStamp& before) {
    if (after.writer == before.writer && after.writer != WriteStamp::Writer::Remote) {
        return before;
    }
    StoredStamp out;
    out.writer = after.writer;
    out.remote_time = after.time;
    return out;
}

}  // namespace

std::map<std::string, StoredColumnVersion> parse_column_versions(std::string_view text) {
    const json doc = parse_object(text, "columns");
    std::map<std::string, StoredColumnVersion> out;
    for (const auto& [name, entry] : doc.items()) {
        if (!entry.is_object()) {
            throw Error(ErrorKind::Protocol, "pgbridge.row_versions holds a malformed column entry")
                .with("column", name);
        }
        StoredColumnVersion v;
        v.last_write = stamp_from(entry);
        v.local_writes = counter(entry, "n");
        v.seen_remote_writes = counter(entry, "s");
        if (const auto m = entry.find("m"); m != entry.end() && m->is_string()) {
            v.applied_remote = Lsn::parse(m->get<std::string>()).value_or(Lsn());
        }
        out.emplace(name, std::move(v));
    }
    return out;
}

StoredStamp parse_stamp(std::string_view text) {
    return stamp_from(parse_object(text, "deleted"));
}

std::string column_versions_document(const std::map<std::string, StoredColumnVersion>& columns) {
    json doc = json::object();
    for (const auto& [name, v] : columns) {
        json entry = json::object();
        put_stamp(entry, v.last_write);
        entry["n"] = v.local_writes;
        entry["s"] = v.seen_remote_writes;
        if (v.applied_remote.valid()) {
            entry["m"] = v.applied_remote.to_string();
        }
        doc[name] = std::move(entry);
    }
    return doc.dump();
}

std::string stamp_document(const StoredStamp& stamp) {
    json entry = json::object();
    put_stamp(entry, stamp);
    return entry.dump();
}

namespace {

bool same_version(const StoredColumnVersion& a, const StoredColumnVersion& b) {
    return a.last_write.writer == b.last_write.writer &&
           a.last_write.local_xid == b.last_write.local_xid &&
           a.last_write.remote_time == b.last_write.remote_time &&
           a.last_write.local_lsn == b.last_write.local_lsn && a.local_writes == b.local_writes &&
           a.seen_remote_writes == b.seen_remote_writes && a.applied_remote == b.applied_remote;
}

// The entry of a column: its own, else the row's default entry, else nothing yet.
StoredColumnVersion entry_of(const std::map<std::string, StoredColumnVersion>& columns,
                             const std::string& name) {
    if (const auto it = columns.find(name); it != columns.end()) {
        return it->second;
    }
    if (const auto it = columns.find(std::string(kDefaultColumnEntry)); it != columns.end()) {
        return it->second;
    }
    return {};
}

// Stores the most common entry once, as the default, and only the columns that differ from
// it: a row written whole (an insert, initial sync) keeps one entry instead of one per column.
std::map<std::string, StoredColumnVersion> compact(
    const std::vector<std::string>& names, const std::vector<StoredColumnVersion>& entries) {
    std::size_t best = 0;
    std::size_t best_count = 0;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        std::size_t count = 0;
        for (const auto& e : entries) {
            count += same_version(e, entries[i]) ? 1 : 0;
        }
        if (count > best_count) {
            best = i;
            best_count = count;
        }
    }
    std::map<std::string, StoredColumnVersion> out;
    if (best_count > 1) {
        out.emplace(std::string(kDefaultColumnEntry), entries[best]);
    }
    for (std::size_t i = 0; i < entries.size(); ++i) {
        if (best_count <= 1 || !same_version(entries[i], entries[best])) {
            out.emplace(names[i], entries[i]);
        }
    }
    return out;
}

}  // namespace

LocalRow to_local_row(const StoredRowVersions& stored, const std::optional<Row>& values,
                      const std::vector<std::string>& columns, const CommitTimes& commit_times) {
    LocalRow row;
    row.exists = values.has_value();
    row.local_row_writes = stored.local_row_writes;
    row.seen_remote_row_writes = stored.seen_remote_row_writes;
    row.local_delete_writes = stored.local_delete_writes;
    row.deleted_applied_remote = stored.deleted_applied_remote;
    if (!row.exists && stored.deleted) {
        row.deleted = resolve_stamp(*stored.deleted, commit_times);
    }
    if (row.exists) {
        row.columns.reserve(columns.size());
        for (std::size_t i = 0; i < columns.size(); ++i) {
            LocalColumn c;
            c.value = (*values)[i];
            const StoredColumnVersion v = entry_of(stored.columns, columns[i]);
            c.last_write = resolve_stamp(v.last_write, commit_times);
            c.applied_remote = v.applied_remote;
            c.local_writes = v.local_writes;
            c.seen_remote_writes = v.seen_remote_writes;
            row.columns.push_back(std::move(c));
        }
    } else if (!stored.columns.empty()) {
        // A tombstone keeps the counters of the deleted row's columns (LocalRow::columns).
        for (const auto& name : columns) {
            const StoredColumnVersion v = entry_of(stored.columns, name);
            LocalColumn c;
            c.local_writes = v.local_writes;
            c.seen_remote_writes = v.seen_remote_writes;
            row.columns.push_back(std::move(c));
        }
    }
    return row;
}

StoredRowVersions to_stored(const LocalRow& after, const StoredRowVersions& before,
                            const std::vector<std::string>& columns) {
    StoredRowVersions out = before;
    out.found = true;
    out.local_row_writes = after.local_row_writes;
    out.seen_remote_row_writes = after.seen_remote_row_writes;
    out.local_delete_writes = after.local_delete_writes;
    out.deleted_applied_remote = after.deleted_applied_remote;
    if (after.exists) {
        out.deleted.reset();
        std::vector<StoredColumnVersion> entries;
        for (std::size_t i = 0; i < columns.size() && i < after.columns.size(); ++i) {
            const LocalColumn& c = after.columns[i];
            StoredColumnVersion v = entry_of(before.columns, columns[i]);
            v.last_write = store_stamp(c.last_write, v.last_write);
            v.local_writes = c.local_writes;
            v.seen_remote_writes = c.seen_remote_writes;
            v.applied_remote = c.applied_remote;
            entries.push_back(std::move(v));
        }
        out.columns = compact(columns, entries);
    } else {
        // Gone: what the columns knew of the other side survives in deleted_applied_remote,
        // their counters in entries without a stamp, for the key's next incarnation.
        std::vector<StoredColumnVersion> entries;
        for (std::size_t i = 0; i < columns.size() && i < after.columns.size(); ++i) {
            StoredColumnVersion v;
            v.local_writes = after.columns[i].local_writes;
            v.seen_remote_writes = after.columns[i].seen_remote_writes;
            entries.push_back(v);
        }
        out.columns = compact(columns, entries);
        if (after.deleted) {
            out.deleted =
                store_stamp(*after.deleted, before.deleted ? *before.deleted : StoredStamp{});
        } else {
            out.deleted.reset();
        }
    }
    return out;
}

}  // namespace pgbridge::apply
