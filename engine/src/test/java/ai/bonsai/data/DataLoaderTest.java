package ai.bonsai.data;

import ai.bonsai.tensor.Shape;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/** Batching, shuffling, determinism across thread counts, resuming, drop-last, and worker failures. */
class DataLoaderTest {
    private static final SyntheticCifar DATA = new SyntheticCifar(5, 37);

    private static List<ImageBatch> collect(DataLoader loader, int epoch) {
        List<ImageBatch> out = new ArrayList<>();
        for (ImageBatch b : loader.epoch(epoch)) out.add(b);
        return out;
    }

    private static DataLoader.Builder train(long seed) {
        return DataLoader.builder(DATA).batchSize(8).shuffle(true).seed(seed).transform(Transform.cifarTrain());
    }

    private static void assertSameBatches(List<ImageBatch> a, List<ImageBatch> b) {
        assertEquals(a.size(), b.size());
        for (int i = 0; i < a.size(); i++) {
            assertEquals(a.get(i).n(), b.get(i).n());
            assertArrayEquals(a.get(i).labels(), b.get(i).labels(), "labels of batch " + i);
            assertArrayEquals(a.get(i).images(), b.get(i).images(), "images of batch " + i);
        }
    }

    @Test void batchesHoldTheDatasetImagesInOrderWithoutShuffle() {
        try (DataLoader loader = DataLoader.builder(DATA).batchSize(10).build()) {
            List<ImageBatch> batches = collect(loader, 0);
            assertEquals(4, batches.size());
            float[] img = new float[3072];
            for (int b = 0; b < 4; b++) {
                ImageBatch batch = batches.get(b);
                assertEquals(b, batch.index());
                int n = b < 3 ? 10 : 7;
                assertEquals(n, batch.n());
                assertEquals(Shape.of(n, 3, 32, 32), batch.shape());
                assertEquals(n * 3072, batch.images().length);
                for (int k = 0; k < n; k++) {
                    DATA.image(b * 10 + k, img, 0);
                    assertArrayEquals(img, Arrays.copyOfRange(batch.images(), k * 3072, (k + 1) * 3072));
                    assertEquals(DATA.label(b * 10 + k), batch.labels()[k]);
                }
            }
        }
    }

    @Test void sameSeedGivesIdenticalBatchesWhateverTheThreadCount() {
        try (DataLoader a = train(42).workers(0).build();
             DataLoader b = train(42).workers(3).prefetch(5).build();
             DataLoader c = train(42).workers(1).prefetch(1).build()) {
            for (int epoch = 0; epoch < 2; epoch++) {
                List<ImageBatch> ref = collect(a, epoch);
                assertSameBatches(ref, collect(b, epoch));
                assertSameBatches(ref, collect(c, epoch));
            }
        }
    }

    @Test void orderIsAPermutationThatChangesWithEpochAndSeed() {
        try (DataLoader a = train(42).build(); DataLoader b = train(43).build()) {
            int[] e0 = a.order(0), e1 = a.order(1);
            int[] sorted = e0.clone();
            Arrays.sort(sorted);
            for (int i = 0; i < sorted.length; i++) assertEquals(i, sorted[i]);
            assertFalse(Arrays.equals(e0, e1), "a new permutation each epoch");
            assertFalse(Arrays.equals(e0, b.order(0)), "another seed, another order");
            assertArrayEquals(e0, train(42).build().order(0));

            long[] la = collect(a, 0).get(0).labels(), lb = collect(b, 0).get(0).labels();
            float[] ia = collect(a, 0).get(0).images(), ib = collect(b, 0).get(0).images();
            assertFalse(Arrays.equals(la, lb) && Arrays.equals(ia, ib));
        }
    }

    @Test void resumingMidEpochGivesTheSameRemainingBatches() {
        try (DataLoader a = train(9).build(); DataLoader b = train(9).workers(2).build()) {
            List<ImageBatch> full = collect(a, 3);
            List<ImageBatch> rest = new ArrayList<>();
            for (ImageBatch x : b.epoch(3, 2)) rest.add(x);
            assertEquals(2, rest.get(0).index());
            assertSameBatches(full.subList(2, full.size()), rest);
        }
    }

    @Test void dropLastCounts() {
        SyntheticCifar ten = new SyntheticCifar(1, 10);
        try (DataLoader keep = DataLoader.builder(ten).batchSize(4).build();
             DataLoader drop = DataLoader.builder(ten).batchSize(4).dropLast(true).build();
             DataLoader exact = DataLoader.builder(ten).batchSize(5).dropLast(true).build()) {
            assertEquals(3, keep.batchesPerEpoch());
            assertEquals(List.of(4, 4, 2), collect(keep, 0).stream().map(ImageBatch::n).toList());
            assertEquals(2, drop.batchesPerEpoch());
            assertEquals(List.of(4, 4), collect(drop, 0).stream().map(ImageBatch::n).toList());
            assertEquals(List.of(5, 5), collect(exact, 0).stream().map(ImageBatch::n).toList());
        }
        try (DataLoader tooFew = DataLoader.builder(ten).batchSize(11).dropLast(true).build()) {
            assertEquals(0, tooFew.batchesPerEpoch());
            assertFalse(tooFew.epoch(0).iterator().hasNext());
        }
    }

    /** A dataset whose example {@code bad} cannot be read. */
    private static final class Failing implements Dataset {
        final IllegalStateException failure = new IllegalStateException("disk on fire at example 13");

        @Override public int size() { return 20; }
        @Override public Shape imageShape() { return Shape.of(3, 32, 32); }
        @Override public int numClasses() { return 10; }
        @Override public int label(int i) { return i % 10; }
        @Override public void image(int i, float[] dst, int offset) { if (i == 13) throw failure; }
        @Override public String description() { return "failing test data"; }
    }

    @Test void workerExceptionReachesTheConsumerWithItsCause() {
        for (int workers : new int[] {0, 2}) {
            Failing data = new Failing();
            try (DataLoader loader = DataLoader.builder(data).batchSize(4).workers(workers).prefetch(3).build()) {
                Iterator<ImageBatch> it = loader.epoch(0).iterator();
                for (int b = 0; b < 3; b++) assertEquals(b, it.next().index());
                RuntimeException e = assertThrows(RuntimeException.class, it::next);
                assertSame(data.failure, e.getCause());
                assertTrue(e.getMessage().startsWith("DataLoader: batch 3 of epoch 0 failed"), e.getMessage());
                assertTrue(e.getMessage().contains("disk on fire at example 13"), e.getMessage());
                assertFalse(it.hasNext(), "a failed epoch ends");
            }
        }
    }

    @Test void workersAreDaemonsAndCloseStopsThem() throws InterruptedException {
        DataLoader loader = train(1).workers(2).build();
        Iterator<ImageBatch> it = loader.epoch(0).iterator();
        it.next();
        List<Thread> threads = Thread.getAllStackTraces().keySet().stream()
                .filter(t -> t.getName().startsWith("bonsai-data-loader-")).toList();
        assertFalse(threads.isEmpty());
        for (Thread t : threads) assertTrue(t.isDaemon(), t.getName());
        loader.close();
        loader.close();   // idempotent
        var e = assertThrows(IllegalStateException.class, it::next);
        assertTrue(e.getMessage().startsWith("DataLoader: closed"), e.getMessage());
        assertThrows(IllegalStateException.class, () -> loader.epoch(1).iterator());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        for (Thread t : threads) t.join(Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime())));
        for (Thread t : threads) assertFalse(t.isAlive(), t.getName() + " still running after close()");
    }

    @Test void optionsAreValidated() {
        var e = assertThrows(IllegalArgumentException.class, () -> DataLoader.builder(DATA).batchSize(0));
        assertEquals("DataLoader: batch size must be positive, got 0", e.getMessage());
        try (DataLoader l = DataLoader.builder(DATA).batchSize(8).build()) {
            e = assertThrows(IllegalArgumentException.class, () -> l.epoch(0, 6));
            assertEquals("DataLoader.epoch: first batch must be in [0, 5], got 6", e.getMessage());
        }
    }

    /** DATA, except that the given examples throw UnreadableExampleException (and example -1 never does). */
    private static Dataset withUnreadable(Set<Integer> bad) {
        return new Dataset() {
            @Override public int size() { return DATA.size(); }
            @Override public Shape imageShape() { return DATA.imageShape(); }
            @Override public int numClasses() { return DATA.numClasses(); }
            @Override public int label(int i) { return DATA.label(i); }
            @Override public void image(int i, float[] dst, int offset) {
                if (bad.contains(i)) throw new UnreadableExampleException("file-" + i + ".png", "cannot be decoded (test)", null);
                DATA.image(i, dst, offset);
            }
            @Override public String description() { return "DATA with unreadable " + bad; }
        };
    }

    @Test void unreadableExamplesAreLeftOutAndTheOthersKeepTheirAugmentation() {
        Set<Integer> bad = Set.of(3, 8, 9, 10, 11, 12, 13, 14, 15, 36);   // batch 1 (8..15) is entirely unreadable
        for (int workers : new int[] {0, 1, 3}) {
            List<ImageBatch> clean, skipping;
            try (DataLoader a = DataLoader.builder(DATA).batchSize(8).seed(4).transform(Transform.cifarTrain()).workers(workers).build();
                 DataLoader b = DataLoader.builder(withUnreadable(bad)).batchSize(8).seed(4).transform(Transform.cifarTrain()).workers(workers).build()) {
                clean = collect(a, 2);
                skipping = collect(b, 2);
                assertEquals(new java.util.TreeSet<>(bad), b.skipped().keySet());
                assertEquals("file-36.png: cannot be decoded (test)", b.skipped().get(36));
                assertTrue(b.skippedSummary().startsWith("10 unreadable images were skipped"), b.skippedSummary());
                assertNull(a.skippedSummary());
            }
            assertEquals(List.of(0, 2, 3, 4), skipping.stream().map(ImageBatch::index).toList(), "the empty batch 1 is left out");
            int per = 3 * 32 * 32;
            for (ImageBatch s : skipping) {
                ImageBatch c = clean.get(s.index());
                int k = 0;
                for (int j = 0; j < c.n(); j++) {
                    int example = s.index() * 8 + j;
                    if (bad.contains(example)) continue;
                    assertEquals(example, s.examples()[k]);
                    assertEquals(c.labels()[j], s.labels()[k]);
                    assertArrayEquals(Arrays.copyOfRange(c.images(), j * per, (j + 1) * per), Arrays.copyOfRange(s.images(), k * per, (k + 1) * per),
                            "example " + example + " is augmented as without the unreadable ones (workers " + workers + ")");
                    k++;
                }
                assertEquals(s.n(), k);
            }
            assertEquals(37 - bad.size(), skipping.stream().mapToInt(ImageBatch::n).sum());
        }
    }
}
