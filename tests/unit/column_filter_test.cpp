// ColumnFilter: [[tables]] exclude_columns taken out of captured changes.

#include <doctest/doctest.h>

#include <pgbridge/source/column_filter.hpp>

using namespace pgbridge;
using namespace pgbridge::source;

namespace {

using Excluded = std::map<QualifiedName, std::set<std::string>>;

Value text(const std::string& s) {
    return Value{Value::Kind::Text, s};
}

std::shared_ptr<const TableInfo> notes() {
    auto t = std::make_shared<TableInfo>();
    t->relation_oid = 42;
    t->schema = "public";
    t->name = "notes";
    t->replica_identity = 'f';
    for (const char* c : {"id", "body", "secret", "flag"}) {
        ColumnInfo column;
        column.name = c;
        column.primary_key = std::string(c) == "id";
        t->columns.push_back(column);
    }
    return t;
}

}  // namespace

TEST_SUITE("column_filter") {
    TEST_CASE("excluded columns leave the table description and every row image") {
        ColumnFilter filter(Excluded{{QualifiedName{"public", "notes"}, {"secret", "flag"}}});
        const auto table = notes();
        SourceTransaction txn;
        ChangeEvent update;
        update.op = ChangeOp::Update;
        update.table = table;
        update.old_row = Row{text("1"), text("old"), text("s"), text("t")};
        update.new_row = Row{text("1"), text("new"), text("s2"), text("f")};
        ChangeEvent truncate;
        truncate.op = ChangeOp::Truncate;
        truncate.table = table;
        truncate.truncated = {table};
        txn.changes = {update, truncate};
        filter.apply(txn);

        const ChangeEvent& u = txn.changes[0];
        REQUIRE(u.table->columns.size() == 2);
        CHECK(u.table->columns[0].name == "id");
        CHECK(u.table->columns[1].name == "body");
        CHECK(u.table->relation_oid == 42);
        CHECK(*u.old_row == Row{text("1"), text("old")});
        CHECK(*u.new_row == Row{text("1"), text("new")});
        // One description per relation: the truncate names the same one.
        CHECK(txn.changes[1].table == u.table);
        CHECK(txn.changes[1].truncated.front() == u.table);
        // The source's description is untouched.
        CHECK(table->columns.size() == 4);
    }

    TEST_CASE("other tables and a filter without exclusions pass unchanged") {
        ColumnFilter filter(Excluded{{QualifiedName{"public", "other"}, {"secret"}}});
        SourceTransaction txn;
        ChangeEvent insert;
        insert.op = ChangeOp::Insert;
        insert.table = notes();
        insert.new_row = Row{text("1"), text("b"), text("s"), Value{}};
        txn.changes = {insert};
        const auto before = txn.changes[0].table;
        filter.apply(txn);
        CHECK(txn.changes[0].table == before);
        CHECK(txn.changes[0].new_row->size() == 4);
        ColumnFilter none;
        CHECK(none.empty());
        none.apply(txn);
        CHECK(txn.changes[0].new_row->size() == 4);
    }
}
