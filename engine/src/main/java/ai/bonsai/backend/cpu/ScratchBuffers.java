package ai.bonsai.backend.cpu;

/**
 * Per-thread scratch arrays for the CPU kernels (packed GEMM panels, convolution staging buffers).
 *
 * <p>Each thread keeps one array per slot and grows it to the largest size asked for, so the memory held is
 * bounded by threads x (largest working set of one task), never by the batch size. Contents are left over from
 * the previous use: callers must write every element they later read.
 */
final class ScratchBuffers {
    static final int GEMM_A = 0, GEMM_B = 1, GEMM_EDGE = 2, CONV_SRC = 3, CONV_OUT = 4, CONV_GRAD = 5, CONV_TMP = 6, BRANCH_PAIR = 7;
    /** A weight gradient's partial sums: taken by the calling thread and shared with the tasks it starts. */
    static final int CONV_PARTIALS = 8;
    /** Where staging drops the columns of a stride-2 row that no tap reads (written, never read). */
    static final int STAGE_DISCARD = 9;
    private static final int SLOTS = 10;
    private static final ThreadLocal<float[][]> BUFFERS = ThreadLocal.withInitial(() -> new float[SLOTS][]);
    /** Batch norm's per-(image, channel) sums: taken by the calling thread and shared with the tasks it starts. */
    private static final ThreadLocal<double[][]> ROW_SUMS = ThreadLocal.withInitial(() -> new double[1][]);

    private ScratchBuffers() {}

    /** An array of at least {@code length} floats owned by the calling thread. */
    static float[] get(int slot, int length) {
        float[][] slots = BUFFERS.get();
        float[] b = slots[slot];
        if (b == null || b.length < length) {
            slots[slot] = b = new float[length];
        }
        return b;
    }

    /** An array of at least {@code length} doubles owned by the calling thread (batch norm's per-row sums). */
    static double[] rowSums(int length) {
        double[][] slot = ROW_SUMS.get();
        double[] b = slot[0];
        if (b == null || b.length < length) slot[0] = b = new double[length];
        return b;
    }
}
