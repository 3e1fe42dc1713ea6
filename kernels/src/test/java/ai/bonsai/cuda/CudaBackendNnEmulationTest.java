package ai.bonsai.cuda;

import ai.bonsai.backend.Backend;
import ai.bonsai.backend.ConvGeometry;
import ai.bonsai.backend.cpu.CpuBackend;
import ai.bonsai.tensor.Buffer;
import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Device;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.EnumMap;
import java.util.Random;

import static ai.bonsai.cuda.CudaBackendEmulationTest.assertClose;
import static org.junit.jupiter.api.Assertions.*;

/**
 * GEMM, convolution, batch norm, pooling and gathers of the CUDA backend under CPU emulation against the CPU
 * backend: awkward sizes, every block size, forward and reverse fiber order (see CudaBackendEmulationTest).
 */
class CudaBackendNnEmulationTest {
    private static final EnumMap<EmulatorRuntime.Order, CudaBackend> GPU = new EnumMap<>(EmulatorRuntime.Order.class);
    private static final Backend CPU = CpuBackend.get();

    @BeforeAll static void start() {
        for (EmulatorRuntime.Order o : CudaBackendEmulationTest.ORDERS)
            GPU.put(o, new CudaBackend(new EmulatorRuntime(EmulatorBuild.binary(), o, 23), Device.cuda(0)));
    }

    @AfterAll static void stop() { GPU.values().forEach(b -> b.runtime().close()); GPU.clear(); }

    static java.util.stream.Stream<org.junit.jupiter.params.provider.Arguments> ewCases() { return CudaBackendEmulationTest.ewCases(); }

    static java.util.stream.Stream<org.junit.jupiter.params.provider.Arguments> rowCases() { return CudaBackendEmulationTest.rowCases(); }

    private static CudaBackend gpu(EmulatorRuntime.Order o, int block) {
        CudaBackend b = GPU.get(o);
        b.forceBlock(block);
        return b;
    }

    private static float[] rand(int n, long seed) {
        Random r = new Random(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = r.nextFloat() * 2 - 1;
        return x;
    }

    static final ConvGeometry[] CONVS = {
            new ConvGeometry(2, 3, 7, 5, 4, 3, 3, 1, 1, 1, 1, 1),
            new ConvGeometry(1, 4, 13, 13, 6, 3, 3, 2, 2, 1, 1, 2),
            new ConvGeometry(3, 2, 5, 6, 3, 1, 1, 2, 2, 0, 0, 1),
            new ConvGeometry(1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1),
    };

    @ParameterizedTest(name = "{0} block {1}")
    @MethodSource("rowCases")
    void convolutionForwardAndBackward(EmulatorRuntime.Order o, int block) {
        CudaBackend g = gpu(o, block);
        int seed = 0;
        for (ConvGeometry cg : CONVS) {
            int xn = cg.n() * cg.c() * cg.h() * cg.w(), wn = cg.k() * cg.cg() * cg.r() * cg.s(), yn = cg.n() * cg.k() * cg.outH() * cg.outW();
            float[] x = rand(xn, ++seed), w = rand(wn, ++seed), bias = rand(cg.k(), ++seed), dy = rand(yn, ++seed);
            Buffer cy = CPU.allocate(DType.FLOAT32, yn), gy = g.allocate(DType.FLOAT32, yn);
            CPU.conv2d(cg, CPU.fromFloats(x), CPU.fromFloats(w), CPU.fromFloats(bias), cy);
            g.conv2d(cg, g.fromFloats(x), g.fromFloats(w), g.fromFloats(bias), gy);
            assertClose(CPU.toFloats(cy), g.toFloats(gy), "conv2d " + cg);
            CPU.conv2d(cg, CPU.fromFloats(x), CPU.fromFloats(w), null, cy);
            g.conv2d(cg, g.fromFloats(x), g.fromFloats(w), null, gy);
            assertClose(CPU.toFloats(cy), g.toFloats(gy), "conv2d without bias " + cg);
            Buffer cdx = CPU.allocate(DType.FLOAT32, xn), gdx = g.allocate(DType.FLOAT32, xn);
            CPU.conv2dBackwardData(cg, CPU.fromFloats(dy), CPU.fromFloats(w), cdx);
            g.conv2dBackwardData(cg, g.fromFloats(dy), g.fromFloats(w), gdx);
            assertClose(CPU.toFloats(cdx), g.toFloats(gdx), "conv2dBackwardData " + cg);
            Buffer cdw = CPU.allocate(DType.FLOAT32, wn), gdw = g.allocate(DType.FLOAT32, wn);
            CPU.conv2dBackwardWeight(cg, CPU.fromFloats(x), CPU.fromFloats(dy), cdw);
            g.conv2dBackwardWeight(cg, g.fromFloats(x), g.fromFloats(dy), gdw);
            assertClose(CPU.toFloats(cdw), g.toFloats(gdw), "conv2dBackwardWeight " + cg);
        }
    }

    @ParameterizedTest(name = "{0} block {1}")
    @MethodSource("rowCases")
    void gemmAllTranspositions(EmulatorRuntime.Order o, int block) {
        CudaBackend g = gpu(o, block);
        int[][] mnk = {{1, 1, 1}, {13, 3, 17}, {3, 20, 33}};
        int seed = 50;
        for (int[] s : mnk)
            for (int t = 0; t < 4; t++) {
                boolean ta = (t & 1) != 0, tb = (t & 2) != 0;
                int m = s[0], n = s[1], k = s[2], batch = 2;
                float[] a = rand(batch * m * k, ++seed), b = rand(k * n, ++seed), c = rand(batch * m * n, ++seed);
                Buffer cc = CPU.fromFloats(c), gc = g.fromFloats(c);
                // B shared by the batch (stride 0), beta 0.5 accumulates into C
                CPU.gemm(ta, tb, batch, m, n, k, 1.25f, CPU.fromFloats(a), m * k, CPU.fromFloats(b), 0, 0.5f, cc);
                g.gemm(ta, tb, batch, m, n, k, 1.25f, g.fromFloats(a), m * k, g.fromFloats(b), 0, 0.5f, gc);
                assertClose(CPU.toFloats(cc), g.toFloats(gc), "gemm transA=" + ta + " transB=" + tb + " " + java.util.Arrays.toString(s));
            }
    }

    @ParameterizedTest(name = "{0} block {1}")
    @MethodSource("rowCases")
    void batchNorm(EmulatorRuntime.Order o, int block) {
        CudaBackend g = gpu(o, block);
        int[][] nchw = {{3, 5, 13}, {1, 1, 1}, {2, 3, 207}};
        int seed = 70;
        for (int[] s : nchw) {
            int n = s[0], c = s[1], hw = s[2], len = n * c * hw;
            float[] x = rand(len, ++seed), dy = rand(len, ++seed), gamma = rand(c, ++seed), beta = rand(c, ++seed);
            for (int i = 0; i < len; i++) x[i] = 3 + 2 * x[i];   // a mean far from 0
            float[] rm = rand(c, ++seed), rv = new float[c];
            java.util.Arrays.fill(rv, 0.7f);
            Buffer[] cb = {CPU.fromFloats(x), CPU.fromFloats(gamma), CPU.fromFloats(beta), CPU.fromFloats(rm), CPU.fromFloats(rv),
                    CPU.allocate(DType.FLOAT32, len), CPU.allocate(DType.FLOAT32, c), CPU.allocate(DType.FLOAT32, c)};
            Buffer[] gb = {g.fromFloats(x), g.fromFloats(gamma), g.fromFloats(beta), g.fromFloats(rm), g.fromFloats(rv),
                    g.allocate(DType.FLOAT32, len), g.allocate(DType.FLOAT32, c), g.allocate(DType.FLOAT32, c)};
            CPU.batchNormTrain(cb[0], n, c, hw, cb[1], cb[2], cb[3], cb[4], 0.1f, 1e-5f, cb[5], cb[6], cb[7]);
            g.batchNormTrain(gb[0], n, c, hw, gb[1], gb[2], gb[3], gb[4], 0.1f, 1e-5f, gb[5], gb[6], gb[7]);
            String[] names = {"x", "gamma", "beta", "runningMean", "runningVar", "y", "saveMean", "saveInvStd"};
            for (int i = 3; i < 8; i++) assertClose(CPU.toFloats(cb[i]), g.toFloats(gb[i]), "batchNormTrain " + names[i] + " " + java.util.Arrays.toString(s));
            if (n * hw > 1) {   // with one element per channel the inverse std is 1/sqrt(eps): compared above, too steep for the backward
                Buffer cdx = CPU.allocate(DType.FLOAT32, len), cdg = CPU.allocate(DType.FLOAT32, c), cdb = CPU.allocate(DType.FLOAT32, c);
                Buffer gdx = g.allocate(DType.FLOAT32, len), gdg = g.allocate(DType.FLOAT32, c), gdb = g.allocate(DType.FLOAT32, c);
                CPU.batchNormBackward(cb[0], CPU.fromFloats(dy), n, c, hw, cb[1], cb[6], cb[7], cdx, cdg, cdb);
                g.batchNormBackward(gb[0], g.fromFloats(dy), n, c, hw, gb[1], gb[6], gb[7], gdx, gdg, gdb);
                assertClose(CPU.toFloats(cdx), g.toFloats(gdx), "batchNormBackward dx");
                assertClose(CPU.toFloats(cdg), g.toFloats(gdg), "batchNormBackward dGamma");
                assertClose(CPU.toFloats(cdb), g.toFloats(gdb), "batchNormBackward dBeta");
                g.batchNormBackward(gb[0], g.fromFloats(dy), n, c, hw, gb[1], gb[6], gb[7], null, gdg, gdb);
                assertClose(CPU.toFloats(cdg), g.toFloats(gdg), "batchNormBackward without dx");
            }
            Buffer cy = CPU.allocate(DType.FLOAT32, len), gy = g.allocate(DType.FLOAT32, len);
            CPU.batchNormEval(cb[0], n, c, hw, cb[1], cb[2], cb[3], cb[4], 1e-5f, cy);
            g.batchNormEval(gb[0], n, c, hw, gb[1], gb[2], gb[3], gb[4], 1e-5f, gy);
            assertClose(CPU.toFloats(cy), g.toFloats(gy), "batchNormEval");
        }
    }

    @ParameterizedTest(name = "{0} block {1}")
    @MethodSource("ewCases")
    void poolingAndGathers(EmulatorRuntime.Order o, int block) {
        CudaBackend g = gpu(o, block);
        int planes = 3, h = 7, w = 5, kh = 3, kw = 2, sh = 2, sw = 1, ph = 1, pw = 1;
        int oh = (h + 2 * ph - kh) / sh + 1, ow = (w + 2 * pw - kw) / sw + 1;
        float[] x = rand(planes * h * w, 1), dy = rand(planes * oh * ow, 2);
        Buffer cy = CPU.allocate(DType.FLOAT32, planes * oh * ow), ca = CPU.allocate(DType.INT32, planes * oh * ow);
        Buffer gy = g.allocate(DType.FLOAT32, planes * oh * ow), ga = g.allocate(DType.INT32, planes * oh * ow);
        CPU.maxPool2d(CPU.fromFloats(x), planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow, cy, ca);
        g.maxPool2d(g.fromFloats(x), planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow, gy, ga);
        assertClose(CPU.toFloats(cy), g.toFloats(gy), "maxPool2d");
        assertArrayEquals(CPU.toLongs(ca), g.toLongs(ga), "maxPool2d argmax");
        Buffer cdx = CPU.allocate(DType.FLOAT32, planes * h * w), gdx = g.allocate(DType.FLOAT32, planes * h * w);
        CPU.maxPool2dBackward(CPU.fromFloats(dy), ca, planes, h, w, oh, ow, cdx);
        g.maxPool2dBackward(g.fromFloats(dy), ga, planes, h, w, oh, ow, gdx);
        assertClose(CPU.toFloats(cdx), g.toFloats(gdx), "maxPool2dBackward");

        int aoh = 3, aow = 2;
        float[] ady = rand(planes * aoh * aow, 3);
        Buffer cay = CPU.allocate(DType.FLOAT32, planes * aoh * aow), gay = g.allocate(DType.FLOAT32, planes * aoh * aow);
        CPU.adaptiveAvgPool2d(CPU.fromFloats(x), planes, h, w, aoh, aow, cay);
        g.adaptiveAvgPool2d(g.fromFloats(x), planes, h, w, aoh, aow, gay);
        assertClose(CPU.toFloats(cay), g.toFloats(gay), "adaptiveAvgPool2d 7x5 -> 3x2");
        CPU.adaptiveAvgPool2dBackward(CPU.fromFloats(ady), planes, h, w, aoh, aow, cdx);
        g.adaptiveAvgPool2dBackward(g.fromFloats(ady), planes, h, w, aoh, aow, gdx);
        assertClose(CPU.toFloats(cdx), g.toFloats(gdx), "adaptiveAvgPool2dBackward");

        int outer = 3, axisLen = 13, inner = 2;
        float[] src = rand(outer * axisLen * inner, 4);
        long[] idx = {12, 0, 5, 5, 12, 3, 0};                  // repeated indices add up in indexAdd
        for (boolean wide : new boolean[] {false, true}) {
            Buffer ci = wide ? CPU.fromLongs(idx) : CPU.fromInts(java.util.Arrays.stream(idx).mapToInt(v -> (int) v).toArray());
            Buffer gi = wide ? g.fromLongs(idx) : g.fromInts(java.util.Arrays.stream(idx).mapToInt(v -> (int) v).toArray());
            int sel = outer * idx.length * inner;
            Buffer co = CPU.allocate(DType.FLOAT32, sel), go = g.allocate(DType.FLOAT32, sel);
            CPU.indexSelect(CPU.fromFloats(src), outer, axisLen, inner, ci, idx.length, co);
            g.indexSelect(g.fromFloats(src), outer, axisLen, inner, gi, idx.length, go);
            assertClose(CPU.toFloats(co), g.toFloats(go), "indexSelect wide=" + wide);
            float[] upd = rand(sel, 5);
            Buffer cd = CPU.fromFloats(src), gd = g.fromFloats(src);
            CPU.indexAdd(cd, outer, axisLen, inner, ci, idx.length, CPU.fromFloats(upd));
            g.indexAdd(gd, outer, axisLen, inner, gi, idx.length, g.fromFloats(upd));
            assertClose(CPU.toFloats(cd), g.toFloats(gd), "indexAdd wide=" + wide);

            long[] along = new long[outer * inner];
            for (int i = 0; i < along.length; i++) along[i] = (i * 7L) % axisLen;
            Buffer cal = wide ? CPU.fromLongs(along) : CPU.fromInts(java.util.Arrays.stream(along).mapToInt(v -> (int) v).toArray());
            Buffer gal = wide ? g.fromLongs(along) : g.fromInts(java.util.Arrays.stream(along).mapToInt(v -> (int) v).toArray());
            Buffer ct = CPU.allocate(DType.FLOAT32, outer * inner), gt = g.allocate(DType.FLOAT32, outer * inner);
            CPU.takeAlongAxis(CPU.fromFloats(src), outer, axisLen, inner, cal, ct);
            g.takeAlongAxis(g.fromFloats(src), outer, axisLen, inner, gal, gt);
            assertClose(CPU.toFloats(ct), g.toFloats(gt), "takeAlongAxis wide=" + wide);
            float[] tg = rand(outer * inner, 6);
            Buffer ctd = CPU.fromFloats(src), gtd = g.fromFloats(src);
            CPU.takeAlongAxisAdd(ctd, outer, axisLen, inner, cal, CPU.fromFloats(tg));
            g.takeAlongAxisAdd(gtd, outer, axisLen, inner, gal, g.fromFloats(tg));
            assertClose(CPU.toFloats(ctd), g.toFloats(gtd), "takeAlongAxisAdd wide=" + wide);
        }
    }
}
