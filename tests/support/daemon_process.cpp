#include "daemon_process.hpp"

#include <csignal>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <doctest/doctest.h>

#include "test_environment.hpp"

namespace pgbridge::test {

DaemonProcess::DaemonProcess(const std::vector<std::string>& argv, std::string log_path)
    : log_path_(std::move(log_path)) {
    REQUIRE(!argv.empty());
    const int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
        exec_with_output(argv, fd, fd);
    }
    ::close(fd);
}

DaemonProcess::~DaemonProcess() {
    if (running()) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status_, 0);
    }
}

void DaemonProcess::signal(int signal_number) {
    if (running()) {
        ::kill(pid_, signal_number);
    }
}

bool DaemonProcess::running() {
    if (status_ != -1 || pid_ <= 0) {
        return false;
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        status_ = status;
        return false;
    }
    return true;
}

int DaemonProcess::wait(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            return -1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (WIFEXITED(status_)) {
        return WEXITSTATUS(status_);
    }
    return WIFSIGNALED(status_) ? 128 + WTERMSIG(status_) : -1;
}

std::string DaemonProcess::output() const {
    std::ifstream in(log_path_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

std::string DaemonProcess::output_tail(std::size_t lines) const {
    const std::string all = output();
    std::size_t start = all.size();
    for (std::size_t seen = 0; start > 0 && seen <= lines;) {
        --start;
        seen += all[start] == '\n' ? 1 : 0;
    }
    return all.substr(start == 0 ? 0 : start + 1);
}

}  // namespace pgbridge::test
