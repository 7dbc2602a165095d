// Writes the seed corpus of the message_codec fuzz target: message bodies encoded by the real
// encoder from the batches the unit tests build (tests/unit/message_codec_test.cpp): the
// captured fixtures' transactions, one batch and one per transaction, and the batch of every
// kind of value. Not built by default:
//   ninja -C build-helper tests/fuzz/make_message_codec_seeds &&
//   build-helper/tests/fuzz/make_message_codec_seeds . tests/fuzz/corpus/message_codec

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <pgbridge/pgoutput/transaction_assembler.hpp>
#include <pgbridge/transport/message_codec.hpp>

using namespace pgbridge;
using namespace pgbridge::transport;

namespace {

std::filesystem::path source_root;
std::filesystem::path out_dir;

std::vector<SourceTransaction> fixture_transactions(const std::string& name) {
    std::ifstream in(source_root / "tests/fixtures/pgoutput" / name);
    if (!in) {
        throw std::runtime_error("cannot read fixture " + name);
    }
    pgoutput::TransactionAssembler assembler("looma_crm");
    std::vector<SourceTransaction> out;
    std::string hex;
    while (std::getline(in, hex)) {
        std::string bytes;
        for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
            bytes += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
        }
        if (auto t = assembler.feed(bytes)) {
            out.push_back(std::move(*t));
        }
    }
    return out;
}

ChangeBatch batch_of(std::vector<SourceTransaction> txns) {
    ChangeBatch b;
    b.bridge = "crm";
    b.source_side = "looma_crm";
    b.transactions = std::move(txns);
    return b;
}

void write(const std::string& name, const ChangeBatch& batch) {
    const std::string body = encode_body(batch);
    std::ofstream(out_dir / ("seed-" + name), std::ios::binary) << body;
    std::printf("%s: %zu bytes\n", name.c_str(), body.size());
}

// The values test of message_codec_test.cpp: NULL, unchanged TOAST, binary, UTF-8 and
// non-UTF-8 text, version vectors.
ChangeBatch every_value_batch() {
    auto table = std::make_shared<TableInfo>();
    table->schema = "public";
    table->name = "t";
    table->replica_identity = 'f';
    for (const char* name : {"a", "b", "c", "d", "e", "f"}) {
        table->columns.push_back(ColumnInfo{name, 25, -1, true, false});
    }
    ChangeEvent c;
    c.op = ChangeOp::Update;
    c.table = table;
    const Row row{Value{Value::Kind::Null, {}},
                  Value{Value::Kind::UnchangedToast, {}},
                  Value{Value::Kind::Binary, std::string("\0\x01\xff\x80", 4)},
                  Value{Value::Kind::Text, "caf\xc3\xa9 \xe2\x9c\x93"},
                  Value{Value::Kind::Text, "latin1 caf\xe9"},
                  Value{Value::Kind::Text, ""}};
    c.old_row = row;
    c.new_row = row;
    c.versions = RowVersions{VersionVector{7, 3}, {{"a", {1, 0}}, {"f", {4, 2}}}};
    SourceTransaction t;
    t.source_side = "looma_crm";
    t.xid = 42;
    t.commit_lsn = Lsn(0x100);
    t.end_lsn = Lsn(0x180);
    t.commit_time = 1764099601123456;
    t.origin = "pgbridge_crm_from_zervigo";
    t.changes.push_back(c);
    ChangeEvent d = c;
    d.op = ChangeOp::Delete;
    d.new_row.reset();
    d.old_is_key_only = true;
    d.versions.reset();
    t.changes.push_back(d);
    ChangeBatch batch = batch_of({t});
    batch.kind = BatchKind::Backfill;
    return batch;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s SOURCE_ROOT OUT_DIR\n", argv[0]);
        return 2;
    }
    source_root = argv[1];
    out_dir = argv[2];
    std::filesystem::create_directories(out_dir);

    auto basic = fixture_transactions("basic.hex");
    const auto origin = fixture_transactions("origin.hex");
    auto streamed = fixture_transactions("streamed.hex");
    std::vector<SourceTransaction> all = basic;
    all.insert(all.end(), origin.begin(), origin.end());
    write("fixtures-basic-origin.json", batch_of(all));
    for (std::size_t i = 0; i < all.size(); ++i) {
        write("fixture-txn-" + std::to_string(i) + ".json", batch_of({all[i]}));
    }
    // The streamed transactions are large: their first rows are enough.
    for (auto& t : streamed) {
        if (t.changes.size() > 3) {
            t.changes.resize(3);
        }
    }
    write("fixtures-streamed-abridged.json", batch_of(streamed));
    write("every-value-backfill.json", every_value_batch());
    // Parts of a large transaction (format version 2): a middle part and the last one.
    ChangeBatch part = batch_of({all[0]});
    part.chunk = ChunkInfo{1, 5, false, 0};
    write("chunk-middle.json", part);
    part.chunk = ChunkInfo{2, 9, true, 3};
    write("chunk-last.json", part);

    return 0;
}
