package ai.bonsai.backend;

import ai.bonsai.tensor.Buffer;
import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Device;

import java.util.ArrayDeque;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import java.util.Set;

/**
 * Reuses the buffers of one training step in the next. A step of a CNN allocates the same few hundred buffers, of
 * the same sizes, every time (activations, their gradients, batch-norm statistics): hundreds of MiB that the JVM
 * would zero on allocation and the collector would copy and free a step later. Inside an {@linkplain #open() open}
 * scope, a backend that recycles (the CPU backend) takes its buffers from this arena's free lists; when the scope
 * closes, every buffer handed out inside it goes back on them for the next scope.
 *
 * <p><b>What the scope may cover.</b> Everything allocated inside it is dead when it closes, so the caller opens it
 * around work whose results it reads before closing: the forward pass, the loss, the backward pass, the accuracy.
 * Leaf gradients are the exception the engine makes itself: {@code Tensor.backward} allocates them
 * {@linkplain #suspend() outside} the arena, since an optimiser reads them later. State created lazily and kept
 * across steps (an optimiser's momentum) must be created outside a scope, so the optimiser step runs after it closes.
 * A buffer used after its scope closed fails loudly ("used after its step arena closed") instead of reading the next
 * step's values: closing retires each buffer's handle and puts a new handle on the same memory in the free list.
 *
 * <p>Zeroing. {@link Backend#allocate} still returns zeros (a reused buffer is cleared); {@link Backend#empty}
 * returns a reused buffer as it is, for outputs the kernel overwrites in full. With {@link #poisonReleased} (tests)
 * each released float buffer is filled with NaN, so a kernel that reads what it did not write shows up at once.
 *
 * <p>One arena belongs to one thread at a time: only allocations on the thread that opened the scope are taken from
 * it (kernels' worker threads do not allocate buffers). Free buffers that no scope asked for in the last two scopes
 * are dropped, so a last, smaller batch of an epoch does not keep its sizes alive for good.
 */
public final class StepArena {
    private static final ThreadLocal<StepArena> CURRENT = new ThreadLocal<>();
    /** Tests set it: released float buffers are filled with NaN, integer ones with -1. */
    private static volatile boolean poison = Boolean.getBoolean("bonsai.arena.poison");

    private final Map<Key, Pool> free = new HashMap<>();
    /** Buffers handed out in the open scope, by identity (a retired handle and its successor are different objects). */
    private final Set<Buffer> lent = Collections.newSetFromMap(new IdentityHashMap<>());
    private long scopes, reused, allocated, early;
    private boolean open;

    /** A buffer the arena can hand out again under a new handle. Backends that recycle implement it in their buffers. */
    public interface Recyclable extends Buffer {
        /** A new handle on this memory; this handle is retired: any later use by a kernel throws. */
        Recyclable reissue();

        /** Fills the memory with NaN (floats) or -1 (integers). */
        void poison();
    }

    private record Key(Device device, DType dtype, int length) {}

    private static final class Pool {
        final ArrayDeque<Recyclable> buffers = new ArrayDeque<>();
        long lastUsed;
    }

    /** The arena whose scope is open on the calling thread, or null. Backends call this on each allocation. */
    public static StepArena current() { return CURRENT.get(); }

    /**
     * Opens a scope on the calling thread: buffers allocated on it until {@link Scope#close()} come from this arena
     * and return to it then. Scopes of one arena do not nest; another arena's scope inside this one takes over
     * until it closes. (A standalone evaluation opens none: it {@linkplain #suspend() suspends} any arena instead;
     * the trainer's evaluation between epochs opens one scope of the step's arena per batch.)
     */
    public Scope open() {
        if (open) throw new IllegalStateException("StepArena: a scope of this arena is already open");
        open = true;
        StepArena outer = CURRENT.get();
        CURRENT.set(this);
        scopes++;
        return new Scope(outer);
    }

    /** Allocations on the calling thread bypass any arena until the returned handle is closed. */
    public static Suspension suspend() {
        StepArena a = CURRENT.get();
        CURRENT.remove();
        return new Suspension(a);
    }

    /**
     * For backends: a free buffer of exactly this device, type and length, lent to the open scope, or null when
     * there is none (the backend then allocates one and {@linkplain #lend lends} it).
     */
    public Buffer take(Device device, DType dtype, int length) {
        Pool p = free.get(new Key(device, dtype, length));
        Recyclable b = p == null ? null : p.buffers.poll();
        if (b == null) return null;
        reused++;
        lent.add(b);
        return b;
    }

    /** For backends: records a newly allocated buffer as lent to the open scope, and returns it. */
    public <B extends Recyclable> B lend(B b) {
        allocated++;
        lent.add(b);
        return b;
    }

    /**
     * Gives {@code b} back before the scope ends, when the caller knows nothing can read it any more (the backward pass
     * does this with gradients it has passed on): later allocations in the same scope can then reuse its memory. A
     * buffer that the calling thread's open scope did not hand out is left alone. Its handle is retired, as at the end of
     * a scope, so a mistaken early release fails loudly rather than sharing memory.
     */
    public static void releaseEarly(Buffer b) {
        StepArena a = CURRENT.get();
        if (a != null && a.lent.remove(b)) {
            a.recycle(b);
            a.early++;
        }
    }

    /** Buffers given back before the end of their scope, over all scopes. */
    public long releasedEarly() { return early; }

    /** Buffers taken from the free lists so far, over all scopes. */
    public long reused() { return reused; }

    /** Buffers the backend had to allocate because no free one fitted, over all scopes. */
    public long allocated() { return allocated; }

    /** Bytes held in the free lists now (between scopes: everything the arena keeps). */
    public long freeBytes() {
        long bytes = 0;
        for (Map.Entry<Key, Pool> e : free.entrySet()) bytes += (long) e.getKey().length * e.getKey().dtype.bytes() * e.getValue().buffers.size();
        return bytes;
    }

    /** For tests: fill released buffers with NaN (floats) or -1 (integers). Also set by {@code -Dbonsai.arena.poison=true}. */
    public static void poisonReleased(boolean on) { poison = on; }

    private void recycle(Buffer b) {
        Recyclable fresh = ((Recyclable) b).reissue();
        if (poison) fresh.poison();
        Pool p = free.computeIfAbsent(new Key(b.backend().device(), b.dtype(), b.length()), k -> new Pool());
        p.lastUsed = scopes;
        p.buffers.add(fresh);
    }

    private void release() {
        for (Buffer b : lent) recycle(b);
        lent.clear();
        // Sizes no scope asked for in the last two: a one-off batch size, or a model that changed shape.
        for (Iterator<Pool> it = free.values().iterator(); it.hasNext(); ) {
            if (it.next().lastUsed < scopes - 1) it.remove();
        }
    }

    /** An open scope of a {@link StepArena}. */
    public final class Scope implements AutoCloseable {
        private final StepArena outer;
        private boolean closed;

        private Scope(StepArena outer) { this.outer = outer; }

        /** Ends the scope: every buffer allocated in it is retired and its memory goes back to the free lists. */
        @Override public void close() {
            if (closed) return;
            closed = true;
            if (CURRENT.get() == StepArena.this) {
                if (outer == null) CURRENT.remove(); else CURRENT.set(outer);
            }
            open = false;
            release();
        }
    }

    /** Ends a {@link #suspend()}: the arena that was current before it is current again. */
    public static final class Suspension implements AutoCloseable {
        private final StepArena arena;

        private Suspension(StepArena arena) { this.arena = arena; }

        @Override public void close() {
            if (arena != null) CURRENT.set(arena);
        }
    }
}
