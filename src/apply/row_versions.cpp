#include <pgbridge/apply/row_versions.hpp>

namespace pgbridge::apply {
namespace {

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
            const StoredColumnVersion& v = column_entry(stored.columns, columns[i]);
            c.last_write = resolve_stamp(v.last_write, commit_times);
            c.applied_remote = v.applied_remote;
            c.local_writes = v.local_writes;
            c.seen_remote_writes = v.seen_remote_writes;
            row.columns.push_back(std::move(c));
        }
    } else if (!stored.columns.empty()) {
        // A tombstone keeps the counters of the deleted row's columns (LocalRow::columns).
        for (const auto& name : columns) {
            const StoredColumnVersion& v = column_entry(stored.columns, name);
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
            StoredColumnVersion v = column_entry(before.columns, columns[i]);
            v.last_write = store_stamp(c.last_write, v.last_write);
            v.local_writes = c.local_writes;
            v.seen_remote_writes = c.seen_remote_writes;
            v.applied_remote = c.applied_remote;
            entries.push_back(std::move(v));
        }
        out.columns = compact_columns(columns, std::move(entries));
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
        out.columns = compact_columns(columns, std::move(entries));
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
