#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace pgbridge::cli {

// Aligned columns for the human-readable output of read commands (the --json output is the
// one for machines).
class TextTable {
  public:
    explicit TextTable(std::vector<std::string> headers) : headers_(std::move(headers)) {}

    void add_row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
    bool empty() const { return rows_.empty(); }
    void print(std::ostream& out) const;

  private:
    std::vector<std::string> headers_;
    std::vector<std::vector<std::string>> rows_;
};

}  // namespace pgbridge::cli
