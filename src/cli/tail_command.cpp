// pgbridge tail: the DBA's view of what capture decodes on one side. Never acknowledges.

#include <csignal>
#include <iostream>
#include <thread>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <pgbridge/cli/commands.hpp>
#include <pgbridge/config/config.hpp>
#include <pgbridge/config/object_names.hpp>
#include <pgbridge/config/side_connection.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/sqlstate.hpp>
#include <pgbridge/source/capture.hpp>

namespace pgbridge::cli {
namespace {

std::string sql_literal(const Value& v) {
    switch (v.kind) {
        case Value::Kind::Null:
            return "NULL";
        case Value::Kind::UnchangedToast:
            return "<unchanged toast>";
        case Value::Kind::Binary:
            return fmt::format("<{} binary bytes>", v.data.size());
        case Value::Kind::Text:
            break;
    }
    // A terminal line is no place for a 1 GB value: show the start and the size.
    constexpr std::size_t kShown = 64;
    const std::string_view shown = std::string_view(v.data).substr(0, kShown);
    std::string out = "'";
    for (char c : shown) {
        if (c == '\'') {
            out += '\'';
        }
        out += c;
    }
    out += '\'';
    if (v.data.size() > kShown) {
        out += fmt::format("... ({} bytes)", v.data.size());
    }
    return out;
}

nlohmann::json json_value(const Value& v) {
    switch (v.kind) {
        case Value::Kind::Null:
            return nullptr;
        case Value::Kind::Text:
            return v.data;
        case Value::Kind::Binary: {
            std::string hex;
            for (unsigned char c : v.data) {
                hex += fmt::format("{:02x}", c);
            }
            return {{"binary_hex", hex}};
        }
        case Value::Kind::UnchangedToast:
            return {{"unchanged_toast", true}};
    }
    return nullptr;
}

std::string qualified(const TableInfo& t) {
    return t.schema + "." + t.name;
}

// The row image that identifies the row: the old one where there is one.
const Row& identifying_row(const ChangeEvent& c) {
    return c.old_row ? *c.old_row : *c.new_row;
}

class TailPrinter final : public source::TransactionSink {
  public:
    TailPrinter(bool json, int limit) : json_(json), limit_(limit) {}

    void set_capture(source::Capture* capture) { capture_ = capture; }

    void deliver(SourceTransaction txn) override {
        const bool echo = txn.origin && names::is_pgbridge_origin(*txn.origin);
        if (json_) {
            print_json(txn, echo);
        } else {
            print_text(txn, echo);
        }
        std::cout.flush();
        if (limit_ > 0 && ++printed_ >= limit_ && capture_ != nullptr) {
            capture_->stop();
        }
    }

    // tail never lets the slot move.
    Lsn durable_lsn() override { return Lsn(); }

  private:
    void print_text(const SourceTransaction& txn, bool echo) {
        std::cout << fmt::format("BEGIN xid {} commit {} at {}{}{}\n", txn.xid,
                                 txn.commit_lsn.to_string(), format_timestamp(txn.commit_time),
                                 txn.origin ? " origin " + *txn.origin : "",
                                 echo ? " (applied by pgbridge: not sent back)" : "");
        for (const auto& c : txn.changes) {
            std::cout << "  " << describe(c) << '\n';
        }
        for (const auto& m : txn.messages) {
            std::cout << fmt::format("  MESSAGE {} prefix {} ({} bytes)\n", m.lsn.to_string(),
                                     m.prefix, m.content.size());
        }
        std::cout << fmt::format("COMMIT {}\n", txn.end_lsn.to_string());
    }

    static std::string describe(const ChangeEvent& c) {
        const TableInfo& t = *c.table;
        if (c.op == ChangeOp::Truncate) {
            std::string tables;
            for (const auto& rel : c.truncated) {
                tables += (tables.empty() ? "" : ", ") + qualified(*rel);
            }
            return fmt::format("TRUNCATE {}{}{}", tables, c.truncate_cascade ? " CASCADE" : "",
                               c.truncate_restart_identity ? " RESTART IDENTITY" : "");
        }
        std::string line = fmt::format("{} {}:", to_string(c.op), qualified(t));
        if (c.op == ChangeOp::Insert) {
            for (std::size_t i = 0; i < t.columns.size(); ++i) {
                line += fmt::format(" {}={}", t.columns[i].name, sql_literal((*c.new_row)[i]));
            }
            return line;
        }
        const Row& id = identifying_row(c);
        for (std::size_t i = 0; i < t.columns.size(); ++i) {
            if (t.columns[i].primary_key) {
                line += fmt::format(" {}={}", t.columns[i].name, sql_literal(id[i]));
            }
        }
        if (c.op == ChangeOp::Update) {
            line += " |";
            const bool full_old_row = c.old_row && !c.old_is_key_only;
            for (std::size_t i = 0; i < t.columns.size(); ++i) {
                const Value& now = (*c.new_row)[i];
                if (!full_old_row) {
                    line += fmt::format(" {}={}", t.columns[i].name, sql_literal(now));
                } else if ((*c.old_row)[i] != now && now.kind != Value::Kind::UnchangedToast) {
                    line += fmt::format(" {}: {} -> {}", t.columns[i].name,
                                        sql_literal((*c.old_row)[i]), sql_literal(now));
                }
            }
        }
        return line;
    }

    static nlohmann::json row_json(const TableInfo& t, const Row& row) {
        nlohmann::json out = nlohmann::json::object();
        for (std::size_t i = 0; i < t.columns.size(); ++i) {
            out[t.columns[i].name] = json_value(row[i]);
        }
        return out;
    }

    void print_json(const SourceTransaction& txn, bool echo) {
        for (const auto& c : txn.changes) {
            nlohmann::json line{{"side", txn.source_side},
                                {"xid", txn.xid},
                                {"commit_lsn", txn.commit_lsn.to_string()},
                                {"end_lsn", txn.end_lsn.to_string()},
                                {"commit_time", format_timestamp(txn.commit_time)},
                                {"origin", txn.origin ? nlohmann::json(*txn.origin) : nullptr},
                                {"echo", echo},
                                {"op", to_string(c.op)},
                                {"table", qualified(*c.table)}};
            if (c.op == ChangeOp::Truncate) {
                nlohmann::json tables = nlohmann::json::array();
                for (const auto& rel : c.truncated) {
                    tables.push_back(qualified(*rel));
                }
                line["tables"] = tables;
                line["cascade"] = c.truncate_cascade;
                line["restart_identity"] = c.truncate_restart_identity;
            } else {
                const TableInfo& t = *c.table;
                nlohmann::json key = nlohmann::json::object();
                const Row& id = identifying_row(c);
                for (std::size_t i = 0; i < t.columns.size(); ++i) {
                    if (t.columns[i].primary_key) {
                        key[t.columns[i].name] = json_value(id[i]);
                    }
                }
                line["key"] = key;
                if (c.new_row) {
                    line["new"] = row_json(t, *c.new_row);
                }
                if (c.old_row) {
                    line["old"] = row_json(t, *c.old_row);
                    line["old_is_key_only"] = c.old_is_key_only;
                }
            }
            std::cout << line.dump() << '\n';
        }
    }

    bool json_;
    int limit_;
    int printed_ = 0;
    source::Capture* capture_ = nullptr;
};

}  // namespace

int tail_command(const GlobalOptions& global, const TailCommandOptions& options) {
    const Config config = load_config(global.config_path);
    bool known = false;
    for (const auto& s : config.sides) {
        known = known || s.name == options.side;
    }
    if (!known) {
        throw Error(ErrorKind::Usage,
                    fmt::format("tail --side must name a side of the bridge: {} or {}",
                                config.sides[0].name, config.sides[1].name));
    }
    const SideConfig& side = config.side(options.side);

    source::CaptureOptions capture_options;
    capture_options.side = side.name;
    capture_options.connect = side_connect_options(side, config.engine.timeout_ms, "pgbridge tail");
    capture_options.publication = names::publication(config.bridge_name);
    capture_options.acknowledge = false;
    capture_options.deliver_echo = true;
    capture_options.retry = false;
    if (options.from_start) {
        // The bridge's own slot, from its confirmed position: what is not yet acknowledged.
        capture_options.slot = names::slot(config.bridge_name, side.name);
    } else {
        capture_options.slot =
            fmt::format("pgbridge_{}_tail_{}", config.bridge_name, static_cast<long>(::getpid()));
        capture_options.temporary_slot = true;
    }

    TailPrinter printer(global.json, options.count);
    source::Capture capture(capture_options, printer);
    printer.set_capture(&capture);
    // Ctrl-C and SIGTERM stop the capture. They are taken synchronously on a thread of their
    // own, as run takes them: a stop request is not async-signal-safe.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    const std::jthread on_signal([&capture, &signals](std::stop_token stop) {
        while (!stop.stop_requested()) {
            timespec wait{0, 100'000'000};
            const int signal = sigtimedwait(&signals, nullptr, &wait);
            if (signal == SIGINT || signal == SIGTERM) {
                capture.stop();
                return;
            }
        }
    });
    if (!global.json) {
        std::cerr << fmt::format(
            "following side {} ({}); Ctrl-C stops\n", side.name,
            options.from_start
                ? "slot " + capture_options.slot + " from its confirmed position, not acknowledging"
                : "temporary slot, changes from now on");
    }
    try {
        capture.run();
    } catch (const Error& e) {
        if (e.context_value("sqlstate") == sqlstate::kObjectInUse) {
            throw Error(ErrorKind::Setup,
                        fmt::format("slot {} is in use (pgbridge run?); tail without "
                                    "--from-start uses a temporary slot",
                                    capture_options.slot))
                .with("side", side.name);
        }
        if (e.context_value("sqlstate") == sqlstate::kUndefinedObject) {
            Error hinted(ErrorKind::Setup, e.message() + "; run pgbridge setup first");
            hinted.with("side", side.name);
            throw hinted;
        }
        throw;
    }
    return 0;
}

}  // namespace pgbridge::cli
