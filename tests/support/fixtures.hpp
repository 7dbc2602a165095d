#pragma once

// The pgoutput fixtures of tests/fixtures/pgoutput, for tests beyond the decoder's own.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <pgbridge/pgoutput/transaction_assembler.hpp>

namespace pgbridge::test {

// The messages of one fixture file, as bytes.
inline std::vector<std::string> load_pgoutput_fixture(const std::string& name) {
    const char* root = std::getenv("PGBRIDGE_SOURCE_ROOT");
    REQUIRE(root != nullptr);
    std::ifstream in(std::filesystem::path(root) / "tests/fixtures/pgoutput" / name);
    REQUIRE(in);
    std::vector<std::string> messages;
    std::string hex;
    while (std::getline(in, hex)) {
        std::string bytes;
        for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
            bytes += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
        }
        messages.push_back(std::move(bytes));
    }
    REQUIRE(!messages.empty());
    return messages;
}

// The committed transactions of one fixture file.
inline std::vector<SourceTransaction> fixture_transactions(const std::string& name,
                                                           const std::string& side) {
    pgoutput::TransactionAssembler assembler(side);
    std::vector<SourceTransaction> out;
    for (const auto& message : load_pgoutput_fixture(name)) {
        if (auto t = assembler.feed(message)) {
            out.push_back(std::move(*t));
        }
    }
    return out;
}

}  // namespace pgbridge::test
