package ai.bonsai.cuda;

import java.util.HashMap;
import java.util.Map;
import java.util.function.Function;
import java.util.function.LongConsumer;
import java.util.function.LongUnaryOperator;

/**
 * The host-side bookkeeping of cuDNN convolutions, kept free of cuDNN so it is tested without a GPU: which of the
 * algorithms cuDNN proposes to take, one plan per (direction, geometry) made once, and one workspace that only grows.
 */
final class ConvAlgorithms {
    private ConvAlgorithms() {}

    /** The three convolution passes, each with its own cuDNN algorithm enumeration. */
    enum Direction { FORWARD, BACKWARD_DATA, BACKWARD_FILTER }

    /** One algorithm cuDNN proposes: its id, status (0 = usable), whether it is deterministic, and its workspace. */
    record Candidate(int algo, int status, boolean deterministic, long workspaceBytes) {}

    /**
     * Index of the candidate to use, from cuDNN's list (fastest first): the first usable, deterministic one whose
     * workspace is within {@code limit} (Bonsai promises bitwise-repeatable runs, and cuDNN's non-deterministic
     * algorithms accumulate with atomics); -1 when none qualifies (then the caller uses Bonsai's own kernel).
     */
    static int choose(Candidate[] candidates, long limit) {
        for (int i = 0; i < candidates.length; i++) {
            Candidate c = candidates[i];
            if (c.status() == 0 && c.deterministic() && c.workspaceBytes() <= limit) return i;
        }
        return -1;
    }

    /** Plans made once per key (a direction and a geometry); {@code made()} counts how many were made. */
    static final class Cache<K, V> {
        private final Map<K, V> plans = new HashMap<>();
        private int made;

        synchronized V get(K key, Function<K, V> make) {
            V v = plans.get(key);
            if (v == null) {
                v = make.apply(key);
                made++;
                plans.put(key, v);
            }
            return v;
        }

        synchronized int made() { return made; }

        synchronized int size() { return plans.size(); }
    }

    /**
     * One device workspace for every cuDNN call on a stream (calls on one stream never overlap): grown to the largest
     * request, never shrunk, so steady-state training allocates nothing. Growth frees the old block first.
     */
    static final class Workspace {
        private final LongUnaryOperator malloc;
        private final LongConsumer free;
        private long address, bytes;

        Workspace(LongUnaryOperator malloc, LongConsumer free) {
            this.malloc = malloc;
            this.free = free;
        }

        /** The address of at least {@code need} bytes (0 when need is 0). */
        synchronized long ensure(long need) {
            if (need < 0) throw new IllegalArgumentException("workspace: negative size " + need);
            if (need <= bytes) return address;
            if (address != 0) free.accept(address);
            address = 0;
            bytes = 0;
            long a = malloc.applyAsLong(need);
            if (a == 0) throw new CachingAllocator.CudaOutOfMemoryError("cuDNN workspace: cannot allocate " + need + " bytes");
            address = a;
            bytes = need;
            return a;
        }

        synchronized long bytes() { return bytes; }

        synchronized void close() {
            if (address != 0) free.accept(address);
            address = 0;
            bytes = 0;
        }
    }
}
