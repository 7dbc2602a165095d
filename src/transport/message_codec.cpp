#include <algorithm>
#include <limits>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <pgbridge/core/base64.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/json_writer.hpp>
#include <pgbridge/core/utf8.hpp>
#include <pgbridge/transport/message_codec.hpp>

namespace pgbridge::transport {

// ---------------------------------------------------------------------------------------------
// ChangeBatch

Lsn ChangeBatch::first_commit_lsn() const {
    return transactions.empty() ? Lsn() : transactions.front().commit_lsn;
}
Lsn ChangeBatch::last_end_lsn() const {
    return transactions.empty() ? Lsn() : transactions.back().end_lsn;
}
UnixMicros ChangeBatch::last_commit_time() const {
    return transactions.empty() ? 0 : transactions.back().commit_time;
}
std::size_t ChangeBatch::change_count() const {
    std::size_t n = 0;
    for (const auto& t : transactions) {
        n += t.changes.size();
    }
    return n;
}
std::vector<std::string> ChangeBatch::table_names() const {
    std::vector<std::string> names;
    auto add = [&](const TableInfo& table) {
        std::string name = table.schema + "." + table.name;
        if (std::find(names.begin(), names.end(), name) == names.end()) {
            names.push_back(std::move(name));
        }
    };
    for (const auto& t : transactions) {
        for (const auto& c : t.changes) {
            if (c.op == ChangeOp::Truncate) {
                for (const auto& rel : c.truncated) {
                    add(*rel);
                }
            } else {
                add(*c.table);
            }
        }
    }
    return names;
}

std::string_view to_string(BatchKind kind) noexcept {
    return kind == BatchKind::Live ? "live" : "backfill";
}

namespace {

using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Value encoding: text that is valid UTF-8 travels as a JSON string; everything else is
// tagged (docs/message-format.md, "Values").

// The body's JSON goes straight into a string (core/json_writer.hpp). Keys come in the order a
// document with sorted keys would print them, so the bytes are what they always were.

// A name the source gave (schema, table, column, origin): JSON text must be UTF-8.
void checked_name(std::string_view text, std::string_view source_side) {
    if (!is_valid_utf8(text)) {
        throw Error(ErrorKind::Setup,
                    "a schema, table, column or origin name is not valid UTF-8: pgbridge "
                    "needs a UTF-8 source database")
            .with("source", std::string(source_side));
    }
}

void write_name(JsonWriter& w, std::string_view text, std::string_view source_side) {
    checked_name(text, source_side);
    w.string(text);
}

// A key that is a name the source gave (a column).
void write_name_key(JsonWriter& w, std::string_view text, std::string_view source_side) {
    checked_name(text, source_side);
    w.key(text);
}

void write_value(JsonWriter& w, const Value& v) {
    switch (v.kind) {
        case Value::Kind::Null:
            w.null();
            return;
        case Value::Kind::UnchangedToast:
            w.open('{');
            w.key("unchanged_toast");
            w.boolean(true);
            w.close('}');
            return;
        case Value::Kind::Binary:
            w.open('{');
            w.key("binary");
            w.string(base64_encode(v.data));
            w.close('}');
            return;
        case Value::Kind::Text:
            if (is_valid_utf8(v.data)) {
                w.string(v.data);
                return;
            }
            w.open('{');
            w.key("text_base64");
            w.string(base64_encode(v.data));
            w.close('}');
            return;
    }
    w.null();
}

void write_row(JsonWriter& w, const Row& row) {
    w.open('[');
    for (const auto& v : row) {
        write_value(w, v);
    }
    w.close(']');
}

void write_pair(JsonWriter& w, const VersionVector& v) {
    w.open('[');
    w.number(v.own);
    w.number(v.seen);
    w.close(']');
}

// A versions object; late versions (of a change in an earlier part) also name its place.
void write_versions(JsonWriter& w, const RowVersions& versions, std::optional<std::uint32_t> place,
                    std::string_view source_side) {
    w.open('{');
    w.key("columns");
    w.open('{');
    for (const auto& [column, v] : versions.columns) {
        write_name_key(w, column, source_side);
        write_pair(w, v);
    }
    w.close('}');
    if (place) {
        w.key("place");
        w.number(*place);
    }
    w.key("row");
    write_pair(w, versions.row);
    w.close('}');
}

std::string_view op_name(ChangeOp op) {
    switch (op) {
        case ChangeOp::Insert:
            return "insert";
        case ChangeOp::Update:
            return "update";
        case ChangeOp::Delete:
            return "delete";
        case ChangeOp::Truncate:
            return "truncate";
    }
    return "?";
}

// ---------------------------------------------------------------------------------------------
// Decoding helpers: every access says which field was wrong. The field's path is formatted only
// when it is: a message of many changes has thousands of fields, and naming each one in
// advance cost more than reading it.
struct Where {
    const Where* parent = nullptr;
    std::string_view name;  // a member (".name"), or the root's name
    std::size_t index = 0;  // an element ("[index]") when name is empty

    Where member(std::string_view n) const { return Where{this, n, 0}; }
    Where at(std::size_t i) const { return Where{this, {}, i}; }
    std::string str() const {
        std::string out = parent != nullptr ? parent->str() : std::string();
        if (name.empty()) {
            return out + fmt::format("[{}]", index);
        }
        return out + (parent != nullptr ? "." : "") + std::string(name);
    }
};

[[noreturn]] void malformed(const Where& where, std::string_view expected) {
    throw Error(ErrorKind::Protocol,
                fmt::format("malformed pgbridge message: {} must be {}", where.str(), expected));
}

const json& field(const json& object, const char* key, const Where& where) {
    if (!object.is_object()) {
        malformed(where, "an object");
    }
    auto it = object.find(key);
    if (it == object.end()) {
        malformed(where.member(key), "present");
    }
    return *it;
}

// PostgreSQL's text, names included, never holds a NUL; libpq would cut such a value short.
void check_no_nul(const std::string& s, const Where& where) {
    if (s.find('\0') != std::string::npos) {
        malformed(where, "text without NUL characters");
    }
}

std::string string_field(const json& object, const char* key, const Where& where) {
    const json& v = field(object, key, where);
    if (!v.is_string()) {
        malformed(where.member(key), "a string");
    }
    std::string s = v.get<std::string>();
    check_no_nul(s, where.member(key));
    return s;
}

template <typename Int>
Int int_field(const json& object, const char* key, const Where& where) {
    const json& v = field(object, key, where);
    if (!v.is_number_integer()) {
        malformed(where.member(key), "an integer");
    }
    const auto value = v.get<std::int64_t>();
    if (value < static_cast<std::int64_t>(std::numeric_limits<Int>::min()) ||
        value > static_cast<std::int64_t>(std::numeric_limits<Int>::max())) {
        malformed(where.member(key), "in range");
    }
    return static_cast<Int>(value);
}

bool bool_field(const json& object, const char* key, const Where& where, bool fallback) {
    auto it = object.find(key);
    if (it == object.end()) {
        return fallback;
    }
    if (!it->is_boolean()) {
        malformed(where.member(key), "a boolean");
    }
    return it->get<bool>();
}

Lsn lsn_field(const json& object, const char* key, const Where& where) {
    auto lsn = Lsn::parse(string_field(object, key, where));
    if (!lsn) {
        malformed(where.member(key), "an LSN like \"0/16B3748\"");
    }
    return *lsn;
}

Value decode_value(const json& v, const Where& where) {
    if (v.is_null()) {
        return Value{Value::Kind::Null, {}};
    }
    if (v.is_string()) {
        std::string s = v.get<std::string>();
        check_no_nul(s, where);
        return Value{Value::Kind::Text, std::move(s)};
    }
    if (v.is_object() && v.size() == 1) {
        if (auto it = v.find("unchanged_toast"); it != v.end() && *it == true) {
            return Value{Value::Kind::UnchangedToast, {}};
        }
        for (const auto& [key, kind] : {std::pair{"binary", Value::Kind::Binary},
                                        std::pair{"text_base64", Value::Kind::Text}}) {
            if (auto it = v.find(key); it != v.end() && it->is_string()) {
                auto bytes = base64_decode(it->get<std::string>());
                if (!bytes) {
                    malformed(where, "valid base64");
                }
                if (kind == Value::Kind::Text) {
                    check_no_nul(*bytes, where);
                }
                return Value{kind, std::move(*bytes)};
            }
        }
    }
    malformed(where,
              "a string, null, {\"unchanged_toast\": true}, {\"binary\": base64} or "
              "{\"text_base64\": base64}");
}

Row decode_row(const json& v, const TableInfo& table, const Where& where) {
    if (!v.is_array() || v.size() != table.columns.size()) {
        malformed(where, fmt::format("an array of {} values (one per column of {}.{})",
                                     table.columns.size(), table.schema, table.name));
    }
    Row row;
    row.reserve(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
        row.push_back(decode_value(v[i], where.at(i)));
    }
    return row;
}

VersionVector decode_vector(const json& pair, const Where& where) {
    if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number_unsigned() ||
        !pair[1].is_number_unsigned()) {
        malformed(where, "a pair of counts [own, seen]");
    }
    return VersionVector{pair[0].get<std::uint64_t>(), pair[1].get<std::uint64_t>()};
}

RowVersions decode_versions(const json& v, const Where& where) {
    RowVersions versions;
    versions.row = decode_vector(field(v, "row", where), where.member("row"));
    const json& columns = field(v, "columns", where);
    const Where columns_where = where.member("columns");
    if (!columns.is_object()) {
        malformed(columns_where, "an object");
    }
    for (const auto& [name, pair] : columns.items()) {
        versions.columns.emplace(name, decode_vector(pair, columns_where.member(name)));
    }
    return versions;
}

std::shared_ptr<const TableInfo> decode_relation(const json& r, const Where& where) {
    auto table = std::make_shared<TableInfo>();
    table->schema = string_field(r, "schema", where);
    table->name = string_field(r, "name", where);
    const std::string identity = string_field(r, "replica_identity", where);
    if (identity.size() != 1) {
        malformed(where.member("replica_identity"), "one character");
    }
    table->replica_identity = identity[0];
    const json& columns = field(r, "columns", where);
    const Where columns_where = where.member("columns");
    if (!columns.is_array()) {
        malformed(columns_where, "an array");  // empty for a table without columns
    }
    for (std::size_t i = 0; i < columns.size(); ++i) {
        const Where w = columns_where.at(i);
        ColumnInfo c;
        c.name = string_field(columns[i], "name", w);
        c.type_oid = int_field<std::uint32_t>(columns[i], "type", w);
        c.type_modifier = int_field<std::int32_t>(columns[i], "typmod", w);
        c.primary_key = bool_field(columns[i], "pk", w, false);
        c.key = bool_field(columns[i], "identity", w, false);
        table->columns.push_back(std::move(c));
    }
    return table;
}

}  // namespace

std::string encode_body(const ChangeBatch& batch) {
    const std::string& side = batch.source_side;
    // Each distinct table description once, in order of first use; changes refer to it by
    // index. Found first, as the relations come before the transactions in key order.
    std::map<const TableInfo*, std::size_t> index;
    std::vector<const TableInfo*> relations;
    auto note = [&](const std::shared_ptr<const TableInfo>& table) {
        if (index.emplace(table.get(), relations.size()).second) {
            relations.push_back(table.get());
        }
    };
    for (const auto& t : batch.transactions) {
        for (const auto& c : t.changes) {
            if (c.op == ChangeOp::Truncate) {
                for (const auto& rel : c.truncated) {
                    note(rel);
                }
            } else {
                note(c.table);
            }
        }
    }

    JsonWriter w;
    w.open('{');
    w.key("bridge");
    write_name(w, batch.bridge, side);
    if (batch.chunk) {
        w.key("chunk");
        w.open('{');
        w.key("count");
        w.number(batch.chunk->count);
        w.key("first_change");
        w.number(batch.chunk->first_change);
        w.key("index");
        w.number(batch.chunk->index);
        w.key("last");
        w.boolean(batch.chunk->last);
        w.close('}');
    }
    w.key("format");
    w.string("pgbridge.changes");
    w.key("kind");
    w.string(to_string(batch.kind));
    w.key("relations");
    w.open('[');
    for (const TableInfo* table : relations) {
        w.open('{');
        w.key("columns");
        w.open('[');
        for (const auto& c : table->columns) {
            w.open('{');
            w.key("identity");
            w.boolean(c.key);
            w.key("name");
            write_name(w, c.name, side);
            w.key("pk");
            w.boolean(c.primary_key);
            w.key("type");
            w.number(c.type_oid);
            w.key("typmod");
            w.number(c.type_modifier);
            w.close('}');
        }
        w.close(']');
        w.key("name");
        write_name(w, table->name, side);
        w.key("replica_identity");
        write_name(w, std::string_view(&table->replica_identity, 1), side);
        w.key("schema");
        write_name(w, table->schema, side);
        w.close('}');
    }
    w.close(']');
    if (batch.shard) {
        w.key("shard");
        w.open('{');
        w.key("count");
        w.number(batch.shard->count);
        w.key("index");
        w.number(batch.shard->index);
        w.close('}');
    }
    w.key("source");
    write_name(w, side, side);
    w.key("transactions");
    w.open('[');
    for (const auto& t : batch.transactions) {
        w.open('{');
        w.key("changes");
        w.open('[');
        for (const auto& c : t.changes) {
            w.open('{');
            if (c.op == ChangeOp::Truncate) {
                w.key("cascade");
                w.boolean(c.truncate_cascade);
                w.key("op");
                w.string(op_name(c.op));
                w.key("rels");
                w.open('[');
                for (const auto& rel : c.truncated) {
                    w.number(index.at(rel.get()));
                }
                w.close(']');
                w.key("restart_identity");
                w.boolean(c.truncate_restart_identity);
            } else {
                if (c.new_row) {
                    w.key("new");
                    write_row(w, *c.new_row);
                }
                if (c.old_row) {
                    w.key("old");
                    write_row(w, *c.old_row);
                    w.key("old_key_only");
                    w.boolean(c.old_is_key_only);
                }
                w.key("op");
                w.string(op_name(c.op));
                w.key("rel");
                w.number(index.at(c.table.get()));
                if (c.versions) {
                    w.key("versions");
                    write_versions(w, *c.versions, std::nullopt, side);
                }
            }
            w.close('}');
        }
        w.close(']');
        w.key("commit_lsn");
        w.string(t.commit_lsn.to_string());
        w.key("commit_time");
        w.string(format_timestamp(t.commit_time));
        w.key("end_lsn");
        w.string(t.end_lsn.to_string());
        if (!t.late_versions.empty()) {
            w.key("late_versions");
            w.open('[');
            for (const auto& p : t.late_versions) {
                if (p.versions) {
                    write_versions(w, *p.versions, p.place, side);
                }
            }
            w.close(']');
        }
        w.key("origin");
        if (t.origin) {
            write_name(w, *t.origin, side);
        } else {
            w.null();
        }
        w.key("xid");
        w.number(t.xid);
        w.close('}');
    }
    w.close(']');
    w.key("version");
    w.number(batch.chunk ? kChunkFormatVersion : kMessageFormatVersion);
    w.close('}');
    return w.take();
}

namespace {

// Deeper than any valid message (root, transactions, a transaction, changes, a change,
// versions, columns, a pair): refused before parsing, so no input can make the parser or the
// document's destruction recurse without bound.
constexpr int kMaxNesting = 16;

bool nested_too_deep(std::string_view body) {
    int depth = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < body.size(); ++i) {
        const char c = body[i];
        if (in_string) {
            if (c == '\\') {
                ++i;
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > kMaxNesting) {
                return true;
            }
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return false;
}

ChangeBatch decode_document(const json& root);

}  // namespace

ChangeBatch decode_body(std::string_view body) {
    if (nested_too_deep(body)) {
        throw Error(
            ErrorKind::Protocol,
            fmt::format("malformed pgbridge message: nested deeper than {} levels", kMaxNesting));
    }
    json root;
    try {
        root = json::parse(body);
    } catch (const json::parse_error& e) {
        // Not e.what(): it quotes the bytes around the error, which may be row values.
        throw Error(ErrorKind::Protocol,
                    fmt::format("malformed pgbridge message: not JSON (error at byte {})", e.byte));
    } catch (const json::exception& e) {
        throw Error(ErrorKind::Protocol,
                    fmt::format("malformed pgbridge message: not JSON pgbridge can read (json "
                                "error {}, a number out of range or the like)",
                                e.id));
    }
    try {
        return decode_document(root);
    } catch (const json::exception& e) {
        throw Error(ErrorKind::Protocol,
                    fmt::format("malformed pgbridge message: a field of the wrong type (json "
                                "error {})",
                                e.id));
    }
}

namespace {

ChangeBatch decode_document(const json& root) {
    const Where top{nullptr, "message", 0};
    if (!root.is_object() || !root.contains("format") || root["format"] != "pgbridge.changes") {
        malformed(top.member("format"), "\"pgbridge.changes\"");
    }
    const int version = int_field<int>(root, "version", top);
    if (version != kMessageFormatVersion && version != kChunkFormatVersion) {
        throw Error(ErrorKind::Protocol,
                    fmt::format("pgbridge message format version {} is not supported (this "
                                "pgbridge reads version {})",
                                version, kChunkFormatVersion))
            .with("refused", std::string(dead_kind::kUnsupported));
    }
    ChangeBatch batch;
    batch.bridge = string_field(root, "bridge", top);
    batch.source_side = string_field(root, "source", top);
    const std::string kind = string_field(root, "kind", top);
    if (kind == "live") {
        batch.kind = BatchKind::Live;
    } else if (kind == "backfill") {
        batch.kind = BatchKind::Backfill;
    } else {
        malformed(top.member("kind"), "\"live\" or \"backfill\"");
    }

    if (version == kChunkFormatVersion) {
        const json& c = field(root, "chunk", top);
        const Where chunk_where = top.member("chunk");
        ChunkInfo chunk;
        chunk.index = int_field<std::uint32_t>(c, "index", chunk_where);
        chunk.first_change = int_field<std::uint32_t>(c, "first_change", chunk_where);
        chunk.last = bool_field(c, "last", chunk_where, false);
        chunk.count = int_field<std::uint32_t>(c, "count", chunk_where);
        if (chunk.last && chunk.count != chunk.index + 1) {
            malformed(chunk_where.member("count"),
                      "the number of parts (index + 1) on the last part");
        }
        batch.chunk = chunk;
    } else if (root.contains("chunk")) {
        malformed(top.member("chunk"), "absent from a version 1 message");
    }
    if (root.contains("shard")) {
        const json& s = field(root, "shard", top);
        const Where shard_where = top.member("shard");
        ShardInfo shard;
        shard.index = int_field<std::uint32_t>(s, "index", shard_where);
        shard.count = int_field<std::uint32_t>(s, "count", shard_where);
        if (shard.count == 0 || shard.index >= shard.count) {
            malformed(shard_where.member("index"), "a shard index below the shard count");
        }
        batch.shard = shard;
    }

    std::vector<std::shared_ptr<const TableInfo>> relations;
    const json& rels = field(root, "relations", top);
    if (!rels.is_array()) {
        malformed(top.member("relations"), "an array");
    }
    const Where rels_where{nullptr, "relations", 0};
    for (std::size_t i = 0; i < rels.size(); ++i) {
        relations.push_back(decode_relation(rels[i], rels_where.at(i)));
    }
    auto relation_at = [&](const json& v, const Where& where) {
        if (!v.is_number_unsigned() || v.get<std::size_t>() >= relations.size()) {
            malformed(where, fmt::format("an index into relations (0..{})", relations.size()));
        }
        return relations[v.get<std::size_t>()];
    };

    const json& txns = field(root, "transactions", top);
    if (!txns.is_array() || txns.empty()) {
        malformed(top.member("transactions"), "a non-empty array");
    }
    const Where txns_where{nullptr, "transactions", 0};
    for (std::size_t ti = 0; ti < txns.size(); ++ti) {
        const Where tw = txns_where.at(ti);
        const json& t = txns[ti];
        SourceTransaction txn;
        txn.source_side = batch.source_side;
        txn.xid = int_field<std::uint32_t>(t, "xid", tw);
        txn.commit_lsn = lsn_field(t, "commit_lsn", tw);
        txn.end_lsn = lsn_field(t, "end_lsn", tw);
        auto time = parse_timestamp(string_field(t, "commit_time", tw));
        if (!time) {
            malformed(tw.member("commit_time"), "a time like \"2026-11-25T19:40:01.123456Z\"");
        }
        txn.commit_time = *time;
        if (const json& origin = field(t, "origin", tw); origin.is_string()) {
            txn.origin = origin.get<std::string>();
        } else if (!origin.is_null()) {
            malformed(tw.member("origin"), "a string or null");
        }
        const json& changes = field(t, "changes", tw);
        const Where changes_where = tw.member("changes");
        if (!changes.is_array()) {
            malformed(changes_where, "an array");
        }
        for (std::size_t ci = 0; ci < changes.size(); ++ci) {
            const Where cw = changes_where.at(ci);
            const json& c = changes[ci];
            const std::string op = string_field(c, "op", cw);
            ChangeEvent change;
            if (op == "truncate") {
                change.op = ChangeOp::Truncate;
                const json& list = field(c, "rels", cw);
                if (!list.is_array() || list.empty()) {
                    malformed(cw.member("rels"), "a non-empty array");
                }
                for (std::size_t k = 0; k < list.size(); ++k) {
                    change.truncated.push_back(relation_at(list[k], cw.member("rels").at(k)));
                }
                change.table = change.truncated.front();
                change.truncate_cascade = bool_field(c, "cascade", cw, false);
                change.truncate_restart_identity = bool_field(c, "restart_identity", cw, false);
            } else {
                if (op == "insert") {
                    change.op = ChangeOp::Insert;
                } else if (op == "update") {
                    change.op = ChangeOp::Update;
                } else if (op == "delete") {
                    change.op = ChangeOp::Delete;
                } else {
                    malformed(cw.member("op"), "insert, update, delete or truncate");
                }
                change.table = relation_at(field(c, "rel", cw), cw.member("rel"));
                if (auto it = c.find("old"); it != c.end()) {
                    change.old_row = decode_row(*it, *change.table, cw.member("old"));
                    change.old_is_key_only = bool_field(c, "old_key_only", cw, false);
                }
                if (auto it = c.find("new"); it != c.end()) {
                    change.new_row = decode_row(*it, *change.table, cw.member("new"));
                }
                if (auto it = c.find("versions"); it != c.end()) {
                    change.versions = decode_versions(*it, cw.member("versions"));
                }
                const bool needs_new = change.op != ChangeOp::Delete;
                if (needs_new != change.new_row.has_value() ||
                    (change.op == ChangeOp::Delete && !change.old_row)) {
                    malformed(cw, change.op == ChangeOp::Delete
                                      ? "a delete with an old row and no new row"
                                      : "an insert or update with a new row");
                }
            }
            txn.changes.push_back(std::move(change));
        }
        if (auto it = t.find("late_versions"); it != t.end()) {
            if (!it->is_array() || !batch.chunk) {
                malformed(tw.member("late_versions"), "an array, in a part of a transaction");
            }
            for (std::size_t k = 0; k < it->size(); ++k) {
                const Where late_where = tw.member("late_versions");
                const Where w = late_where.at(k);
                PlacedVersions p;
                p.place = int_field<std::uint32_t>((*it)[k], "place", w);
                p.versions = decode_versions((*it)[k], w);
                txn.late_versions.push_back(std::move(p));
            }
        }
        batch.transactions.push_back(std::move(txn));
    }
    if (batch.chunk && (batch.transactions.size() != 1 ||
                        (batch.transactions[0].changes.empty() &&
                         batch.transactions[0].late_versions.empty() && !batch.chunk->last))) {
        malformed(top.member("transactions"), "one transaction with changes or versions in a part");
    }
    return batch;
}

}  // namespace

std::string message_id(const ChangeBatch& batch) {
    const std::string shard =
        batch.shard ? fmt::format(":s{}", batch.shard->index + 1) : std::string();
    if (batch.chunk) {
        return fmt::format("{}:{}:{}:part{}{}", batch.bridge, batch.source_side,
                           batch.first_commit_lsn().to_string(), batch.chunk->index, shard);
    }
    return fmt::format("{}:{}:{}{}", batch.bridge, batch.source_side,
                       batch.last_end_lsn().to_string(), shard);
}

std::size_t encoded_size_bound(const ChangeEvent& change) {
    // A value: quotes and a comma, each byte escaped at worst as \u00XX (6 bytes), or base64
    // in a tagged object.
    const auto row = [](const std::optional<Row>& r) {
        std::size_t n = 0;
        if (r) {
            for (const auto& v : *r) {
                n += 32 + (v.kind == Value::Kind::Text ? 6 * v.data.size()
                                                       : (v.data.size() + 2) / 3 * 4);
            }
        }
        return n;
    };
    return 96 + row(change.old_row) + row(change.new_row) +
           (change.versions ? encoded_size_bound(*change.versions) : 0) +
           32 * change.truncated.size();
}

std::size_t encoded_size_bound(const RowVersions& versions) {
    // Two 64-bit counts (20 digits each) per column and for the row, names escaped at worst;
    // room for a late version's place too.
    std::size_t n = 96 + versions.columns.size() * 64;
    for (const auto& [name, v] : versions.columns) {
        n += 6 * name.size();
    }
    return n;
}

std::vector<std::pair<std::string, std::string>> message_headers(const ChangeBatch& batch) {
    return {
        {"x-pgbridge-version", std::to_string(kMessageFormatVersion)},
        {"x-pgbridge-bridge", batch.bridge},
        {"x-pgbridge-source", batch.source_side},
        {"x-pgbridge-kind", std::string(to_string(batch.kind))},
        {"x-pgbridge-first-lsn", batch.first_commit_lsn().to_string()},
        {"x-pgbridge-last-lsn", batch.last_end_lsn().to_string()},
        {"x-pgbridge-commit-time", format_timestamp(batch.last_commit_time())},
        {"x-pgbridge-transactions", std::to_string(batch.transactions.size())},
        {"x-pgbridge-changes", std::to_string(batch.change_count())},
        {"x-pgbridge-tables", fmt::format("{}", fmt::join(batch.table_names(), ","))},
        {"x-pgbridge-part",
         batch.chunk ? fmt::format("{}{}", batch.chunk->index, batch.chunk->last ? " (last)" : "")
                     : std::string("whole")},
    };
}

MessageProperties message_properties(const ChangeBatch& batch, int priority) {
    MessageProperties props;
    props.content_type = std::string(kContentType);
    props.type = std::string(kMessageType);
    props.app_id = "pgbridge";
    props.message_id = message_id(batch);
    props.priority = static_cast<std::uint8_t>(priority);
    props.timestamp = static_cast<std::uint64_t>(batch.last_commit_time() / 1000000);
    for (auto& [key, value] : message_headers(batch)) {
        props.headers.set(std::move(key), std::move(value));
    }
    return props;
}

}  // namespace pgbridge::transport
