package ai.bonsai.data;

import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Shape;

import java.util.ArrayDeque;
import java.util.Iterator;
import java.util.NoSuchElementException;
import java.util.concurrent.CancellationException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Turns a {@link Dataset} into batches, one epoch at a time:
 * <pre>{@code
 * try (DataLoader loader = DataLoader.builder(train).batchSize(128).shuffle(true).seed(42)
 *         .transform(Transform.cifarTrain()).dropLast(true).build()) {
 *     for (int epoch = 0; epoch < epochs; epoch++)
 *         for (ImageBatch b : loader.epoch(epoch)) step(b.images(), b.labels(), b.n());
 * }
 * }</pre>
 *
 * <p>Determinism: the order of epoch {@code e} is a permutation drawn from a generator derived from (seed, e),
 * and batch {@code b} of that epoch is augmented with a generator derived from (seed, e, b), split once per
 * image. So every batch is a pure function of (dataset, seed, epoch, batch index): two loaders with the same
 * seed give identical batches whatever the number of worker threads, and a run resumed from a checkpoint
 * needs only the seed, the epoch and the next batch index ({@link #epoch(int, int)}), not any generator state.
 *
 * <p>Prefetching: with {@code workers > 0} batches are assembled on daemon threads, at most {@code prefetch}
 * batches ahead of the consumer, and handed over in order. An exception thrown while assembling a batch is
 * rethrown to the consumer from {@code next()}, as the cause of an exception naming the epoch and batch.
 * {@link #close()} stops the workers. With several workers, several batches are decoded at once: for image folders
 * (JPEG decoding and resizing) {@code workers(2)} keeps two cores busy ahead of training.
 *
 * <p>Unreadable examples: an example whose {@link Dataset#image} throws {@link UnreadableExampleException} (an image
 * that does not decode) is reported once on standard error with its file, left out of its batch (which is then
 * smaller; a batch left empty is skipped) and listed by {@link #skipped()}; the epoch goes on. The other images keep
 * their random streams, so skipping changes nothing else.
 *
 * <p>One epoch at a time: starting an epoch cancels the batches still pending from the previous one.
 */
public final class DataLoader implements AutoCloseable {
    /** Stream identifier for the epoch permutations, distinct from any batch index. */
    private static final long ORDER_STREAM = -1;

    private static final AtomicInteger LOADER_IDS = new AtomicInteger();

    private final Dataset dataset;
    private final int batchSize;
    private final boolean shuffle;
    private final long seed;
    private final boolean dropLast;
    private final Transform transform;
    private final int prefetch;
    private final ExecutorService workers;   // null: assemble on the consumer's thread
    private final int c, h, w;
    private final java.util.concurrent.ConcurrentMap<Integer, String> skipped = new java.util.concurrent.ConcurrentHashMap<>();
    private EpochIterator current;
    private volatile boolean closed;

    private DataLoader(Builder b) {
        this.dataset = b.dataset;
        this.batchSize = b.batchSize;
        this.shuffle = b.shuffle;
        this.seed = b.seed;
        this.dropLast = b.dropLast;
        this.transform = b.transform;
        this.prefetch = b.workers == 0 ? 0 : b.prefetch;
        Shape s = dataset.imageShape();
        if (s.rank() != 3) throw new IllegalArgumentException("DataLoader: dataset image shape must be (C, H, W), got " + s + " from " + dataset.description());
        this.c = s.dim(0);
        this.h = s.dim(1);
        this.w = s.dim(2);
        if (b.workers == 0 || b.prefetch == 0) {
            this.workers = null;
        } else {
            int id = LOADER_IDS.incrementAndGet();
            AtomicInteger threadIds = new AtomicInteger();
            this.workers = Executors.newFixedThreadPool(b.workers, r -> {
                Thread t = new Thread(r, "bonsai-data-loader-" + id + "-" + threadIds.incrementAndGet());
                t.setDaemon(true);   // never keep the JVM alive for batches nobody will read
                return t;
            });
        }
    }

    public static Builder builder(Dataset dataset) {
        return new Builder(dataset);
    }

    public Dataset dataset() { return dataset; }

    public int batchSize() { return batchSize; }

    /** Number of batches one epoch yields. */
    public int batchesPerEpoch() {
        int n = dataset.size();
        return dropLast ? n / batchSize : (n + batchSize - 1) / batchSize;
    }

    /** The order in which epoch {@code epoch} visits the examples (identity when not shuffling). */
    public int[] order(int epoch) {
        int n = dataset.size();
        int[] order = new int[n];
        for (int i = 0; i < n; i++) order[i] = i;
        if (shuffle) {
            Generator g = new Generator(Seeds.derive(seed, ORDER_STREAM, epoch));
            for (int i = n - 1; i > 0; i--) {            // Fisher-Yates
                int j = g.nextInt(i + 1);
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
        }
        return order;
    }

    /** The batches of epoch {@code epoch}, from the first. */
    public Iterable<ImageBatch> epoch(int epoch) {
        return epoch(epoch, 0);
    }

    /**
     * The batches of epoch {@code epoch} from batch {@code firstBatch} on: the same batches a full pass would
     * give from that point, for resuming a run mid-epoch.
     */
    public Iterable<ImageBatch> epoch(int epoch, int firstBatch) {
        if (epoch < 0) throw new IllegalArgumentException("DataLoader.epoch: epoch must be non-negative, got " + epoch);
        if (firstBatch < 0 || firstBatch > batchesPerEpoch()) {
            throw new IllegalArgumentException("DataLoader.epoch: first batch must be in [0, " + batchesPerEpoch() + "], got " + firstBatch);
        }
        return () -> start(epoch, firstBatch);
    }

    private synchronized Iterator<ImageBatch> start(int epoch, int firstBatch) {
        if (closed) throw new IllegalStateException("DataLoader: closed; build a new loader to read " + dataset.description());
        if (current != null) current.cancel();
        current = new EpochIterator(epoch, order(epoch), firstBatch);
        return current;
    }

    /** Assembles batch {@code index} of {@code epoch}; runs on a worker thread when prefetching. */
    private ImageBatch assemble(int epoch, int index, int[] order) {
        int from = index * batchSize;
        int n = Math.min(batchSize, order.length - from);
        int per = c * h * w;
        float[] images = new float[Math.multiplyExact(n, per)];
        long[] labels = new long[n];
        int[] examples = new int[n];
        Generator g = new Generator(Seeds.derive(seed, epoch, index));
        int kept = 0;
        for (int k = 0; k < n; k++) {
            int example = order[from + k];
            // One child stream per image: an image's augmentation does not depend on how many values the
            // transforms drew for the images before it (nor on whether one of them was unreadable).
            Generator r = g.split();
            try {
                dataset.image(example, images, kept * per, r);
            } catch (UnreadableExampleException e) {
                if (skipped.putIfAbsent(example, e.getMessage()) == null) {
                    System.err.println("bonsai: skipping an unreadable image: " + e.getMessage());
                }
                continue;
            }
            labels[kept] = dataset.label(example);
            examples[kept] = example;
            transform.apply(images, kept * per, c, h, w, r);
            kept++;
        }
        if (kept == 0) return null;   // every image of the batch was unreadable: the iterator moves on
        if (kept < n) {
            images = java.util.Arrays.copyOf(images, kept * per);
            labels = java.util.Arrays.copyOf(labels, kept);
            examples = java.util.Arrays.copyOf(examples, kept);
        }
        return new ImageBatch(epoch, index, images, labels, kept, Shape.of(kept, c, h, w), examples);
    }

    /**
     * The examples left out so far because they could not be read ({@link UnreadableExampleException}), by dataset
     * index, with the reason (which names the file). Each is reported once on standard error when first met.
     */
    public java.util.SortedMap<Integer, String> skipped() {
        return new java.util.TreeMap<>(skipped);
    }

    /** One line for logs: how many examples were skipped as unreadable, or null when none was. */
    public String skippedSummary() {
        int k = skipped.size();
        if (k == 0) return null;
        return k + " unreadable image" + (k == 1 ? " was" : "s were") + " skipped (each reported above with its path) in " + dataset.description();
    }

    /** Stops the worker threads; batches still being assembled are abandoned. Idempotent. */
    @Override public synchronized void close() {
        if (closed) return;
        closed = true;
        if (current != null) current.cancel();
        if (workers != null) workers.shutdownNow();
    }

    private final class EpochIterator implements Iterator<ImageBatch> {
        private final int epoch;
        private final int[] order;
        private final int end;
        private int nextToReturn;
        private int nextToSubmit;
        private final ArrayDeque<Future<ImageBatch>> pending = new ArrayDeque<>();
        private boolean failed;
        private ImageBatch peeked;

        EpochIterator(int epoch, int[] order, int firstBatch) {
            this.epoch = epoch;
            this.order = order;
            this.end = batchesPerEpoch();
            this.nextToReturn = firstBatch;
            this.nextToSubmit = firstBatch;
            fill();
        }

        /** Looks ahead past batches whose every image was unreadable (they are left out). */
        @Override public boolean hasNext() {
            while (peeked == null && !failed && nextToReturn < end) peeked = fetch();
            return peeked != null;
        }

        @Override public ImageBatch next() {
            if (!hasNext()) throw new NoSuchElementException("DataLoader: epoch " + epoch + " has no batch after " + (nextToReturn - 1));
            ImageBatch b = peeked;
            peeked = null;
            return b;
        }

        /** The next batch, or null when all its images were unreadable. */
        private ImageBatch fetch() {
            if (closed) throw new IllegalStateException("DataLoader: closed while reading epoch " + epoch);
            int index = nextToReturn;
            ImageBatch batch;
            if (workers == null) {
                try {
                    batch = assemble(epoch, index, order);
                } catch (RuntimeException | Error e) {
                    failed = true;
                    throw new RuntimeException("DataLoader: batch " + index + " of epoch " + epoch + " failed: " + e, e);
                }
            } else {
                Future<ImageBatch> f;
                synchronized (this) { f = pending.poll(); }
                if (f == null) throw new IllegalStateException("DataLoader: batch " + index + " of epoch " + epoch + " was cancelled (the loader was closed, or another epoch was started)");
                batch = await(f, index);
            }
            nextToReturn++;
            fill();
            return batch;
        }

        private ImageBatch await(Future<ImageBatch> f, int index) {
            try {
                return f.get();
            } catch (ExecutionException e) {
                failed = true;
                cancel();
                Throwable cause = e.getCause();
                throw new RuntimeException("DataLoader: batch " + index + " of epoch " + epoch + " failed on a worker thread: " + cause, cause);
            } catch (InterruptedException e) {
                failed = true;
                cancel();
                Thread.currentThread().interrupt();
                throw new IllegalStateException("DataLoader: interrupted while waiting for batch " + index + " of epoch " + epoch, e);
            } catch (CancellationException e) {
                failed = true;
                throw new IllegalStateException("DataLoader: batch " + index + " of epoch " + epoch
                        + " was cancelled (the loader was closed, or another epoch was started)", e);
            }
        }

        /** Keeps up to {@code prefetch} batches submitted ahead of the consumer. */
        private synchronized void fill() {
            if (workers == null || failed || closed) return;
            while (pending.size() < prefetch && nextToSubmit < end) {
                int index = nextToSubmit++;
                pending.add(workers.submit(() -> assemble(epoch, index, order)));
            }
        }

        /** May be called from another thread (close()), hence synchronized with fill() and next(). */
        synchronized void cancel() {
            for (Future<ImageBatch> f : pending) f.cancel(true);
            pending.clear();
            nextToSubmit = end;
        }
    }

    /** Options; every one has a default, so {@code builder(ds).build()} is a valid loader. */
    public static final class Builder {
        private final Dataset dataset;
        private int batchSize = 128;
        private boolean shuffle = false;
        private long seed = 0;
        private boolean dropLast = false;
        private Transform transform = Transform.identity();
        private int workers = 1;
        private int prefetch = 2;

        private Builder(Dataset dataset) {
            if (dataset == null) throw new IllegalArgumentException("DataLoader: dataset must not be null");
            this.dataset = dataset;
        }

        /** Examples per batch (default 128). */
        public Builder batchSize(int batchSize) {
            if (batchSize < 1) throw new IllegalArgumentException("DataLoader: batch size must be positive, got " + batchSize);
            this.batchSize = batchSize;
            return this;
        }

        /** Visit the examples in a new random order each epoch (default: dataset order). */
        public Builder shuffle(boolean shuffle) {
            this.shuffle = shuffle;
            return this;
        }

        /** Root seed of the shuffling and augmentation streams (default 0). */
        public Builder seed(long seed) {
            this.seed = seed;
            return this;
        }

        /** Draws the root seed from {@code g}, so a run's single Generator seeds its loader too. */
        public Builder seed(Generator g) {
            this.seed = g.nextLong();
            return this;
        }

        /** Leave out the last, smaller batch of each epoch (default: keep it). */
        public Builder dropLast(boolean dropLast) {
            this.dropLast = dropLast;
            return this;
        }

        /** Applied to every image after it is read (default: none). */
        public Builder transform(Transform transform) {
            if (transform == null) throw new IllegalArgumentException("DataLoader: transform must not be null (use Transform.identity())");
            this.transform = transform;
            return this;
        }

        /** Worker threads assembling batches (default 1); 0 assembles on the consumer's thread. */
        public Builder workers(int workers) {
            if (workers < 0) throw new IllegalArgumentException("DataLoader: workers must be non-negative, got " + workers);
            this.workers = workers;
            return this;
        }

        /** Batches assembled ahead of the consumer (default 2); 0 assembles on the consumer's thread. */
        public Builder prefetch(int prefetch) {
            if (prefetch < 0) throw new IllegalArgumentException("DataLoader: prefetch must be non-negative, got " + prefetch);
            this.prefetch = prefetch;
            return this;
        }

        public DataLoader build() {
            return new DataLoader(this);
        }
    }
}
