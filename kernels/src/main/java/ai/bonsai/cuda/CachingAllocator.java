package ai.bonsai.cuda;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * A caching device allocator: sizes are rounded up (to 512 bytes, then to a multiple of 1/8 of their power of
 * two), and a freed block goes back to a free list of its rounded size instead of to the driver, because
 * cuMemAlloc/cuMemFree synchronise the device. When the device has no memory for a request, the cache is returned
 * to the driver and the request retried once; if it still fails, the error says what was asked for and what is
 * free. Thread-safe (buffers are released from a Cleaner thread).
 */
public final class CachingAllocator {
    /** The memory underneath (a {@link GpuRuntime}, or a fake in tests). */
    public interface DeviceMemory {
        long tryMalloc(long bytes);
        void free(long address);
        long[] memoryInfo();
    }

    private final DeviceMemory memory;
    private final String device;
    private final TreeMap<Long, ArrayDeque<Long>> cached = new TreeMap<>();
    private final Map<Long, Long> sizes = new HashMap<>();
    private long inUseBytes, cachedBytes;

    public CachingAllocator(DeviceMemory memory, String device) {
        this.memory = memory;
        this.device = device;
    }

    static long round(long bytes) {
        long b = Math.max(512, (bytes + 511) & ~511L);
        if (b <= 1 << 20) return b;
        long step = Long.highestOneBit(b) / 8;
        return (b + step - 1) / step * step;
    }

    public synchronized long allocate(long bytes) {
        long size = round(bytes);
        ArrayDeque<Long> q = cached.get(size);
        long a;
        if (q != null && !q.isEmpty()) {
            a = q.pop();
            cachedBytes -= size;
        } else {
            a = memory.tryMalloc(size);
            if (a == 0) {
                emptyCache();
                a = memory.tryMalloc(size);
            }
            if (a == 0) {
                long[] info = memory.memoryInfo();
                throw new CudaOutOfMemoryError("CUDA out of memory on " + device + ": asked for " + mib(bytes) + " (" + bytes
                        + " bytes, rounded to " + size + "), " + mib(info[0]) + " free of " + mib(info[1]) + " on the device; this process holds "
                        + mib(inUseBytes) + " in live buffers");
            }
            sizes.put(a, size);
        }
        inUseBytes += size;
        return a;
    }

    public synchronized void release(long address) {
        Long size = sizes.get(address);
        if (size == null) throw new IllegalArgumentException("release of 0x" + Long.toHexString(address) + ", which this allocator did not hand out");
        inUseBytes -= size;
        cachedBytes += size;
        cached.computeIfAbsent(size, k -> new ArrayDeque<>()).push(address);
    }

    /** Returns every cached block to the driver. */
    public synchronized void emptyCache() {
        for (ArrayDeque<Long> q : cached.values()) for (long a : q) { memory.free(a); sizes.remove(a); }
        cached.clear();
        cachedBytes = 0;
    }

    public synchronized long inUseBytes() { return inUseBytes; }

    public synchronized long cachedBytes() { return cachedBytes; }

    static String mib(long bytes) { return String.format(java.util.Locale.ROOT, "%.1f MiB", bytes / (1024.0 * 1024.0)); }

    /** Device memory exhausted; the message has the request and the device's free memory. */
    public static final class CudaOutOfMemoryError extends RuntimeException {
        public CudaOutOfMemoryError(String m) { super(m); }
    }
}
