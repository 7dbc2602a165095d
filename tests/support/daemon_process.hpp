#pragma once

// A long-running process for tests (pgbridge run): started in the background with its output
// in a file, signalled, waited for with a deadline, killed when the test ends.

#include <chrono>
#include <string>
#include <sys/types.h>
#include <vector>

namespace pgbridge::test {

class DaemonProcess {
  public:
    DaemonProcess(const std::vector<std::string>& argv, std::string log_path);
    ~DaemonProcess();  // SIGKILL if still running
    DaemonProcess(const DaemonProcess&) = delete;
    DaemonProcess& operator=(const DaemonProcess&) = delete;

    void signal(int signal_number);
    // The exit code (128 + signal when killed by one), or -1 when it did not end in time.
    int wait(std::chrono::milliseconds timeout);
    bool running();
    std::string output() const;                        // stdout and stderr so far
    std::string output_tail(std::size_t lines) const;  // the last lines of it
    pid_t pid() const { return pid_; }
    bool output_contains(const std::string& text) const {
        return output().find(text) != std::string::npos;
    }

  private:
    pid_t pid_ = -1;
    int status_ = -1;
    std::string log_path_;
};

}  // namespace pgbridge::test
