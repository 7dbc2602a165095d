// The consumer's rules against an in-memory broker: whatever a message holds, it is applied,
// retried, waited for or dead-lettered as the error policy says, the messages behind it flow,
// and the consumer never stops.

#include <chrono>
#include <functional>
#include <limits>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include <doctest/doctest.h>

#include <pgbridge/core/base64.hpp>
#include <pgbridge/core/error_policy.hpp>
#include <pgbridge/core/source_horizon.hpp>
#include <pgbridge/transport/consumer.hpp>
#include <pgbridge/transport/message_codec.hpp>
#include <pgbridge/transport/message_signature.hpp>

#include "../support/memory_broker.hpp"

using namespace pgbridge;
using namespace pgbridge::transport;
using pgbridge::test::MemoryBroker;

namespace {

bool eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < until) {
        if (condition()) {
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return condition();
}

std::shared_ptr<const TableInfo> table_named(const std::string& name) {
    auto t = std::make_shared<TableInfo>();
    t->schema = "public";
    t->name = name;
    t->replica_identity = 'f';
    t->columns = {ColumnInfo{"id", 23, -1, true, true}};
    return t;
}

// One message of one transaction inserting `id` into `table`, from side a; its commit LSN
// and time are `lsn` and `time` when given.
std::string message(int id, const std::string& table = "t", std::string bridge = "crm",
                    std::string source = "a", std::optional<Lsn> lsn = std::nullopt,
                    std::optional<UnixMicros> time = std::nullopt) {
    ChangeBatch b;
    b.bridge = std::move(bridge);
    b.source_side = std::move(source);
    SourceTransaction t;
    t.source_side = b.source_side;
    t.xid = static_cast<std::uint32_t>(id);
    t.commit_lsn = lsn.value_or(Lsn(0x1000 + static_cast<std::uint64_t>(id) * 0x100));
    t.end_lsn = Lsn(t.commit_lsn.value + 8);
    t.commit_time = time.value_or(1764099601000000);
    ChangeEvent c;
    c.op = ChangeOp::Insert;
    c.table = table_named(table);
    c.new_row = Row{Value{Value::Kind::Text, std::to_string(id)}};
    t.changes.push_back(std::move(c));
    b.transactions.push_back(std::move(t));
    return encode_body(b);
}

// Applies what it is given, except that a table's name decides a failure:
// "fails" always fails (a constraint), "throws_std" throws a std::runtime_error,
// "down" fails as an unreachable target while `down` is set.
class Handler final : public BatchHandler {
  public:
    void apply(const ChangeBatch& batch) override {
        ++calls;
        for (const auto& t : batch.transactions) {
            for (const auto& c : t.changes) {
                if (c.table->name == "fails") {
                    throw Error(ErrorKind::Database, "new row violates check constraint")
                        .with("sqlstate", "23514")
                        .with("table", "public.fails");
                }
                if (c.table->name == "throws_std") {
                    throw std::runtime_error("a bug");
                }
                if (c.table->name == "down" && down) {
                    throw Error(ErrorKind::Database, "connection refused");
                }
            }
        }
        std::lock_guard lock(mutex);
        for (const auto& t : batch.transactions) {
            applied.push_back((*t.changes.front().new_row)[0].data);
        }
        largest_group = std::max(largest_group, batch.transactions.size());
    }
    std::vector<std::string> ids() const {
        std::lock_guard lock(mutex);
        return applied;
    }

    std::atomic<bool> down{false};
    std::atomic<int> calls{0};
    mutable std::mutex mutex;
    std::vector<std::string> applied;
    std::size_t largest_group = 0;
};

class Recorder final : public DeadLetterRecorder {
  public:
    void record(const DeadLetter& letter) override {
        if (fail_with) {
            throw *fail_with;
        }
        std::lock_guard lock(mutex);
        letters.push_back(letter);
    }
    std::vector<DeadLetter> all() const {
        std::lock_guard lock(mutex);
        return letters;
    }
    std::optional<Error> fail_with;
    mutable std::mutex mutex;
    std::vector<DeadLetter> letters;
};

struct Running {
    MemoryBroker broker{"crm", "b"};
    Handler handler;
    Recorder recorder;
    std::unique_ptr<Consumer> consumer;
    std::thread thread;

    void start(const std::function<void(ConsumerOptions&)>& adjust = {}) {
        ConsumerOptions o;
        o.topology = Topology{"crm", {"a", "b"}, 10, false, {}};
        o.target_side = "b";
        o.max_retries = 3;
        o.retry_delay_ms = 0;
        o.max_message_bytes = 64 * 1024;
        o.max_group_bytes = 64 * 1024;
        o.open_channel = [this](const ConsumerOptions&) { return broker.open(); };
        if (adjust) {
            adjust(o);
        }
        consumer = std::make_unique<Consumer>(o, handler, recorder);
        thread = std::thread([this] {
            try {
                consumer->run();
            } catch (...) {
                std::lock_guard lock(mutex);
                stopped_by = as_error(std::current_exception()).what();
            }
        });
    }
    bool drained() const { return broker.unsettled() == 0; }
    // Why the consumer stopped by itself (what no message may make it do), if it did.
    std::optional<std::string> stopped() const {
        std::lock_guard lock(mutex);
        return stopped_by;
    }
    mutable std::mutex mutex;
    std::optional<std::string> stopped_by;
    ~Running() {
        if (consumer) {
            consumer->stop();
        }
        if (thread.joinable()) {
            thread.join();
        }
    }
};

SigningKey signing_key(char fill) {
    std::string error;
    auto keys = parse_signing_keys(base64_encode(std::string(32, fill)), &error);
    REQUIRE(keys);
    return std::move(keys->front());
}

MessageProperties signed_by(const SigningKey& key, const std::string& body) {
    OutgoingMessage m{"", "", MemoryBroker::pgbridge_type(), body};
    sign(m, {key});
    return m.properties;
}

const DeadLetter* letter_with(const std::vector<DeadLetter>& letters, const std::string& reason) {
    for (const auto& l : letters) {
        if (l.reason.find(reason) != std::string::npos) {
            return &l;
        }
    }
    return nullptr;
}

}  // namespace

TEST_SUITE("unit") {
    TEST_CASE("no message content stops the consumer: each is dead-lettered with its reason") {
        Running r;
        std::string deep;
        for (int i = 0; i < 20000; ++i) {
            deep += '[';
        }
        MessageProperties no_type;
        MessageProperties other_type;
        other_type.type = "orders.created";
        MessageProperties odd_headers = MemoryBroker::pgbridge_type();
        odd_headers.headers.set("x-pgbridge-source", std::string("\xff\xfe\0a", 4))
            .set("x-pgbridge-attempts", std::string("many"))
            .set("x-other", true);
        std::string wrong_version = message(1);
        wrong_version.replace(wrong_version.find("\"version\":1"), 11, "\"version\":9");

        struct Case {
            std::string body;
            MessageProperties properties;
            std::string kind;
            std::string reason;
        };
        const std::vector<Case> cases{
            {R"({"format": 1})", MemoryBroker::pgbridge_type(), "unparseable", "format"},
            {"1e400", MemoryBroker::pgbridge_type(), "unparseable", "not JSON"},
            {std::string("{\"format\": \"\xff\xfe\"}"), MemoryBroker::pgbridge_type(),
             "unparseable", "not JSON"},
            {std::string("\0\0\0binary", 9), MemoryBroker::pgbridge_type(), "unparseable",
             "not JSON"},
            {"", MemoryBroker::pgbridge_type(), "unparseable", "not JSON"},
            {deep, MemoryBroker::pgbridge_type(), "unparseable", "nested deeper"},
            {R"({"format": "pgbridge.changes", "version": 1, "bridge": [], "source": "a"})",
             MemoryBroker::pgbridge_type(), "unparseable", "bridge must be a string"},
            {wrong_version, MemoryBroker::pgbridge_type(), "unsupported", "version 9"},
            {message(1), no_type, "unsupported", "no type property"},
            {message(1), other_type, "unsupported", "orders.created"},
            {message(1, "t", "other_bridge"), MemoryBroker::pgbridge_type(), "misrouted",
             "bridge 'other_bridge'"},
            {message(1, "t", "crm", "b"), MemoryBroker::pgbridge_type(), "misrouted",
             "from side 'b'"},
            {message(1, "t", "crm", "c"), MemoryBroker::pgbridge_type(), "misrouted",
             "from side 'c'"},
            {std::string(100 * 1024, 'x'), MemoryBroker::pgbridge_type(), "oversized",
             "102400 bytes is over rabbitmq.max_message_bytes"},
            {"{", odd_headers, "unparseable", "not JSON"},
        };
        for (const auto& c : cases) {
            r.broker.enqueue(c.body, c.properties);
        }
        r.broker.enqueue(message(42));
        r.start();
        REQUIRE(eventually([&] { return r.drained(); }));
        CHECK(r.handler.ids() == std::vector<std::string>{"42"});
        CHECK(r.consumer->stats().dead_lettered == cases.size());
        CHECK(r.consumer->stats().retries == 0);
        const auto letters = r.recorder.all();
        REQUIRE(letters.size() == cases.size());
        for (std::size_t i = 0; i < cases.size(); ++i) {
            CAPTURE(i);
            CHECK(letters[i].error_kind == cases[i].kind);
            CHECK_MESSAGE(letters[i].reason.find(cases[i].reason) != std::string::npos,
                          letters[i].reason);
            CHECK(letters[i].bridge == "crm");
        }
        // The oversized one was never held whole: its letter keeps the first bytes, and the
        // broker moved the message itself, whole.
        const DeadLetter* oversized = letter_with(letters, "max_message_bytes");
        REQUIRE(oversized != nullptr);
        CHECK(oversized->body.size() == 64 * 1024);
        CHECK(oversized->body_size == 100 * 1024);
        const auto dead = r.broker.dead();
        REQUIRE(dead.size() == cases.size());
        CHECK(std::any_of(dead.begin(), dead.end(),
                          [](const Delivery& d) { return d.body.size() == 100 * 1024; }));
        // Copies carry the reason for whoever reads the dead-letter queue.
        CHECK(dead.front().properties.headers.get_string("x-pgbridge-dead-kind") == "unparseable");
        // The header of invalid bytes still names the source, as it was.
        CHECK(letters.back().source_side == std::string("\xff\xfe\0a", 4));
        // No reason quotes the bytes of the body (they may be row values).
        for (const auto& l : letters) {
            CHECK(l.reason.find("\xff") == std::string::npos);
        }
    }

    TEST_CASE("a failing message is retried max_retries times, then dead-lettered; others flow") {
        Running r;
        r.broker.enqueue(message(1, "fails"));
        r.broker.enqueue(message(2));
        r.broker.enqueue(message(3));
        r.start();
        REQUIRE(eventually([&] { return r.drained(); }));
        CHECK(r.handler.ids() == std::vector<std::string>{"2", "3"});
        CHECK(r.broker.retried() == 2);
        const auto letters = r.recorder.all();
        REQUIRE(letters.size() == 1);
        CHECK(letters[0].error_kind == "database");
        CHECK(letters[0].attempts == 3);
        CHECK(letters[0].sqlstate == "23514");
        CHECK(letters[0].table == "public.fails");
        REQUIRE(letters[0].last_lsn);
        CHECK(letters[0].last_lsn->to_string() == "0/1108");
        CHECK(r.broker.dead().at(0).properties.headers.get_int("x-pgbridge-attempts") == 3);
    }

    TEST_CASE("with signing keys, only what one of them signed is read; retries stay signed") {
        const SigningKey current = signing_key('c');
        const SigningKey previous = signing_key('p');
        const SigningKey stranger = signing_key('s');
        Running r;
        r.broker.enqueue(message(1), signed_by(current, message(1)));
        r.broker.enqueue(message(2), signed_by(previous, message(2)));  // before a rotation
        r.broker.enqueue(message(3));                                   // unsigned
        r.broker.enqueue(message(4), signed_by(stranger, message(4)));
        r.broker.enqueue(message(6), signed_by(current, message(5)));  // altered body
        MessageProperties garbled = signed_by(current, message(7));
        garbled.headers.set(std::string(kSignatureHeader), std::string("v1 00"));
        r.broker.enqueue(message(7), garbled);
        // Signed, fails to apply: its retry copies keep the signature, and it dead-letters
        // for what the target said, after its attempts.
        r.broker.enqueue(message(8, "fails"), signed_by(current, message(8, "fails")));
        r.broker.enqueue(message(9), signed_by(current, message(9)));
        r.start([&](ConsumerOptions& o) { o.signing_keys = {current, previous}; });
        REQUIRE(eventually([&] { return r.drained(); }));
        CHECK(r.handler.ids() == std::vector<std::string>{"1", "2", "9"});
        const auto letters = r.recorder.all();
        std::vector<std::string> kinds;
        for (const auto& l : letters) {
            kinds.push_back(l.error_kind);
        }
        CHECK(kinds ==
              std::vector<std::string>{"unsigned", "forged", "forged", "forged", "database"});
        CHECK(letter_with(letters, "does not hold") != nullptr);
        CHECK(letter_with(letters, "forged or altered") != nullptr);
        CHECK(letter_with(letters, "not \"v1 KEYID MAC\"") != nullptr);
        CHECK(letters.back().attempts == 3);
        CHECK(r.broker.retried() == 2);
    }

    TEST_CASE("a signature that cannot be checked refuses its message as forged; others flow") {
        const SigningKey current = signing_key('c');
        // No MAC is computed with a key shorter than a signing key file allows: it stands for
        // a libcrypto that fails while checking one message.
        const SigningKey broken{"0badc0de", Secret(std::string(kMinSigningKeyBytes - 1, 'b'))};
        MessageProperties naming_broken = MemoryBroker::pgbridge_type();
        naming_broken.headers.set(std::string(kSignatureHeader),
                                  "v1 " + broken.id + " " + std::string(64, '0'));
        Running r;
        r.broker.enqueue(message(1), naming_broken);
        r.broker.enqueue(message(2), signed_by(current, message(2)));
        r.start([&](ConsumerOptions& o) { o.signing_keys = {current, broken}; });
        REQUIRE(eventually([&] { return r.drained() || r.stopped(); }));
        CHECK(r.stopped().value_or("") == "");
        CHECK(r.handler.ids() == std::vector<std::string>{"2"});
        const auto letters = r.recorder.all();
        REQUIRE(letters.size() == 1);
        CHECK(letters[0].error_kind == "forged");
        CHECK(letters[0].reason.find("could not be checked") != std::string::npos);
    }

    TEST_CASE(
        "a message beyond its source's WAL end or clock is dead-lettered as impossible; the "
        "server is asked only when capture has not heard that far") {
        const UnixMicros now = now_unix_micros();
        std::atomic<int> asks{0};
        auto horizon = std::make_shared<SourceHorizon>("a", [&] {
            ++asks;
            return SourceHorizon::Reading{Lsn(0x50000), now};
        });
        horizon->observe(Lsn(0x20000), now);  // what capture heard
        const UnixMicros hour = 3600LL * 1000000;
        Running r;
        r.broker.enqueue(message(1, "t", "crm", "a", Lsn(0x10000), now));  // heard: no ask
        r.broker.enqueue(message(2, "t", "crm", "a", Lsn(0x40000), now));  // the server vouches
        r.broker.enqueue(message(3, "t", "crm", "a", Lsn(0xFFFFFFFFFFFFFFF0), now));
        r.broker.enqueue(message(4, "t", "crm", "a", Lsn(0x30000), now + hour));
        // A clock stepped back after the commit: within the slack, not impossible.
        r.broker.enqueue(message(5, "t", "crm", "a", Lsn(0x30000), now + 30 * 1000000));
        r.broker.enqueue(message(6, "t", "crm", "a", Lsn(0x30000), now));
        r.start([&](ConsumerOptions& o) { o.source_horizon = horizon; });
        REQUIRE(eventually([&] { return r.drained(); }));
        CHECK(r.handler.ids() == std::vector<std::string>{"1", "2", "5", "6"});
        const auto letters = r.recorder.all();
        REQUIRE(letters.size() == 2);
        CHECK(letters[0].error_kind == "impossible");
        CHECK(letters[0].reason.find("FFFFFFFF/FFFFFFF8") != std::string::npos);
        CHECK(letters[0].reason.find("0/50000") != std::string::npos);
        CHECK(letters[1].error_kind == "impossible");
        CHECK(letters[1].reason.find("ahead of the clock of side 'a'") != std::string::npos);
        CHECK(r.broker.retried() == 0);
        // For 2 (then known to 0/50000), 3 and 4 (a time beyond the clock); 1, 5 and 6 are
        // within what is known.
        CHECK(asks == 3);
        CHECK(horizon->known().wal_end == Lsn(0x50000));
    }

    TEST_CASE("a message beyond what capture heard waits in place while the source is away") {
        std::atomic<bool> reachable{false};
        std::atomic<int> asks{0};
        const UnixMicros now = now_unix_micros();
        auto horizon = std::make_shared<SourceHorizon>("a", [&] {
            ++asks;
            if (!reachable) {
                throw Error(ErrorKind::Database, "connection refused");
            }
            return SourceHorizon::Reading{Lsn(0x50000), now};
        });
        Running r;
        r.broker.enqueue(message(1, "t", "crm", "a", Lsn(0x40000), now));
        r.broker.enqueue(message(2, "t", "crm", "a", Lsn(0x40100), now));
        r.start([&](ConsumerOptions& o) { o.source_horizon = horizon; });
        REQUIRE(eventually([&] { return asks >= 2; }));
        CHECK(r.handler.ids().empty());
        CHECK(r.recorder.all().empty());
        CHECK(r.broker.unsettled() == 2);
        reachable = true;
        REQUIRE(eventually([&] { return r.drained(); }));
        CHECK(r.handler.ids() == std::vector<std::string>{"1", "2"});
        CHECK(r.recorder.all().empty());
    }

    TEST_CASE("retry counters are bounded: a forged attempts header cannot loop or overflow") {
        Running r;
        MessageProperties forged = MemoryBroker::pgbridge_type();
        forged.headers.set("x-pgbridge-attempts", std::numeric_limits<std::int64_t>::max());
        r.broker.enqueue(message(1, "fails"), forged);
        MessageProperties negative = MemoryBroker::pgbridge_type();
        negative.headers.set("x-pgbridge-attempts", std::int64_t{-5});
        r.broker.enqueue(message(2, "fails"), negative);
        r.start();
        REQUIRE(eventually([&] { return r.drained(); }));
        const auto letters = r.recorder.all();
        REQUIRE(letters.size() == 2);
        // INT64_MAX + 1 does not wrap: dead at once.
        CHECK(letters[0].attempts ==
              static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) + 1);
        CHECK(r.broker.dead().at(0).properties.headers.get_int("x-pgbridge-attempts") ==
              std::numeric_limits<std::int64_t>::max());
        // A negative count counts as none: the usual three attempts.
        CHECK(letters[1].attempts == 3);
        CHECK(r.broker.retried() == 2);
    }

    TEST_CASE("an exception that is not an Error is contained like any failed apply") {
        Running r;
        r.broker.enqueue(message(1, "throws_std"));
        r.broker.enqueue(message(2));
        r.start();
        REQUIRE(eventually([&] { return r.drained(); }));
        CHECK(r.handler.ids() == std::vector<std::string>{"2"});
        const auto letters = r.recorder.all();
        REQUIRE(letters.size() == 1);
        CHECK(letters[0].error_kind == "internal");
        CHECK(letters[0].reason.find("a bug") != std::string::npos);
    }

    TEST_CASE("an unreachable target is waited for in place: no attempt, no dead letter") {
        Running r;
        r.handler.down = true;
        r.broker.enqueue(message(1, "down"));
        r.broker.enqueue(message(2));
        r.start();
        REQUIRE(eventually([&] { return r.handler.calls >= 5; }));
        CHECK(r.handler.ids().empty());  // waiting: nothing behind it overtakes
        CHECK(r.broker.retried() == 0);
        r.handler.down = false;
        REQUIRE(eventually([&] { return r.drained(); }));
        CHECK(r.handler.ids() == std::vector<std::string>{"1", "2"});
        CHECK(r.recorder.all().empty());
    }

    TEST_CASE("a dead letter that cannot be recorded still goes to the dead-letter queue") {
        Running r;
        r.recorder.fail_with =
            Error(ErrorKind::Database, "value too long for type").with("sqlstate", "22001");
        r.broker.enqueue("not json");
        r.broker.enqueue(message(2));
        r.start();
        REQUIRE(eventually([&] { return r.drained(); }));
        CHECK(r.handler.ids() == std::vector<std::string>{"2"});
        CHECK(r.broker.dead().size() == 1);
        CHECK(r.consumer->stats().dead_letter_records_failed == 1);
    }

    TEST_CASE("a dead letter waits in place while the target cannot record it") {
        Running r;
        r.recorder.fail_with = Error(ErrorKind::Database, "connection refused");
        r.broker.enqueue("not json");
        r.start();
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        CHECK(r.broker.dead().empty());
        CHECK(r.broker.unsettled() == 1);
        r.recorder.fail_with.reset();
        REQUIRE(eventually([&] { return r.drained(); }));
        CHECK(r.recorder.all().size() == 1);
        CHECK(r.broker.dead().size() == 1);
    }

    TEST_CASE("waiting messages are applied together, bounded by bytes; a failure splits them") {
        Running r;
        for (int i = 1; i <= 40; ++i) {
            r.broker.enqueue(message(i, i == 20 ? "fails" : "t"));
        }
        const std::size_t one = message(1).size();
        r.start([&](ConsumerOptions& o) { o.max_group_bytes = one * 10; });
        REQUIRE(eventually([&] { return r.drained(); }));
        const auto ids = r.handler.ids();
        CHECK(ids.size() == 39);
        CHECK(std::set<std::string>(ids.begin(), ids.end()).size() == 39);  // each once
        CHECK(r.handler.largest_group > 1);
        CHECK(r.handler.largest_group <= 10);
        CHECK(r.recorder.all().size() == 1);
    }

    TEST_CASE("the error policy: wait, retry, dead-letter, reconnect or stop") {
        const auto db = [](const char* state) {
            return Error(ErrorKind::Database, "x").with("sqlstate", state);
        };
        CHECK(classify_apply_failure(Error(ErrorKind::Database, "no answer")) ==
              FailureAction::WaitInPlace);
        CHECK(classify_apply_failure(db("08006")) == FailureAction::WaitInPlace);
        CHECK(classify_apply_failure(db("40P01")) == FailureAction::WaitInPlace);
        CHECK(classify_apply_failure(db("25006")) == FailureAction::WaitInPlace);
        CHECK(classify_apply_failure(db("53100")) == FailureAction::WaitInPlace);
        // The origin held by a second daemon on its way out: never a dead letter.
        CHECK(classify_apply_failure(db("55006")) == FailureAction::WaitInPlace);
        CHECK(classify_apply_failure(db("23514")) == FailureAction::Retry);
        CHECK(classify_apply_failure(db("42P01")) == FailureAction::Retry);
        CHECK(classify_apply_failure(Error(ErrorKind::Setup, "not synced")) ==
              FailureAction::Retry);
        CHECK(classify_apply_failure(Error(ErrorKind::Internal, "bug")) == FailureAction::Retry);
        CHECK(classify_apply_failure(Error(ErrorKind::Protocol, "bad")) ==
              FailureAction::DeadLetter);
        CHECK(classify_session_failure(Error(ErrorKind::Broker, "lost")) ==
              FailureAction::Reconnect);
        CHECK(classify_session_failure(db("57P01")) == FailureAction::Reconnect);
        CHECK(classify_session_failure(db("55006")) == FailureAction::Reconnect);
        CHECK(classify_session_failure(db("40P01")) == FailureAction::Reconnect);  // deadlock
        CHECK(classify_session_failure(db("42704")) == FailureAction::Fatal);
        CHECK(classify_session_failure(db("28P01")) == FailureAction::Fatal);
        CHECK(as_error(std::make_exception_ptr(std::out_of_range("x"))).kind() ==
              ErrorKind::Internal);
        CHECK(as_error(std::make_exception_ptr(42)).kind() == ErrorKind::Internal);
    }
}
