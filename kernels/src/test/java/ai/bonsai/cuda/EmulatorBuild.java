package ai.bonsai.cuda;

import org.junit.jupiter.api.Assumptions;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * Compiles every kernel file (src/main/cuda/*.cu and the test kernels in src/test/cuda) with the host g++ into
 * one emulator binary, cached under target/emu by a hash of the sources, so a rebuild happens only when a kernel
 * or the harness changes. Tests that need it skip, with the reason, where there is no g++.
 */
final class EmulatorBuild {
    private EmulatorBuild() {}

    private static Path built;
    private static String failure;

    static synchronized Path binary() {
        if (built != null) return built;
        if (failure != null) Assumptions.abort(failure);
        try {
            if (!onPath("g++")) {
                failure = "g++ is not on the PATH: the CUDA kernels' CPU-emulation tests are skipped";
                Assumptions.abort(failure);
            }
            Path root = kernelsDir();
            List<Path> sources = new ArrayList<>();
            for (String dir : new String[] {"src/main/cuda", "src/test/cuda"}) {
                try (Stream<Path> s = Files.list(root.resolve(dir))) { s.filter(p -> p.toString().endsWith(".cu")).sorted().forEach(sources::add); }
            }
            List<Path> hashed = new ArrayList<>(sources);
            hashed.add(root.resolve("src/main/cuda/bonsai_cuda.cuh"));
            hashed.add(root.resolve("src/main/cuda/emu/cuda_emu.h"));
            hashed.add(root.resolve("src/main/cuda/emu/emu_main.cpp"));
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            for (Path p : hashed) { md.update(root.relativize(p).toString().getBytes()); md.update(Files.readAllBytes(p)); }
            String hash = HexFormat.of().formatHex(md.digest()).substring(0, 16);
            Path bin = root.resolve("target/emu/bonsai-emu-" + hash).toAbsolutePath();
            if (!Files.isExecutable(bin)) {
                Files.createDirectories(bin.getParent());
                Path tmp = bin.resolveSibling(bin.getFileName() + ".tmp");
                List<String> cmd = new ArrayList<>(List.of("g++", "-std=c++17", "-O1", "-I", root.resolve("src/main/cuda").toString(), "-I", root.resolve("src/main/cuda/emu").toString(), "-x", "c++"));
                for (Path s : sources) cmd.add(s.toString());
                cmd.addAll(List.of("-x", "none", root.resolve("src/main/cuda/emu/emu_main.cpp").toString(), "-o", tmp.toString()));
                Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
                String log = new String(p.getInputStream().readAllBytes());
                if (!p.waitFor(300, TimeUnit.SECONDS) || p.exitValue() != 0) {
                    throw new IllegalStateException("g++ failed to build the kernel emulator:\n" + String.join(" ", cmd) + "\n" + log);
                }
                Files.move(tmp, bin, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            }
            built = bin;
            return bin;
        } catch (IOException | InterruptedException | java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException("building the kernel emulator", e);
        }
    }

    /**
     * The kernels module's folder: the working directory when the kernels tests run, ../kernels when another
     * module's tests (dsp) use the emulator.
     */
    static Path kernelsDir() {
        for (Path p : new Path[] {Path.of(""), Path.of("..", "kernels")}) {
            if (Files.isRegularFile(p.resolve("src/main/cuda/bonsai_cuda.cuh"))) return p.toAbsolutePath().normalize();
        }
        failure = "the kernel sources (kernels/src/main/cuda) are not beside " + Path.of("").toAbsolutePath()
                + ": the CUDA emulation tests are skipped";
        Assumptions.abort(failure);
        throw new AssertionError();
    }

    static boolean onPath(String tool) {
        String path = System.getenv().getOrDefault("PATH", "");
        for (String d : path.split(java.io.File.pathSeparator)) if (!d.isEmpty() && Files.isExecutable(Path.of(d, tool))) return true;
        return false;
    }
}
