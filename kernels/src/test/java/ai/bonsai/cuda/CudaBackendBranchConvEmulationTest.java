package ai.bonsai.cuda;

import ai.bonsai.backend.Backend;
import ai.bonsai.backend.BranchConv;
import ai.bonsai.backend.cpu.CpuBackend;
import ai.bonsai.tensor.Buffer;
import ai.bonsai.tensor.Device;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Random;

import static ai.bonsai.cuda.CudaBackendEmulationTest.assertClose;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The packed multi-branch convolution (overwrite with disjoint branches, accumulate with overlapping ones, the
 * output stage, the pair form with x == y) on the CUDA backend under emulation against the CPU backend, with the
 * same plan built on each; every block size, two fiber orders.
 */
class CudaBackendBranchConvEmulationTest {
    private static final EnumMap<EmulatorRuntime.Order, CudaBackend> GPU = new EnumMap<>(EmulatorRuntime.Order.class);
    private static final Backend CPU = CpuBackend.get();

    @BeforeAll static void start() {
        for (EmulatorRuntime.Order o : CudaBackendEmulationTest.ORDERS)
            GPU.put(o, new CudaBackend(new EmulatorRuntime(EmulatorBuild.binary(), o, 31), Device.cuda(0)));
    }

    @AfterAll static void stop() { GPU.values().forEach(b -> b.runtime().close()); GPU.clear(); }

    static java.util.stream.Stream<org.junit.jupiter.params.provider.Arguments> ewCases() { return CudaBackendEmulationTest.ewCases(); }

    /** Branch specs drawn once, then built on a backend: {in, out, weight, scale, shift, relu}. */
    record Spec(int[] in, int[] out, float[] w, float[] scale, float[] shift, boolean relu) {}

    static List<Spec> specs(Random r, int cIn, int cOut, int k, boolean disjoint) {
        List<Spec> s = new ArrayList<>();
        List<Integer> perm = new ArrayList<>();
        for (int i = 0; i < cOut; i++) perm.add(i);
        java.util.Collections.shuffle(perm, r);
        int used = 0, count = 1 + r.nextInt(3);
        for (int b = 0; b < count && used < cOut; b++) {
            int width = disjoint ? (b == count - 1 ? cOut - used : 1 + r.nextInt(cOut - used)) : 1 + r.nextInt(cOut);
            int[] out = new int[width];
            for (int j = 0; j < width; j++) out[j] = disjoint ? perm.get(used + j) : perm.get((j + b) % cOut);
            used += disjoint ? width : 0;
            int inW = 1 + r.nextInt(cIn);
            List<Integer> inPerm = new ArrayList<>();
            for (int i = 0; i < cIn; i++) inPerm.add(i);
            java.util.Collections.shuffle(inPerm, r);                    // distinct channels in any order, as BranchConv requires
            int[] in = new int[inW];
            for (int i = 0; i < inW; i++) in[i] = inPerm.get(i);
            s.add(new Spec(in, out, rand(r, width * inW * k * k), rand(r, width), rand(r, width), r.nextBoolean()));
        }
        return s;
    }

    static float[] rand(Random r, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = r.nextFloat() * 2 - 1;
        return x;
    }

    static BranchConv build(Backend be, List<Spec> specs, int cIn, int cOut, int k, int st, int pad, float[] outShift, boolean outRelu) {
        List<BranchConv.Branch> bs = new ArrayList<>();
        for (Spec s : specs) bs.add(new BranchConv.Branch(s.in, s.out, be.fromFloats(s.w), be.fromFloats(s.scale), be.fromFloats(s.shift), s.relu));
        return new BranchConv(cIn, cOut, k, st, pad, bs, outShift == null ? null : be.fromFloats(outShift), outRelu);
    }

    @ParameterizedTest(name = "{0} block {1}")
    @MethodSource("ewCases")
    void branchConvMatchesCpu(EmulatorRuntime.Order o, int block) {
        CudaBackend g = GPU.get(o);
        g.forceBlock(block);
        int[][] cases = {{2, 5, 6, 7, 5, 3, 1, 1}, {1, 3, 4, 13, 13, 3, 2, 1}, {3, 4, 3, 3, 3, 1, 1, 0}};   // n cIn cOut h w k stride pad
        long seed = 1;
        for (int[] c : cases) {
            int n = c[0], cIn = c[1], cOut = c[2], h = c[3], w = c[4], k = c[5], st = c[6], pad = c[7];
            int oh = (h + 2 * pad - k) / st + 1, ow = (w + 2 * pad - k) / st + 1;
            for (boolean disjoint : new boolean[] {true, false}) {
                Random r = new Random(seed++);
                List<Spec> specs = specs(r, cIn, cOut, k, disjoint);
                float[] outShift = r.nextBoolean() ? rand(r, cOut) : null;
                boolean outRelu = r.nextBoolean();
                float[] x = rand(r, n * cIn * h * w), y0 = rand(r, n * cOut * oh * ow);
                BranchConv cp = build(CPU, specs, cIn, cOut, k, st, pad, outShift, outRelu);
                BranchConv gp = build(g, specs, cIn, cOut, k, st, pad, outShift, outRelu);
                boolean accumulate = !disjoint || r.nextBoolean();
                Buffer cy = CPU.fromFloats(y0), gy = g.fromFloats(y0);
                CPU.branchConv2d(cp, CPU.fromFloats(x), n, h, w, cy, accumulate);
                g.branchConv2d(gp, g.fromFloats(x), n, h, w, gy, accumulate);
                assertClose(CPU.toFloats(cy), g.toFloats(gy), "branchConv2d " + java.util.Arrays.toString(c) + " disjoint=" + disjoint + " accumulate=" + accumulate);
            }
        }
        // The pair: conv_a (3 -> 4 channels, disjoint, overwrite) then conv_b (4 -> 3) accumulated into its own input.
        Random r = new Random(99);
        int n = 2, ch = 3, mid = 4, h = 5, w = 6;
        List<Spec> a = specs(r, ch, mid, 3, true), b = specs(r, mid, ch, 3, false);
        BranchConv ca = build(CPU, a, ch, mid, 3, 1, 1, null, false), cb = build(CPU, b, mid, ch, 3, 1, 1, rand(r, ch), true);
        BranchConv ga = build(g, a, ch, mid, 3, 1, 1, null, false), gb = build(g, b, mid, ch, 3, 1, 1, CPU.toFloats(cb.outputShift()), true);
        float[] x = rand(r, n * ch * h * w);
        Buffer cx = CPU.fromFloats(x), gx = g.fromFloats(x);
        CPU.branchConv2dPair(ca, cb, cx, n, h, w, cx, true);
        g.branchConv2dPair(ga, gb, gx, n, h, w, gx, true);
        assertClose(CPU.toFloats(cx), g.toFloats(gx), "branchConv2dPair into its own input");

        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> g.branchConv2d(ga, gx, n, h, w, gx, false));
        assertTrue(e.getMessage().contains("x and y must be different buffers"), e.getMessage());
    }

    /**
     * The fused pair (branch_pair) against the CPU's: one tile and many, a tile shrunk to fit shared memory, a
     * strided conv_b, in place (whole-image tile) and in place too large for shared memory (Backend's default through
     * a temporary), overwrite and accumulate, 1x1 images.
     */
    @ParameterizedTest(name = "{0} block {1}")
    @MethodSource("ewCases")
    void branchConvPairMatchesCpu(EmulatorRuntime.Order o, int block) {
        CudaBackend g = GPU.get(o);
        g.forceBlock(block);
        // n c0 c1 c2 h w k1 s1 p1 k2 s2 p2 inPlace accumulate, expected tile (0 = through a temporary)
        int[][] cases = {
                {2, 3, 4, 3, 5, 6, 3, 1, 1, 3, 1, 1, 1, 1, 6},
                {1, 3, 5, 4, 37, 21, 3, 1, 1, 3, 1, 1, 0, 0, 16},
                {3, 4, 6, 5, 13, 13, 1, 1, 0, 3, 2, 1, 0, 1, 7},
                {1, 2, 200, 3, 9, 11, 3, 1, 1, 3, 1, 1, 0, 1, 4},
                {2, 3, 200, 3, 9, 9, 3, 1, 1, 3, 1, 1, 1, 1, 0},
                {2, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 1, 0, 1},
                {1, 5, 3, 2, 7, 4, 3, 2, 0, 1, 1, 0, 0, 0, 3},
        };
        long seed = 500;
        for (int[] c : cases) {
            int n = c[0], c0 = c[1], c1 = c[2], c2 = c[3], h = c[4], w = c[5];
            int k1 = c[6], s1 = c[7], p1 = c[8], k2 = c[9], s2 = c[10], p2 = c[11];
            boolean inPlace = c[12] == 1, accumulate = c[13] == 1;
            int th = (h + 2 * p1 - k1) / s1 + 1, tw = (w + 2 * p1 - k1) / s1 + 1;
            int oh = (th + 2 * p2 - k2) / s2 + 1, ow = (tw + 2 * p2 - k2) / s2 + 1;
            Random r = new Random(seed++);
            List<Spec> a = specs(r, c0, c1, k1, true), b = specs(r, c1, c2, k2, !accumulate);
            float[] shiftA = r.nextBoolean() ? rand(r, c1) : null, shiftB = r.nextBoolean() ? rand(r, c2) : null;
            boolean reluA = r.nextBoolean(), reluB = r.nextBoolean();
            BranchConv ca = build(CPU, a, c0, c1, k1, s1, p1, shiftA, reluA), cb = build(CPU, b, c1, c2, k2, s2, p2, shiftB, reluB);
            BranchConv ga = build(g, a, c0, c1, k1, s1, p1, shiftA, reluA), gb = build(g, b, c1, c2, k2, s2, p2, shiftB, reluB);
            int[] tile = CudaBackend.pairTile(c1, gb, oh, ow, inPlace);
            String what = "branchConv2dPair " + java.util.Arrays.toString(c);
            assertEquals(c[14], tile == null ? 0 : Math.max(tile[0], tile[1]), what + ": tile");
            float[] x = rand(r, n * c0 * h * w), y0 = rand(r, n * c2 * oh * ow);
            if (inPlace) {
                assertEquals(x.length, y0.length, what);
                Buffer cx = CPU.fromFloats(x), gx = g.fromFloats(x);
                CPU.branchConv2dPair(ca, cb, cx, n, h, w, cx, accumulate);
                g.branchConv2dPair(ga, gb, gx, n, h, w, gx, accumulate);
                assertClose(CPU.toFloats(cx), g.toFloats(gx), what + " in place");
            } else {
                Buffer cy = CPU.fromFloats(y0), gy = g.fromFloats(y0);
                CPU.branchConv2dPair(ca, cb, CPU.fromFloats(x), n, h, w, cy, accumulate);
                g.branchConv2dPair(ga, gb, g.fromFloats(x), n, h, w, gy, accumulate);
                float[] want = CPU.toFloats(cy);
                assertClose(want, g.toFloats(gy), what);
                // A second call reuses the flattened plans and must give the same answer.
                Buffer gy2 = g.fromFloats(y0);
                g.branchConv2dPair(ga, gb, g.fromFloats(x), n, h, w, gy2, accumulate);
                assertArrayEquals(g.toFloats(gy), g.toFloats(gy2), what + " again");
            }
        }
        Random r = new Random(7);
        List<Spec> a = specs(r, 2, 3, 3, true), b = specs(r, 3, 2, 3, false);
        BranchConv ga = build(g, a, 2, 3, 3, 1, 1, null, false), gb = build(g, b, 3, 2, 3, 1, 1, null, false);
        boolean overlapping = !gb.disjointOutputs();
        if (overlapping) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> g.branchConv2dPair(ga, gb, g.allocate(ai.bonsai.tensor.DType.FLOAT32, 2 * 4 * 4), 1, 4, 4, g.allocate(ai.bonsai.tensor.DType.FLOAT32, 2 * 4 * 4), false));
            assertTrue(e.getMessage().contains("overwriting needs disjoint branch outputs"), e.getMessage());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> g.branchConv2dPair(ga, gb, g.allocate(ai.bonsai.tensor.DType.FLOAT32, 2 * 16), 1, 4, 4, g.allocate(ai.bonsai.tensor.DType.FLOAT32, 5), true));
        assertTrue(e.getMessage().contains("y has 5, expected 32"), e.getMessage());
    }
}
