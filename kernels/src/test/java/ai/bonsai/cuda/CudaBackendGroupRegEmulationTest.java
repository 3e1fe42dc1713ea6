package ai.bonsai.cuda;

import ai.bonsai.backend.Backend;
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

/**
 * DSP's group regulariser and its second-order term on the CUDA backend under emulation, against the CPU backend:
 * soft and hard assignments (zeros in p), an all-zero weight channel, null outputs, accumulation; every block size
 * and two fiber orders.
 */
class CudaBackendGroupRegEmulationTest {
    private static final EnumMap<EmulatorRuntime.Order, CudaBackend> GPU = new EnumMap<>(EmulatorRuntime.Order.class);
    private static final Backend CPU = CpuBackend.get();

    @BeforeAll static void start() {
        for (EmulatorRuntime.Order o : CudaBackendEmulationTest.ORDERS)
            GPU.put(o, new CudaBackend(new EmulatorRuntime(EmulatorBuild.binary(), o, 29), Device.cuda(0)));
    }

    @AfterAll static void stop() { GPU.values().forEach(b -> b.runtime().close()); GPU.clear(); }

    static java.util.stream.Stream<org.junit.jupiter.params.provider.Arguments> ewCases() { return CudaBackendEmulationTest.ewCases(); }

    @ParameterizedTest(name = "{0} block {1}")
    @MethodSource("ewCases")
    void regularizerAndSecondOrder(EmulatorRuntime.Order o, int block) {
        CudaBackend g = GPU.get(o);
        g.forceBlock(block);
        int[][] shapes = {{1, 1, 1, 1}, {3, 13, 7, 9}, {4, 5, 3, 1}, {2, 207, 3, 1}};   // groups, filters, channels, kernel area
        long seed = 1;
        for (int[] s : shapes) {
            int groups = s[0], n = s[1], c = s[2], kk = s[3], wl = n * c * kk, row = Backend.groupPiecesRowLength(n, c);
            Random r = new Random(seed++);
            float[] w = new float[wl], d = new float[wl], p = new float[groups * n];
            for (int i = 0; i < wl; i++) { w[i] = r.nextFloat() - 0.5f; d[i] = r.nextFloat() - 0.5f; }
            if (c > 1) for (int f = 0; f < n; f++) for (int j = 0; j < kk; j++) w[(f * c + 1) * kk + j] = 0;   // channel 1 all zero
            boolean hard = (seed & 1) == 0;
            for (int f = 0; f < n; f++) {
                int pick = r.nextInt(groups);
                for (int gi = 0; gi < groups; gi++) p[gi * n + f] = hard ? (gi == pick ? 1 : 0) : r.nextFloat();
            }
            float[] dr0 = new float[groups * n];
            for (int i = 0; i < dr0.length; i++) dr0[i] = r.nextFloat();
            for (boolean acc : new boolean[] {false, true}) {
                Buffer cpen = CPU.allocate(DType.FLOAT32, wl), cdr = CPU.fromFloats(dr0), cpi = CPU.allocate(DType.FLOAT32, groups * row);
                Buffer gpen = g.allocate(DType.FLOAT32, wl), gdr = g.fromFloats(dr0), gpi = g.allocate(DType.FLOAT32, groups * row);
                CPU.groupRegularizer(CPU.fromFloats(w), CPU.fromFloats(p), groups, n, c, kk, 0.37f, cpen, cdr, acc, cpi);
                g.groupRegularizer(g.fromFloats(w), g.fromFloats(p), groups, n, c, kk, 0.37f, gpen, gdr, acc, gpi);
                String what = java.util.Arrays.toString(s) + (hard ? " hard" : " soft") + " accumulate=" + acc;
                assertClose(CPU.toFloats(cpen), g.toFloats(gpen), "penalty " + what);
                assertClose(CPU.toFloats(cdr), g.toFloats(gdr), "dR/dp " + what);
                assertClose(CPU.toFloats(cpi), g.toFloats(gpi), "pieces " + what);

                Buffer cpg = CPU.fromFloats(dr0), gpg = g.fromFloats(dr0);
                CPU.groupSecondOrderAdd(CPU.fromFloats(w), CPU.fromFloats(d), CPU.fromFloats(p), cpi, groups, n, c, kk, cpg);
                g.groupSecondOrderAdd(g.fromFloats(w), g.fromFloats(d), g.fromFloats(p), gpi, groups, n, c, kk, gpg);
                assertClose(CPU.toFloats(cpg), g.toFloats(gpg), "second order " + what);
            }
            // penalty alone: no dR/dp, no pieces
            Buffer cpen = CPU.allocate(DType.FLOAT32, wl), gpen = g.allocate(DType.FLOAT32, wl);
            CPU.groupRegularizer(CPU.fromFloats(w), CPU.fromFloats(p), groups, n, c, kk, 1f, cpen, null, false, null);
            g.groupRegularizer(g.fromFloats(w), g.fromFloats(p), groups, n, c, kk, 1f, gpen, null, false, null);
            assertClose(CPU.toFloats(cpen), g.toFloats(gpen), "penalty only " + java.util.Arrays.toString(s));
        }
    }
}
