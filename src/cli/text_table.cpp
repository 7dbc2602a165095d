#include <algorithm>

#include <pgbridge/cli/text_table.hpp>

namespace pgbridge::cli {

void TextTable::print(std::ostream& out) const {
    std::vector<std::size_t> widths(headers_.size());
    auto widen = [&](const std::vector<std::string>& cells) {
        for (std::size_t i = 0; i < cells.size() && i < widths.size(); ++i) {
            widths[i] = std::max(widths[i], cells[i].size());
        }
    };
    widen(headers_);
    for (const auto& row : rows_) {
        widen(row);
    }
    auto print_row = [&](const std::vector<std::string>& cells) {
        std::string line;
        for (std::size_t i = 0; i < widths.size(); ++i) {
            const std::string& cell = i < cells.size() ? cells[i] : std::string();
            line += cell;
            if (i + 1 < widths.size()) {
                line += std::string(widths[i] - cell.size() + 2, ' ');
            }
        }
        while (!line.empty() && line.back() == ' ') {
            line.pop_back();
        }
        out << line << '\n';
    };
    print_row(headers_);
    for (const auto& row : rows_) {
        print_row(row);
    }
}

}  // namespace pgbridge::cli
