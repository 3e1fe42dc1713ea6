package ai.bonsai.cuda;

import ai.bonsai.backend.Backend;
import ai.bonsai.backend.BinaryOp;
import ai.bonsai.backend.ReduceOp;
import ai.bonsai.backend.UnaryOp;
import ai.bonsai.backend.cpu.CpuBackend;
import ai.bonsai.tensor.Buffer;
import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Generator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The CUDA backend, kernels and host code together, run under CPU emulation and held to the CPU backend on seeded
 * random inputs of awkward sizes (1, 3, 13, 207), with every block size the launcher can choose, in two fiber
 * orders (forward and reverse: between them they catch a missing barrier either way, see EmulationHarnessTest).
 * Tolerance: |gpu - cpu| <= ATOL + RTOL * |cpu|, the CPU kernel tests' values.
 */
class CudaBackendEmulationTest {
    static final float ATOL = 2e-4f, RTOL = 2e-4f;
    static final int[] SIZES = {1, 3, 13, 207};
    static final EmulatorRuntime.Order[] ORDERS = {EmulatorRuntime.Order.FORWARD, EmulatorRuntime.Order.REVERSE};

    private static final EnumMap<EmulatorRuntime.Order, CudaBackend> GPU = new EnumMap<>(EmulatorRuntime.Order.class);
    private static final Backend CPU = CpuBackend.get();

    @BeforeAll static void start() {
        for (EmulatorRuntime.Order o : ORDERS) GPU.put(o, new CudaBackend(new EmulatorRuntime(EmulatorBuild.binary(), o, 17), Device.cuda(0)));
    }

    @AfterAll static void stop() { GPU.values().forEach(b -> b.runtime().close()); GPU.clear(); }

    static Stream<Arguments> ewCases() {
        List<Arguments> a = new ArrayList<>();
        for (EmulatorRuntime.Order o : ORDERS) for (int block : Launches.ELEMENTWISE_BLOCKS) a.add(Arguments.of(o, block));
        return a.stream();
    }

    static Stream<Arguments> rowCases() {
        List<Arguments> a = new ArrayList<>();
        for (EmulatorRuntime.Order o : ORDERS) for (int block : Launches.ROW_BLOCKS) a.add(Arguments.of(o, block));
        for (EmulatorRuntime.Order o : ORDERS) a.add(Arguments.of(o, 0));   // the launcher's own choice
        return a.stream();
    }

    private static float[] rand(int n, long seed, float lo, float hi) {
        Random r = new Random(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = lo + (hi - lo) * r.nextFloat();
        return x;
    }

    static void assertClose(float[] cpu, float[] gpu, String what) {
        assertEquals(cpu.length, gpu.length, what + ": length");
        for (int i = 0; i < cpu.length; i++) {
            float e = cpu[i], g = gpu[i];
            if (Float.isNaN(e) && Float.isNaN(g)) continue;
            if (e == g) continue;  // also equal infinities
            assertTrue(Math.abs(g - e) <= ATOL + RTOL * Math.abs(e),
                    what + ": element " + i + " expected " + e + " (CPU) but was " + g + " (CUDA, emulated)");
        }
    }

    private static CudaBackend gpu(EmulatorRuntime.Order o, int block) {
        CudaBackend b = GPU.get(o);
        b.forceBlock(block);
        return b;
    }

    @ParameterizedTest(name = "{0} block {1}")
    @MethodSource("ewCases")
    void unaryAffineFill(EmulatorRuntime.Order o, int block) {
        CudaBackend g = gpu(o, block);
        for (int n : SIZES) {
            float[] x = rand(n, n, -3, 3);
            for (UnaryOp op : UnaryOp.values()) {
                float[] in = op == UnaryOp.LOG || op == UnaryOp.SQRT || op == UnaryOp.RSQRT ? rand(n, n + 1, 0.1f, 5) : x;
                Buffer cx = CPU.fromFloats(in), co = CPU.allocate(DType.FLOAT32, n);
                Buffer gx = g.fromFloats(in), go = g.allocate(DType.FLOAT32, n);
                CPU.unary(op, cx, co);
                g.unary(op, gx, go);
                assertClose(CPU.toFloats(co), g.toFloats(go), op + " n=" + n);
            }
            Buffer cx = CPU.fromFloats(x), gx = g.fromFloats(x);
            CPU.affine(cx, 1.5f, -0.25f, cx);   // in place, as the contract allows
            g.affine(gx, 1.5f, -0.25f, gx);
            assertClose(CPU.toFloats(cx), g.toFloats(gx), "affine n=" + n);
            g.fill(gx, 2.5f);
            for (float v : g.toFloats(gx)) assertEquals(2.5f, v, "fill n=" + n);
        }
    }

    @ParameterizedTest(name = "{0} block {1}")
    @MethodSource("ewCases")
    void binaryBroadcast(EmulatorRuntime.Order o, int block) {
        CudaBackend g = gpu(o, block);
        int[][][] shapes = {                        // {a, b, out}, already right-aligned
                {{207}, {207}, {207}},
                {{1}, {13}, {13}},
                {{3, 13}, {3, 1}, {3, 13}},
                {{1, 13}, {3, 1}, {3, 13}},
                {{2, 3, 1, 5}, {1, 3, 7, 1}, {2, 3, 7, 5}},
        };
        int seed = 0;
        for (int[][] s : shapes) {
            float[] a = rand(numel(s[0]), ++seed, -2, 2), b = rand(numel(s[1]), ++seed, 0.5f, 2);
            for (BinaryOp op : BinaryOp.values()) {
                float[] aa = op == BinaryOp.POW ? rand(a.length, seed, 0.1f, 3) : a;
                Buffer co = CPU.allocate(DType.FLOAT32, numel(s[2])), go = g.allocate(DType.FLOAT32, numel(s[2]));
                CPU.binary(op, CPU.fromFloats(aa), s[0], CPU.fromFloats(b), s[1], co, s[2]);
                g.binary(op, g.fromFloats(aa), s[0], g.fromFloats(b), s[1], go, s[2]);
                assertClose(CPU.toFloats(co), g.toFloats(go), op + " " + java.util.Arrays.deepToString(s));
            }
        }
    }

    private static int numel(int[] d) { int n = 1; for (int x : d) n *= x; return n; }

    @ParameterizedTest(name = "{0} block {1}")
    @MethodSource("rowCases")
    void reduceArgmaxSoftmax(EmulatorRuntime.Order o, int block) {
        CudaBackend g = gpu(o, block);
        int[][] dims = {{1}, {207}, {3, 13}, {13, 3, 7}, {2, 207}};
        int seed = 100;
        for (int[] d : dims) {
            float[] x = rand(numel(d), ++seed, -4, 4);
            Buffer cx = CPU.fromFloats(x), gx = g.fromFloats(x);
            for (int mask = 1; mask < 1 << d.length; mask++) {
                boolean[] red = new boolean[d.length];
                int outN = 1;
                for (int i = 0; i < d.length; i++) { red[i] = (mask >> i & 1) != 0; if (!red[i]) outN *= d[i]; }
                for (ReduceOp op : ReduceOp.values()) {
                    Buffer co = CPU.allocate(DType.FLOAT32, outN), go = g.allocate(DType.FLOAT32, outN);
                    CPU.reduce(op, cx, d, red, co);
                    g.reduce(op, gx, d, red, go);
                    assertClose(CPU.toFloats(co), g.toFloats(go), op + " " + java.util.Arrays.toString(d) + " over " + java.util.Arrays.toString(red));
                }
            }
            for (int axis = 0; axis < d.length; axis++) {
                int outN = numel(d) / d[axis];
                Buffer co = CPU.allocate(DType.INT64, outN), go = g.allocate(DType.INT64, outN);
                CPU.argmax(cx, d, axis, co);
                g.argmax(gx, d, axis, go);
                assertArrayEquals(CPU.toLongs(co), g.toLongs(go), "argmax " + java.util.Arrays.toString(d) + " axis " + axis);
            }
            int cols = d[d.length - 1], rows = numel(d) / cols;
            for (boolean log : new boolean[] {false, true}) {
                Buffer co = CPU.allocate(DType.FLOAT32, numel(d)), go = g.allocate(DType.FLOAT32, numel(d));
                CPU.softmax(cx, rows, cols, log, co);
                g.softmax(gx, rows, cols, log, go);
                assertClose(CPU.toFloats(co), g.toFloats(go), (log ? "log" : "") + "softmax " + rows + "x" + cols);
            }
        }
    }

    @ParameterizedTest(name = "{0} block {1}")
    @MethodSource("ewCases")
    void stridedPermuteSliceAccumulate(EmulatorRuntime.Order o, int block) {
        CudaBackend g = gpu(o, block);
        // src (3, 13, 7) permuted to (7, 3, 13) and written into a bigger dst at offset 5; then accumulated again.
        int[] dims = {7, 3, 13};
        int[] srcStrides = {1, 91, 7};
        int[] dstStrides = {39, 13, 1};
        float[] src = rand(273, 3, -1, 1), dst = rand(5 + 273 + 2, 4, -1, 1);
        for (boolean acc : new boolean[] {false, true}) {
            Buffer cs = CPU.fromFloats(src), cd = CPU.fromFloats(dst), gs = g.fromFloats(src), gd = g.fromFloats(dst);
            CPU.strided(cs, 0, srcStrides, cd, 5, dstStrides, dims, acc);
            g.strided(gs, 0, srcStrides, gd, 5, dstStrides, dims, acc);
            assertClose(CPU.toFloats(cd), g.toFloats(gd), "strided accumulate=" + acc);
        }
        // broadcast-expand: a stride 0 on the source, from a non-zero source offset; a single element (rank 0 dims of 1)
        Buffer cs = CPU.fromFloats(src), gs = g.fromFloats(src);
        Buffer cd = CPU.allocate(DType.FLOAT32, 207), gd = g.allocate(DType.FLOAT32, 207);
        CPU.strided(cs, 11, new int[] {0, 1}, cd, 0, new int[] {23, 1}, new int[] {9, 23}, false);
        g.strided(gs, 11, new int[] {0, 1}, gd, 0, new int[] {23, 1}, new int[] {9, 23}, false);
        assertClose(CPU.toFloats(cd), g.toFloats(gd), "strided expand");
    }

    @ParameterizedTest(name = "{0} block {1}")
    @MethodSource("ewCases")
    void sgdAndAdam(EmulatorRuntime.Order o, int block) {
        CudaBackend g = gpu(o, block);
        for (int n : SIZES) {
            for (int variant = 0; variant < 4; variant++) {
                float momentum = variant == 0 ? 0 : 0.9f;
                boolean nesterov = variant == 2, first = variant == 3;
                float[] p = rand(n, n, -1, 1), gr = rand(n, n + 7, -1, 1), buf = rand(n, n + 9, -1, 1);
                Buffer cp = CPU.fromFloats(p), cb = CPU.fromFloats(buf), gp = g.fromFloats(p), gb = g.fromFloats(buf);
                CPU.sgdStep(cp, CPU.fromFloats(gr), cb, 0.1f, momentum, 0.1f, 1e-4f, nesterov, first);
                g.sgdStep(gp, g.fromFloats(gr), gb, 0.1f, momentum, 0.1f, 1e-4f, nesterov, first);
                assertClose(CPU.toFloats(cp), g.toFloats(gp), "sgd param n=" + n + " variant " + variant);
                assertClose(CPU.toFloats(cb), g.toFloats(gb), "sgd momentum n=" + n + " variant " + variant);
            }
            float[] p = rand(n, 1, -1, 1), gr = rand(n, 2, -1, 1), m = rand(n, 3, -0.1f, 0.1f), v = rand(n, 4, 0, 0.1f);
            Buffer cp = CPU.fromFloats(p), cm = CPU.fromFloats(m), cv = CPU.fromFloats(v);
            Buffer gp = g.fromFloats(p), gm = g.fromFloats(m), gv = g.fromFloats(v);
            for (int t = 1; t <= 3; t++) {
                CPU.adamStep(cp, CPU.fromFloats(gr), cm, cv, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f, t);
                g.adamStep(gp, g.fromFloats(gr), gm, gv, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f, t);
            }
            assertClose(CPU.toFloats(cp), g.toFloats(gp), "adam param n=" + n);
            assertClose(CPU.toFloats(cm), g.toFloats(gm), "adam m n=" + n);
            assertClose(CPU.toFloats(cv), g.toFloats(gv), "adam v n=" + n);
        }
    }

    @ParameterizedTest(name = "{0} block {1}")
    @MethodSource("ewCases")
    void memoryRoundTrips(EmulatorRuntime.Order o, int block) {
        CudaBackend g = gpu(o, block);
        long[] longs = {0, -1, Long.MAX_VALUE, 207};
        assertArrayEquals(longs, g.toLongs(g.fromLongs(longs)));
        assertArrayEquals(new long[] {3, -4, 0}, g.toLongs(g.fromInts(new int[] {3, -4, 0})));
        float[] x = rand(13, 1, -1, 1);
        Buffer a = g.fromFloats(x), b = g.allocate(DType.FLOAT32, 20);
        for (float v : g.toFloats(b)) assertEquals(0f, v, "allocate zero-fills");
        g.copy(a, 2, b, 5, 9);
        float[] got = g.toFloats(b);
        for (int i = 0; i < 9; i++) assertEquals(x[2 + i], got[5 + i]);
        assertEquals(0f, got[4]);
        Buffer u = g.allocate(DType.FLOAT32, 13), cu = CPU.allocate(DType.FLOAT32, 13);
        g.normal(u, new Generator(5), 0, 1);
        CPU.normal(cu, new Generator(5), 0, 1);
        assertArrayEquals(CPU.toFloats(cu), g.toFloats(u), "same generator, same draws");
    }
}
