package ai.bonsai.cuda;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The committed PTX: one module per kernel family, every kernel the Java side launches is an entry of it, it is
 * what its source compiles to now (where the same nvcc is present), ptxas finds no register spills for sm_90, and
 * the launcher's configurations are valid over each op's whole size range.
 */
class PtxTest {
    static final Path PTX = Path.of("src/main/resources/ai/bonsai/cuda/ptx");
    static final Path CU = Path.of("src/main/cuda");

    static Set<String> entries(String module) throws IOException {
        Set<String> s = new TreeSet<>();
        Matcher m = Pattern.compile("\\.entry\\s+(\\w+)\\(").matcher(Files.readString(PTX.resolve(module + ".ptx")));
        while (m.find()) s.add(m.group(1));
        return s;
    }

    static List<String> families() throws IOException {
        try (Stream<Path> s = Files.list(CU)) {
            return s.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".cu")).map(n -> n.substring(0, n.length() - 3)).sorted().toList();
        }
    }

    @Test
    void everyLaunchedKernelIsAnEntryOfItsModule() throws IOException {
        assertEquals(families(), KernelCatalog.MODULES, "one PTX module per src/main/cuda/*.cu, all in KernelCatalog");
        for (String module : KernelCatalog.MODULES) {
            assertTrue(Files.exists(PTX.resolve(module + ".ptx")), "missing " + PTX.resolve(module + ".ptx") + ": run kernels/build-ptx");
            assertEquals(new TreeSet<>(KernelCatalog.kernelsOf(module)), entries(module),
                    module + ".ptx: the entries must be exactly the kernels the Java side launches");
        }
    }

    static String nvcc() {
        for (String c : new String[] {System.getenv("NVCC"), "/usr/local/bin/nvcc", "/usr/local/cuda/bin/nvcc"})
            if (c != null && Files.isExecutable(Path.of(c))) return c;
        return EmulatorBuild.onPath("nvcc") ? "nvcc" : null;
    }

    static String run(List<String> cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "timed out: " + cmd);
        assertEquals(0, p.exitValue(), String.join(" ", cmd) + "\n" + out);
        return out;
    }

    static String versionLine(String ptx) {
        Matcher m = Pattern.compile("Cuda compilation tools, release [^\\n]*").matcher(ptx);
        return m.find() ? m.group() : "(none)";
    }

    @Test
    void committedPtxIsWhatTheSourceCompilesTo() throws Exception {
        String nvcc = nvcc();
        Assumptions.assumeTrue(nvcc != null, "nvcc not found: the committed PTX is not re-checked against its sources here");
        Path tmp = Files.createTempDirectory("bonsai-ptx");
        for (String module : KernelCatalog.MODULES) {
            Path out = tmp.resolve(module + ".ptx");
            run(List.of(nvcc, "-ptx", "-arch=compute_80", "-O3", "-I", CU.toString(), "-o", out.toString(), CU.resolve(module + ".cu").toString()));
            String now = Files.readString(out), committed = Files.readString(PTX.resolve(module + ".ptx"));
            Assumptions.assumeTrue(versionLine(now).equals(versionLine(committed)),
                    "nvcc here (" + versionLine(now) + ") is not the one that built the committed PTX (" + versionLine(committed) + ")");
            assertEquals(committed, now, module + ".ptx is stale: run kernels/build-ptx and commit the result");
        }
    }

    @Test
    void noRegisterSpillsOnSm90() throws Exception {
        String nvcc = nvcc();
        Path ptxas = nvcc == null ? null : Path.of(nvcc).resolveSibling("ptxas");
        Assumptions.assumeTrue(ptxas != null && Files.isExecutable(ptxas), "ptxas not found: spills are not checked here");
        for (String module : KernelCatalog.MODULES) {
            String report = run(List.of(ptxas.toString(), "-arch=sm_90", "-v", PTX.resolve(module + ".ptx").toString(), "-o", "/dev/null"));
            Matcher m = Pattern.compile("(\\d+) bytes spill stores, (\\d+) bytes spill loads").matcher(report);
            int kernels = 0;
            while (m.find()) {
                kernels++;
                assertEquals("0 0", m.group(1) + " " + m.group(2), module + ": spills in\n" + report);
            }
            assertEquals(KernelCatalog.kernelsOf(module).size(), kernels, module + ": one ptxas report per kernel\n" + report);
        }
    }

    @Test
    void launchConfigurationsAreValidOverEachOpsSizeRange() {
        long[] sizes = {1, 3, 13, 207, 1 << 20, Integer.MAX_VALUE};
        for (long n : sizes) {
            for (int block : Launches.ELEMENTWISE_BLOCKS) {
                LaunchConfig c = Launches.elementwise(n, block);   // the record checks CUDA's limits
                assertEquals(block, c.blockX());
                assertTrue(c.gridX() >= 1 && c.gridX() <= (n + block - 1) / block, n + "/" + block + ": " + c);
                assertEquals(0, block % 32, "whole warps");
            }
            for (int block : Launches.ROW_BLOCKS) {
                LaunchConfig c = Launches.perRow(n, block);
                assertTrue(c.gridX() >= 1 && c.gridX() <= Math.min(n, 65535), c.toString());
                assertTrue(block <= 256, "the row kernels' shared arrays hold 256");
            }
            int rb = Launches.rowBlockFor(n);
            assertTrue(rb >= Math.min(n, 256) && rb <= 256, n + " -> " + rb);
        }
        assertThrows(IllegalArgumentException.class, () -> LaunchConfig.of1d(1, 2048));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LaunchConfig.of2d(1, 70000, 32));
        assertTrue(e.getMessage().contains("grid=(1,70000,1)"), e.getMessage());
    }

    /** branch_pair's tile: its shared region always fits 48 KiB, and it gives up only when not even a 1x1 tile fits. */
    @Test
    void branchPairTilesFitSharedMemory() {
        ai.bonsai.backend.Backend cpu = ai.bonsai.backend.cpu.CpuBackend.get();
        for (int[] ks : new int[][] {{1, 1, 0}, {3, 1, 1}, {3, 2, 1}, {5, 1, 2}}) {
            int k = ks[0], stride = ks[1], pad = ks[2];
            ai.bonsai.backend.BranchConv second = new ai.bonsai.backend.BranchConv(1, 1, k, stride, pad, java.util.List.of(
                    new ai.bonsai.backend.BranchConv.Branch(new int[] {0}, new int[] {0}, cpu.allocate(ai.bonsai.tensor.DType.FLOAT32, k * k),
                            cpu.allocate(ai.bonsai.tensor.DType.FLOAT32, 1), cpu.allocate(ai.bonsai.tensor.DType.FLOAT32, 1), false)));
            for (int c1 : new int[] {1, 13, 64, 207, 1365, 1366, 4000}) {
                for (int size : new int[] {1, 7, 16, 17, 32, 207}) {
                    for (boolean inPlace : new boolean[] {false, true}) {
                        int[] t = CudaBackend.pairTile(c1, second, size, size + 1, inPlace);
                        long rh = t == null ? 0 : (long) (t[0] - 1) * stride + k, rw = t == null ? 0 : (long) (t[1] - 1) * stride + k;
                        String what = "c1=" + c1 + " k=" + k + " stride=" + stride + " out " + size + "x" + (size + 1) + " inPlace=" + inPlace;
                        if (t == null) {
                            long need = inPlace ? (long) c1 * ((long) (size - 1) * stride + k) * ((long) size * stride + k) : (long) c1 * k * k;
                            assertTrue(need * 4 > LaunchConfig.MAX_STATIC_SHARED_BYTES, what + ": gave up although " + need + " floats fit");
                        } else {
                            assertTrue(c1 * rh * rw * 4 <= LaunchConfig.MAX_STATIC_SHARED_BYTES, what + ": region " + rh + "x" + rw);
                            assertTrue(t[0] >= 1 && t[0] <= size && t[1] >= 1 && t[1] <= size + 1, what + ": tile " + t[0] + "x" + t[1]);
                            if (inPlace) assertArrayEquals(new int[] {size, size + 1}, t, what + ": in place needs the whole image");
                        }
                    }
                }
            }
        }
    }

    @Test
    void rowKernelSharedArraysMatchTheLargestRowBlock() throws IOException {
        int largest = Launches.ROW_BLOCKS[Launches.ROW_BLOCKS.length - 1];
        assertTrue(Files.readString(CU.resolve("reduce.cu")).contains("#define REDUCE_MAX_BLOCK " + largest));
        assertTrue(Files.readString(CU.resolve("softmax.cu")).contains("#define SOFTMAX_MAX_BLOCK " + largest));
        assertTrue(Files.readString(CU.resolve("batchnorm.cu")).contains("#define BN_MAX_BLOCK " + largest));
        assertTrue(Files.readString(CU.resolve("conv.cu")).contains("#define CONV_MAX_BLOCK " + largest));
        assertTrue(Files.readString(CU.resolve("group_reg.cu")).contains("#define GROUP_BLOCK " + Launches.GROUP_BLOCK));
    }
}
