package ai.bonsai.cuda;

import ai.bonsai.cuda.ConvAlgorithms.Candidate;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The cuDNN host-side logic that needs no GPU: the algorithm choice, plans made once per key, the growing workspace,
 * and loading cuDNN where it is absent (this machine) falling back with one clear line.
 */
class ConvAlgorithmsTest {
    @Test
    void chooseTakesTheFirstUsableDeterministicCandidateWithinTheLimit() {
        Candidate[] cs = {
                new Candidate(6, 0, false, 0),          // fastest, but non-deterministic (atomics)
                new Candidate(1, 9, true, 0),           // not supported for this geometry
                new Candidate(4, 0, true, 3L << 30),    // over the workspace limit
                new Candidate(0, 0, true, 4096),
                new Candidate(2, 0, true, 0),
        };
        assertEquals(3, ConvAlgorithms.choose(cs, 1L << 30));
        assertEquals(2, ConvAlgorithms.choose(cs, 4L << 30), "a larger limit admits the faster one");
        assertEquals(4, ConvAlgorithms.choose(cs, 1024), "a tiny limit leaves only the one without workspace");
        assertEquals(-1, ConvAlgorithms.choose(new Candidate[] {cs[0], cs[1]}, Long.MAX_VALUE), "none qualifies: our kernel");
        assertEquals(-1, ConvAlgorithms.choose(new Candidate[0], Long.MAX_VALUE));
    }

    @Test
    void plansAreMadeOncePerKey() {
        ConvAlgorithms.Cache<String, Integer> cache = new ConvAlgorithms.Cache<>();
        List<String> made = new ArrayList<>();
        for (int round = 0; round < 3; round++) {
            for (String k : new String[] {"fwd 1x16x32x32", "bwd-data 1x16x32x32", "fwd 2x16x32x32"}) {
                int v = cache.get(k, key -> { made.add(key); return key.length(); });
                assertEquals(k.length(), v);
            }
        }
        assertEquals(List.of("fwd 1x16x32x32", "bwd-data 1x16x32x32", "fwd 2x16x32x32"), made);
        assertEquals(3, cache.made());
        assertEquals(3, cache.size());
    }

    @Test
    void workspaceOnlyGrowsAndFreesWhatItReplaces() {
        List<Long> mallocs = new ArrayList<>(), frees = new ArrayList<>();
        long[] next = {0x1000};
        ConvAlgorithms.Workspace ws = new ConvAlgorithms.Workspace(bytes -> { mallocs.add(bytes); return next[0] += 0x1000; }, frees::add);
        assertEquals(0, ws.ensure(0), "no workspace needed, none allocated");
        long a = ws.ensure(100);
        assertEquals(a, ws.ensure(100));
        assertEquals(a, ws.ensure(50), "never shrinks");
        long b = ws.ensure(1000);
        assertNotEquals(a, b);
        assertEquals(List.of(100L, 1000L), mallocs);
        assertEquals(List.of(a), frees, "the smaller block is freed before the larger is allocated");
        assertEquals(1000, ws.bytes());
        ws.close();
        assertEquals(List.of(a, b), frees);
        assertThrows(IllegalArgumentException.class, () -> ws.ensure(-1));

        ConvAlgorithms.Workspace full = new ConvAlgorithms.Workspace(bytes -> 0, x -> fail("nothing to free"));
        CachingAllocator.CudaOutOfMemoryError e = assertThrows(CachingAllocator.CudaOutOfMemoryError.class, () -> full.ensure(12345));
        assertTrue(e.getMessage().contains("cuDNN workspace: cannot allocate 12345 bytes"), e.getMessage());
    }

    @Test
    void withoutCudnnConvolutionStaysOnOurKernelsWithOneLine() {
        List<String> log = new ArrayList<>();
        String old = System.getProperty("bonsai.cudnn");
        try {
            System.setProperty("bonsai.cudnn", "false");
            assertNull(CudnnConv.tryCreate(b -> fail("no allocation"), a -> fail("no free"), false, log::add));
            assertEquals(List.of("bonsai: cuDNN switched off (-Dbonsai.cudnn=false): convolution runs on Bonsai's own CUDA kernels"), log);
            log.clear();
            System.clearProperty("bonsai.cudnn");
            CudnnConv dnn = CudnnConv.tryCreate(b -> fail("no allocation"), a -> fail("no free"), false, log::add);
            org.junit.jupiter.api.Assumptions.assumeTrue(dnn == null, "cuDNN and a GPU are present here; the fallback is not exercised");
            assertEquals(1, log.size(), log.toString());
            assertTrue(log.get(0).startsWith("bonsai: cuDNN not loaded ("), log.get(0));
            assertTrue(log.get(0).contains("convolution runs on Bonsai's own CUDA kernels"), log.get(0));
        } finally {
            if (old == null) System.clearProperty("bonsai.cudnn"); else System.setProperty("bonsai.cudnn", old);
        }
    }
}
