// The emulator process: a tiny "device" that the Java EmulatorRuntime drives over stdin/stdout with a binary
// protocol (all integers little-endian). Memory is host memory; a device pointer is a host address.
//   'A' u64 bytes            -> u64 address (filled with 0xFF bytes: NaN floats, -1 ints, so unwritten output shows)
//   'F' u64 address          -> (nothing)
//   'W' u64 address u64 n <n bytes>
//   'R' u64 address u64 n    -> <n bytes>
//   'C' u64 dst u64 src u64 n
//   'O' u8 order u64 seed    (0 forward, 1 reverse, 2 seeded shuffle)
//   'L' u16 len <name> u32 grid[3] u32 block[3] u32 shared u32 count { u8 size <size bytes> }*
//                            -> u8 ok(0)/error(1), u32 len <message>, u64 barriers so far
//   'Q'
#include "cuda_emu.h"

static void readAll(void* p, size_t n) {
    if (n && fread(p, 1, n, stdin) != n) exit(0);  // the Java side went away
}
template <class T> static T get() { T v; readAll(&v, sizeof(T)); return v; }
static void put(const void* p, size_t n) { fwrite(p, 1, n, stdout); }

int main() {
    static char inbuf[1 << 16], outbuf[1 << 16];
    setvbuf(stdin, inbuf, _IOFBF, sizeof inbuf);
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    for (;;) {
        int c = fgetc(stdin);
        if (c == EOF || c == 'Q') return 0;
        switch (c) {
            case 'A': {
                uint64_t n = get<uint64_t>();
                void* p = std::malloc(n ? n : 1);
                if (p) std::memset(p, 0xFF, n);
                uint64_t a = (uint64_t) p;
                put(&a, 8);
                fflush(stdout);
                break;
            }
            case 'F': std::free((void*) get<uint64_t>()); break;
            case 'W': {
                uint64_t a = get<uint64_t>(), n = get<uint64_t>();
                readAll((void*) a, n);
                break;
            }
            case 'R': {
                uint64_t a = get<uint64_t>(), n = get<uint64_t>();
                put((void*) a, n);
                fflush(stdout);
                break;
            }
            case 'C': {
                uint64_t d = get<uint64_t>(), s = get<uint64_t>(), n = get<uint64_t>();
                std::memmove((void*) d, (void*) s, n);
                break;
            }
            case 'O': {
                uint8_t o = get<uint8_t>();
                uint64_t seed = get<uint64_t>();
                emu::S().order = (emu::Order) o;
                emu::S().rng.seed(seed);
                break;
            }
            case 'L': {
                uint16_t len = get<uint16_t>();
                std::string name(len, '\0');
                readAll(&name[0], len);
                uint32_t g[3], b[3];
                for (auto& x : g) x = get<uint32_t>();
                for (auto& x : b) x = get<uint32_t>();
                uint32_t shared = get<uint32_t>(), count = get<uint32_t>();
                emu::Params params(count);
                for (auto& p : params) {
                    uint8_t sz = get<uint8_t>();
                    p.resize(sz);
                    readAll(&p[0], sz);
                }
                std::string err;
                auto it = emu::registry().find(name);
                if (it == emu::registry().end()) err = "no kernel named " + name + " in the emulator";
                else {
                    std::function<void()> body;
                    err = it->second(params, body);
                    if (err.empty()) err = emu::launch(dim3(g[0], g[1], g[2]), dim3(b[0], b[1], b[2]), shared, body);
                }
                uint8_t st = err.empty() ? 0 : 1;
                uint32_t n = (uint32_t) err.size();
                uint64_t bars = emu::S().barriers;
                put(&st, 1); put(&n, 4); put(err.data(), n); put(&bars, 8);
                fflush(stdout);
                break;
            }
            default:
                fprintf(stderr, "emulator: unknown command %d\n", c);
                return 2;
        }
    }
}
