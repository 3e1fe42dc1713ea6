package ai.bonsai.cuda;

/**
 * Grid and block of one kernel launch, plus its dynamic shared memory. The one description both the GPU launch
 * and the CPU emulation use: {@link CudaBackend} computes it and hands it to whichever {@link GpuRuntime} runs.
 */
public record LaunchConfig(int gridX, int gridY, int gridZ, int blockX, int blockY, int blockZ, int sharedBytes) {

    /** CUDA's limits for compute capability 8.0 and newer. */
    public static final int MAX_THREADS_PER_BLOCK = 1024;
    public static final int MAX_GRID_X = Integer.MAX_VALUE;
    public static final int MAX_GRID_YZ = 65535;
    public static final int MAX_STATIC_SHARED_BYTES = 48 * 1024;

    public LaunchConfig {
        long threads = (long) blockX * blockY * blockZ;
        if (gridX < 1 || gridY < 1 || gridZ < 1 || blockX < 1 || blockY < 1 || blockZ < 1 || sharedBytes < 0
                || threads > MAX_THREADS_PER_BLOCK || blockZ > 64 || gridY > MAX_GRID_YZ || gridZ > MAX_GRID_YZ
                || sharedBytes > MAX_STATIC_SHARED_BYTES) {
            throw new IllegalArgumentException("invalid launch configuration: " + describe(gridX, gridY, gridZ, blockX, blockY, blockZ, sharedBytes)
                    + " (limits: 1024 threads per block, block z <= 64, grid y and z <= 65535, 48 KiB dynamic shared memory)");
        }
    }

    public static LaunchConfig of1d(int grid, int block) { return new LaunchConfig(grid, 1, 1, block, 1, 1, 0); }

    public static LaunchConfig of2d(int gridX, int gridY, int block) { return new LaunchConfig(gridX, gridY, 1, block, 1, 1, 0); }

    public int threadsPerBlock() { return blockX * blockY * blockZ; }

    public long totalThreads() { return (long) gridX * gridY * gridZ * threadsPerBlock(); }

    @Override public String toString() { return describe(gridX, gridY, gridZ, blockX, blockY, blockZ, sharedBytes); }

    private static String describe(int gx, int gy, int gz, int bx, int by, int bz, int sh) {
        return "grid=(" + gx + "," + gy + "," + gz + ") block=(" + bx + "," + by + "," + bz + ")" + (sh > 0 ? " shared=" + sh : "");
    }
}
