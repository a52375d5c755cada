// threads.cpp: one sgmap handle shared by several threads, from C++.
//
// An unmapped handle takes commands from any number of threads at once (the
// driver queues up to 16 per fd). A mapped handle runs its commands one at a
// time, and its buffer is lent to one thread at a time: an mmap-ed command
// lends it to its thread until sgmap_buffer_release (another thread's
// command meanwhile gets SGMAP_WRONG_STATE). So the threads take turns with
// a mutex of their own around command, reading and release. The last error
// is per thread, like errno.
//
//   c++ -std=c++17 -pthread threads.cpp $(pkg-config --cflags --libs sgmap) -o threads
//   ./threads /dev/sg0       (it overwrites 2 MiB at 128 MiB into the disk)
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sgmap.h>

#include "check.h"

namespace {

// An sgmap failure as a C++ exception, with the library's message.
struct Error : std::runtime_error {
    sgmap_result result;
    Error(sgmap_result r, const std::string &what) : std::runtime_error(what), result(r) {}
};

void ok(sgmap_result r, const char *what)
{
    if (r != SGMAP_OK) {
        throw Error(r, std::string(what) + ": " + sgmap_result_name(r) + ": " + last_error());
    }
}

// Owns a handle; closes it once, when it goes out of scope.
class Device {
  public:
    explicit Device(const char *path, uint32_t flags = 0) : handle_(nullptr, sgmap_device_close)
    {
        sgmap_device *d = nullptr;
        ok(sgmap_device_open(path, flags, &d), "sgmap_device_open");
        handle_.reset(d);
    }
    sgmap_device *get() const { return handle_.get(); }

  private:
    std::unique_ptr<sgmap_device, void (*)(sgmap_device *)> handle_;
};

uint8_t pattern_byte(unsigned thread, unsigned round, size_t i)
{
    return static_cast<uint8_t>(i * 13u + thread * 61u + round * 7u + (i >> 9));
}

} // namespace

int main(int argc, char **argv)
{
    const char *path = device_path(argc, argv);
    try {
        Device dev(path);
        ok(sgmap_wait_ready(dev.get()), "sgmap_wait_ready");
        uint32_t block = 0;
        ok(sgmap_block_size(dev.get(), &block), "sgmap_block_size");
        const uint64_t base = (128ull << 20) / block;
        const unsigned threads = 4, rounds = 8;
        const size_t region = 64u << 10; // bytes per thread

        // 1. Concurrent writes and reads on one unmapped handle.
        std::atomic<unsigned> verified{0};
        std::vector<std::string> problems(threads);
        {
            std::vector<std::thread> pool;
            for (unsigned t = 0; t < threads; t++) {
                pool.emplace_back([&, t] {
                    try {
                        std::vector<uint8_t> out(region), in(region);
                        const uint64_t lba = base + t * (region / block);
                        for (unsigned r = 0; r < rounds; r++) {
                            for (size_t i = 0; i < region; i++) {
                                out[i] = pattern_byte(t, r, i);
                            }
                            ok(sgmap_write_blocks(dev.get(), lba, out.data(), region,
                                                  SGMAP_MODE_INDIRECT, nullptr),
                               "sgmap_write_blocks");
                            ok(sgmap_read_blocks(dev.get(), lba, in.data(), region,
                                                 SGMAP_MODE_INDIRECT, nullptr),
                               "sgmap_read_blocks");
                            if (in == out) {
                                verified++;
                            } else {
                                problems[t] = "round " + std::to_string(r) + " read back other data";
                            }
                        }
                    } catch (const std::exception &e) {
                        problems[t] = e.what();
                    }
                });
            }
            for (auto &th : pool) {
                th.join();
            }
        }
        for (unsigned t = 0; t < threads; t++) {
            if (!problems[t].empty()) {
                printf("       thread %u: %s\n", t, problems[t].c_str());
            }
        }
        CHECK(verified == threads * rounds,
              "%u threads x %u rounds of write+read on one handle: %u verified", threads, rounds,
              verified.load());

        // 2. A mapped handle: commands serialise inside sgmap; the buffer is
        //    lent to one thread at a time, and the threads take turns.
        Device mapped(path);
        ok(sgmap_device_map_reserved(mapped.get(), region, nullptr), "sgmap_device_map_reserved");
        uint8_t *buf = nullptr;
        size_t len = 0;
        ok(sgmap_buffer(mapped.get(), &buf, &len), "sgmap_buffer");
        std::mutex buffer_lock;
        std::atomic<unsigned> matched{0};
        std::atomic<unsigned> info_calls{0};
        {
            std::vector<std::thread> pool;
            for (unsigned t = 0; t < threads; t++) {
                pool.emplace_back([&, t] {
                    try {
                        const uint64_t lba = base + t * (region / block);
                        for (unsigned r = 0; r < rounds; r++) {
                            // Calls that do not touch the buffer need no lock of ours.
                            sgmap_device_info info;
                            ok(sgmap_device_get_info(mapped.get(), &info), "sgmap_device_get_info");
                            if (info.mapped && info.buffer_len == len) {
                                info_calls++;
                            }
                            std::lock_guard<std::mutex> g(buffer_lock);
                            ok(sgmap_read_blocks(mapped.get(), lba, nullptr, region, SGMAP_MODE_MMAP,
                                                 nullptr),
                               "sgmap_read_blocks (mmap)");
                            bool same = true;
                            for (size_t i = 0; i < region; i++) {
                                // The last round written in part 1 was rounds - 1.
                                if (buf[i] != pattern_byte(t, rounds - 1, i)) {
                                    same = false;
                                    break;
                                }
                            }
                            if (same) {
                                matched++;
                            }
                            // Done with the bytes: give the buffer back for
                            // the next thread's command.
                            ok(sgmap_buffer_release(mapped.get()), "sgmap_buffer_release");
                        }
                    } catch (const std::exception &e) {
                        problems[t] = e.what();
                    }
                });
            }
            for (auto &th : pool) {
                th.join();
            }
        }
        CHECK(matched == threads * rounds, "%u mmap-ed reads from %u threads found their data: %u",
              threads * rounds, threads, matched.load());
        CHECK(info_calls == threads * rounds, "sgmap_device_get_info from every thread meanwhile");

        // 3. The last error is per thread.
        sgmap_last_error_clear();
        sgmap_result other = SGMAP_OK;
        std::thread failing([&] {
            sgmap_device *d = nullptr;
            other = sgmap_device_open("/dev/null", 0, &d);
        });
        failing.join();
        sgmap_error_info mine;
        ok(sgmap_last_error_info(&mine), "sgmap_last_error_info");
        CHECK(other == SGMAP_NOT_SG && mine.result == SGMAP_OK,
              "another thread's failure (%s) is not this thread's last error (%s)",
              sgmap_result_name(other), sgmap_result_name(mine.result));
    } catch (const Error &e) {
        printf("FAIL - %s\n", e.what());
        return 1;
    }
    return finish("threads");
}
