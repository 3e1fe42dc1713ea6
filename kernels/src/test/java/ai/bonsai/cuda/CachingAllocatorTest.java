package ai.bonsai.cuda;

import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** The allocator's caching and its out-of-memory message, on a fake device of fixed size (no GPU needed). */
class CachingAllocatorTest {

    /** A device with {@code total} bytes; counts driver calls. */
    static final class FakeDevice implements CachingAllocator.DeviceMemory {
        final long total;
        long used, next = 0x1000, mallocs, frees;
        final Map<Long, Long> live = new HashMap<>();
        FakeDevice(long total) { this.total = total; }
        @Override public long tryMalloc(long bytes) {
            if (used + bytes > total) return 0;
            used += bytes;
            mallocs++;
            long a = next;
            next += bytes;
            live.put(a, bytes);
            return a;
        }
        @Override public void free(long a) { used -= live.remove(a); frees++; }
        @Override public long[] memoryInfo() { return new long[] {total - used, total}; }
    }

    @Test
    void freedBlocksAreReusedWithoutTheDriver() {
        FakeDevice dev = new FakeDevice(1 << 20);
        CachingAllocator a = new CachingAllocator(dev, "cuda:0");
        long p = a.allocate(1000);
        assertEquals(1024, a.inUseBytes(), "1000 bytes round to two 512-byte units");
        a.release(p);
        assertEquals(0, a.inUseBytes());
        assertEquals(1024, a.cachedBytes());
        assertEquals(p, a.allocate(600), "same rounded size: the cached block comes back");
        assertEquals(1, dev.mallocs, "one driver allocation for both requests");
        assertThrows(IllegalArgumentException.class, () -> a.release(12345));
    }

    @Test
    void outOfMemoryFirstEmptiesTheCacheThenSaysWhatWasAskedAndWhatIsFree() {
        FakeDevice dev = new FakeDevice(4 << 20);
        CachingAllocator a = new CachingAllocator(dev, "cuda:0");
        long p = a.allocate(3 << 20);
        a.release(p);                                    // 3 MiB cached, device full but for 1 MiB
        long q = a.allocate(2 << 20);                    // needs the cache returned first
        assertEquals(1, dev.frees, "the cached block went back to the driver");
        assertEquals(0, a.cachedBytes());
        CachingAllocator.CudaOutOfMemoryError e = assertThrows(CachingAllocator.CudaOutOfMemoryError.class, () -> a.allocate(5L << 20));
        assertEquals("CUDA out of memory on cuda:0: asked for 5.0 MiB (5242880 bytes, rounded to 5242880), 2.0 MiB free of 4.0 MiB "
                + "on the device; this process holds 2.0 MiB in live buffers", e.getMessage());
        a.release(q);
    }

    @Test
    void roundingKeepsWasteUnderAnEighth() {
        for (long b : new long[] {1, 511, 513, 1 << 20, (1 << 20) + 1, 3_000_001, 1L << 33}) {
            long r = CachingAllocator.round(b);
            assertTrue(r >= b && r % 512 == 0, b + " -> " + r);
            assertTrue(b < 4096 || r - b <= b / 8 + 512, "waste " + (r - b) + " for " + b);
        }
    }
}
