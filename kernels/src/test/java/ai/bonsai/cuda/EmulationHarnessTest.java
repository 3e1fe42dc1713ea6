package ai.bonsai.cuda;

import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Device;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** The emulator itself: barriers, warp shuffles, and that it catches a missing barrier and a divergent one. */
class EmulationHarnessTest {

    private static float[] data(int n, long seed) {
        Random r = new Random(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = r.nextInt(9) - 4;   // small integers: sums are exact in any order
        return x;
    }

    private static float sum(float[] x) { float s = 0; for (float v : x) s += v; return s; }

    private static float runBlockSum(EmulatorRuntime rt, String kernel, float[] x) {
        CudaBackend be = new CudaBackend(rt, Device.cuda(0));
        CudaBuffer in = (CudaBuffer) be.fromFloats(x), out = (CudaBuffer) be.allocate(DType.FLOAT32, 1);
        rt.launch(kernel, LaunchConfig.of1d(1, 256), new KernelArgs().ptr(in).ptr(out).i32(x.length));
        return be.toFloats(out)[0];
    }

    @ParameterizedTest
    @EnumSource(EmulatorRuntime.Order.class)
    void correctReductionIsRightInEveryOrder(EmulatorRuntime.Order order) {
        float[] x = data(207, 5);
        try (EmulatorRuntime rt = new EmulatorRuntime(EmulatorBuild.binary(), order, 11)) {
            long before = rt.barriers();
            assertEquals(sum(x), runBlockSum(rt, "block_sum", x), 0f, "block_sum under " + order);
            assertEquals(before + 9, rt.barriers(), "one barrier before the tree and one per level of 256 -> 1");
        }
    }

    /**
     * block_sum_racy (tree without barriers) is wrong when fibers run forward and in a shuffle; running backward
     * happens to be a valid sequential order for it. shift_racy (read the left neighbour without a barrier) is the
     * mirror case: wrong backward and shuffled, right forward. So each race is caught by some order, which is why
     * every kernel test runs in more than one.
     */
    @ParameterizedTest
    @EnumSource(EmulatorRuntime.Order.class)
    void missingBarriersAreCaught(EmulatorRuntime.Order order) {
        float[] x = new float[256];
        for (int i = 0; i < x.length; i++) x[i] = 1 + (i % 3);  // all positive: a partial sum is always smaller
        try (EmulatorRuntime rt = new EmulatorRuntime(EmulatorBuild.binary(), order, 3)) {
            float racy = runBlockSum(rt, "block_sum_racy", x);
            if (order == EmulatorRuntime.Order.REVERSE) assertEquals(sum(x), racy, 0f, "reverse is a valid order for the tree");
            else assertNotEquals(sum(x), racy, "block_sum_racy must not find the right sum under " + order);

            CudaBackend be = new CudaBackend(rt, Device.cuda(0));
            CudaBuffer in = (CudaBuffer) be.fromFloats(x), out = (CudaBuffer) be.allocate(DType.FLOAT32, 256);
            rt.launch("shift_racy", LaunchConfig.of1d(1, 256), new KernelArgs().ptr(in).ptr(out).i32(256));
            float[] got = be.toFloats(out);
            boolean right = true;
            for (int t = 1; t < 256; t++) right &= got[t] == x[t - 1];
            assertEquals(order == EmulatorRuntime.Order.FORWARD, right, "shift_racy right only when fibers run forward; order " + order);
        }
    }

    @Test
    void divergentBarrierIsReportedNotHung() {
        try (EmulatorRuntime rt = new EmulatorRuntime(EmulatorBuild.binary(), EmulatorRuntime.Order.FORWARD, 1)) {
            CudaBackend be = new CudaBackend(rt, Device.cuda(0));
            CudaBuffer out = (CudaBuffer) be.allocate(DType.FLOAT32, 64);
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> rt.launch("divergent_barrier", LaunchConfig.of1d(1, 64), new KernelArgs().ptr(out)));
            assertTrue(e.getMessage().contains("__syncthreads() reached by 16 of 64 threads"), e.getMessage());
            assertTrue(e.getMessage().contains("divergent_barrier grid=(1,1,1) block=(64,1,1)"), e.getMessage());
        }
    }

    @ParameterizedTest
    @EnumSource(EmulatorRuntime.Order.class)
    void warpShuffleSums(EmulatorRuntime.Order order) {
        float[] x = data(3 * 96, 9);
        try (EmulatorRuntime rt = new EmulatorRuntime(EmulatorBuild.binary(), order, 5)) {
            CudaBackend be = new CudaBackend(rt, Device.cuda(0));
            CudaBuffer in = (CudaBuffer) be.fromFloats(x), out = (CudaBuffer) be.allocate(DType.FLOAT32, 9);
            rt.launch("warp_sum", LaunchConfig.of1d(3, 96), new KernelArgs().ptr(in).ptr(out));
            float[] got = be.toFloats(out);
            for (int w = 0; w < 9; w++) {
                float s = 0;
                for (int l = 0; l < 32; l++) s += x[w * 32 + l];
                assertEquals(s, got[w], 0f, "warp " + w);
            }
        }
    }

    @Test
    void wrongParameterSizeNamesTheParameter() {
        try (EmulatorRuntime rt = new EmulatorRuntime(EmulatorBuild.binary(), EmulatorRuntime.Order.FORWARD, 1)) {
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> rt.launch("ew_fill", LaunchConfig.of1d(1, 32), new KernelArgs().ptr(0).i64(1).i32(1)));
            assertTrue(e.getMessage().contains("parameter 1 is 4 bytes, got 8"), e.getMessage());
        }
    }
}
