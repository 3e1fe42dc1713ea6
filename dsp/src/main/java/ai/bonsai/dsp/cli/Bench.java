package ai.bonsai.dsp.cli;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.backend.cpu.Parallel;
import ai.bonsai.dsp.models.Architectures;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.pack.GraphPacker;
import ai.bonsai.dsp.pack.PackedGraph;
import ai.bonsai.dsp.pack.PackedGraphFormat;
import ai.bonsai.dsp.pack.PackedFormat;
import ai.bonsai.dsp.pack.PackedModel;
import ai.bonsai.dsp.pack.Packer;
import ai.bonsai.dsp.imports.PackedResNetConverter;
import ai.bonsai.io.Checkpoint;
import ai.bonsai.nn.Module;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import com.fasterxml.jackson.databind.ObjectMapper;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code bonsai bench}: inference latency of the dense, the masked and the packed network on one batch of random
 * 32x32 inputs. The three run in turn within every repeat (so that drift in machine load hits them alike); each
 * figure is the median over the repeats after warm-up. "Dense" is an unpruned network of the same depth (random
 * weights: dense time does not depend on the values), "masked" the checkpoint's own network (dense convolutions
 * over masked weights), "packed" its packed form. Given a packed file there is no masked network to time.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Time dense, masked and packed inference of a checkpoint or packed model.")
public final class Bench implements Callable<Integer> {
    @Option(names = "--ckpt", required = true, paramLabel = "FILE", description = "A masked Bonsai checkpoint, a packed model (.safetensors) or a published DSP model (TorchScript .pt).")
    Path ckpt;

    @Option(names = "--batch", defaultValue = "1", paramLabel = "N", description = "Images per forward pass (default: ${DEFAULT-VALUE}).")
    int batch;

    @Option(names = "--repeats", defaultValue = "15", paramLabel = "N", description = "Timed runs of each network (default: ${DEFAULT-VALUE}).")
    int repeats;

    @Option(names = "--warmup", defaultValue = "5", paramLabel = "N", description = "Untimed runs first, for the JIT (default: ${DEFAULT-VALUE}).")
    int warmup;

    @Option(names = "--warmup-seconds", defaultValue = "20", paramLabel = "S",
            description = "Warm up for at least this many seconds too (default: ${DEFAULT-VALUE}); then on until the "
                    + "median times of successive windows of runs agree within 5 %% (at most 80 s). On 2 cores the "
                    + "compute threads starve the JIT's compiler threads: at batch 1 dense ResNet-20 took 12-16 ms "
                    + "per image for the first 10 s and 1.8 ms after 15 s. With --warmup 0 too, there is no warm-up at all.")
    double warmupSeconds;

    @Option(names = "--image-size", paramLabel = "N",
            description = "Time at N x N pixels instead of the checkpoint's own size (architectures other than the CIFAR ResNets; "
                    + "masks do not depend on the size, so a model fine-tuned at 32 can be timed at 224).")
    Integer imageSize;

    @Option(names = "--json", description = "Print one JSON object instead of text.")
    boolean json;

    @Mixin DeviceOptions devices;

    public static void main(String[] args) { System.exit(Bonsai.execute(new Bench(), args)); }

    /** Medians in milliseconds (masked is NaN without a masked network) and the packed model's summed time per stage. */
    public record Timing(int batch, double denseMs, double maskedMs, double packedMs, long[] stageNanos) {
        public double speedup() { return denseMs / packedMs; }
    }

    /**
     * Times the dense network of the packed model's shape (random weights: the work does not depend on the
     * values), the masked network when given, and the packed one, interleaved within each repeat so that
     * machine noise hits all three alike; {@code stageNanos} (stem, blocks, pool + classifier) is summed over the repeats.
     */
    /** Warm-up windows: runs per window, and the longest the settling phase may take. */
    private static final int WARMUP_WINDOW = 8;
    private static final double WARMUP_CAP_SECONDS = 80;

    public static Timing measure(CifarResNet masked, PackedModel packed, int batch, int warmup, int repeats) {
        return measure(masked, packed, batch, warmup, 0, repeats, Device.cpu());
    }

    /**
     * As above, warming up for at least {@code warmup} rounds <b>and</b> {@code warmupSeconds} seconds, then until
     * the dense and packed medians of two successive windows agree within 5 % (at most 80 s in all).
     */
    public static Timing measure(CifarResNet masked, PackedModel packed, int batch, int warmup, double warmupSeconds,
                                 int repeats, Device device) {
        PackedModel.Structure s = packed.structure();
        CifarResNet dense = new CifarResNet(s.depth(), s.classifier().classes(), new Generator(0));
        Tensor x = Tensor.randn(new Generator(1), batch, s.inputChannels(), s.inputSize(), s.inputSize());
        dense.to(device);
        if (masked != null) masked.to(device);
        packed.to(device);
        // Per-stage times need the device to finish each stage; on a GPU they would serialise the pipeline.
        long[] stages = new long[device.kind() == Device.Kind.CPU ? s.blocks().size() + 2 : 0];
        return measure(dense, masked, packed, x.to(device), warmup, warmupSeconds, repeats, stages);
    }

    /**
     * Any three networks on input {@code x}: {@code dense} (put in eval mode here), {@code masked} (may be null) and
     * {@code packed}; {@code stageNanos} is filled when the packed network is a {@link PackedModel} (else pass an
     * empty array).
     */
    public static Timing measure(Module dense, Module masked, Module packed, Tensor x, int warmup, double warmupSeconds,
                                 int repeats, long[] stageNanos) {
        dense.eval();
        int batch = x.dim(0);
        double[] dMs = new double[repeats], mMs = new double[repeats], pMs = new double[repeats];
        try (var scope = GradMode.noGrad()) {
            long start = System.nanoTime(), until = start + (long) (warmupSeconds * 1e9);
            for (int i = 0; i < warmup || System.nanoTime() < until; i++) {
                finish(dense.forward(x));
                if (masked != null) finish(masked.forward(x));
                finish(packed.forward(x));
            }
            // Then until the JIT has settled: windows of runs whose median times agree with the previous window's
            // within 5 %, for at most WARMUP_CAP_SECONDS from the start.
            // (None at all when both warm-up settings are zero: the caller asked for cold timings.)
            double prevD = Double.NaN, prevP = Double.NaN;
            long cap = warmup == 0 && warmupSeconds == 0 ? start : start + (long) (WARMUP_CAP_SECONDS * 1e9);
            while (System.nanoTime() < cap) {
                double[] d = new double[WARMUP_WINDOW], p = new double[WARMUP_WINDOW];
                for (int i = 0; i < WARMUP_WINDOW; i++) {
                    d[i] = time(dense, x);
                    if (masked != null) finish(masked.forward(x));
                    p[i] = time(packed, x);
                }
                double md = median(d), mp = median(p);
                boolean settled = Math.abs(md - prevD) <= 0.05 * prevD && Math.abs(mp - prevP) <= 0.05 * prevP;
                prevD = md;
                prevP = mp;
                if (settled) break;
            }
            for (int r = 0; r < repeats; r++) {
                dMs[r] = time(dense, x);
                if (masked != null) mMs[r] = time(masked, x);
                long t = System.nanoTime();
                if (packed instanceof PackedModel pm && stageNanos.length > 0) pm.forward(x, stageNanos);
                else finish(packed.forward(x));
                pMs[r] = (System.nanoTime() - t) / 1e6;
            }
        }
        return new Timing(batch, median(dMs), masked == null ? Double.NaN : median(mMs), median(pMs), stageNanos);
    }

    @Override public Integer call() {
        Device device = devices.setUp();
        if (batch < 1) throw new IllegalArgumentException("--batch: expected a positive number, got " + batch);
        if (repeats < 1) throw new IllegalArgumentException("--repeats: expected a positive number, got " + repeats);
        if (warmup < 0) throw new IllegalArgumentException("--warmup: expected zero or more, got " + warmup);
        if (!(warmupSeconds >= 0)) throw new IllegalArgumentException("--warmup-seconds: expected zero or more, got " + warmupSeconds);
        if (!Files.isRegularFile(ckpt)) throw new IllegalArgumentException("--ckpt " + ckpt.toAbsolutePath() + ": no such file");
        if (imageSize != null && imageSize < 1) throw new IllegalArgumentException("--image-size: expected a positive number, got " + imageSize);
        if (!Evaluate.isTorchScript(ckpt) && PackedGraphFormat.isPackedGraph(ckpt)) {   // (a .pt archive is no safetensors file)
            requireCpu(device, ckpt);
            Map<String, String> meta = PackedGraphFormat.metadata(ckpt);
            Architectures.Spec spec = Architectures.fromMetadata(meta, ckpt.toString());
            int classes = Integer.parseInt(meta.getOrDefault("numClasses", "10").trim());
            PackedGraph packed = PackedGraph.load(ckpt);
            int[] dims = packed.structure().inputDims();
            if (imageSize != null && imageSize != dims[dims.length - 1]) {
                throw new IllegalArgumentException("--image-size " + imageSize + ": " + ckpt + " was packed at " + dims[dims.length - 1]
                        + " pixels; bench the fine-tuned checkpoint instead, which packs at any size");
            }
            return benchGraph(spec, spec.create(classes, new Generator(0)), null, packed, dims);
        }
        CifarResNet masked = null;
        PackedModel packed;
        if (Evaluate.isTorchScript(ckpt)) {
            try {
                packed = PackedResNetConverter.load(ckpt);
            } catch (java.io.IOException e) {
                throw new UncheckedIOException(e.getMessage(), e);
            }
        } else if (PackedFormat.isPacked(ckpt)) {
            packed = PackedModel.load(ckpt);
        } else {
            Evaluate.Rebuilt r = Evaluate.rebuild(Checkpoint.load(ckpt));
            if (!(r.model() instanceof CifarResNet)) {
                requireCpu(device, ckpt);
                int[] dims = r.inputDims().clone();
                if (imageSize != null) {
                    dims[1] = imageSize;
                    dims[2] = imageSize;
                }
                return benchGraph(r.spec(), r.spec().create(r.classes(), new Generator(0)), r.model(), GraphPacker.pack(r.model(), dims), dims);
            }
            masked = (CifarResNet) r.model();
            packed = Packer.pack(masked);
        }
        PackedModel.Structure s = packed.structure();
        if (!s.architecture().equals("cifar_resnet")) {
            throw new IllegalArgumentException("--ckpt " + ckpt + ": architecture '" + s.architecture() + "' has no dense counterpart to time (expected cifar_resnet)");
        }
        Timing t = measure(masked, packed, batch, warmup, warmupSeconds, repeats, device);
        double denseMs = t.denseMs(), maskedMs = t.maskedMs(), packedMs = t.packedMs();
        long[] stageNanos = t.stageNanos();
        int blocks = s.blocks().size();
        double macRatio = (double) packed.denseMacs() / packed.macs();
        List<String> names = new ArrayList<>();
        names.add("stem");
        for (PackedModel.Block b : s.blocks()) names.add(b.name());
        names.add("pool+classifier");
        List<PackedModel.BlockStats> stats = packed.blockStats();
        if (json) {
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("checkpoint", ckpt.toAbsolutePath().toString());
            out.put("architecture", "resnet" + s.depth());
            out.put("device", device.toString());
            out.put("batch", batch);
            out.put("threads", Parallel.threads());
            out.put("repeats", repeats);
            out.put("denseMs", denseMs);
            out.put("maskedMs", masked == null ? null : maskedMs);
            out.put("packedMs", packedMs);
            out.put("speedup", denseMs / packedMs);
            out.put("maskedSpeedup", masked == null ? null : maskedMs / packedMs);
            out.put("macRatio", macRatio);
            out.put("denseMacs", packed.denseMacs());
            out.put("packedMacs", packed.macs());
            out.put("denseImagesPerSecond", batch * 1000.0 / denseMs);
            out.put("packedImagesPerSecond", batch * 1000.0 / packedMs);
            List<Map<String, Object>> per = new ArrayList<>();
            for (int i = 0; i < stageNanos.length; i++) {
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("name", names.get(i));
                m.put("ms", stageNanos[i] / 1e6 / repeats);
                if (i >= 1 && i <= blocks) m.put("macs", stats.get(i - 1).macs() * (long) batch);
                per.add(m);
            }
            out.put("blocks", per);
            try {
                System.out.println(new ObjectMapper().writeValueAsString(out));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            return 0;
        }
        System.out.printf("ResNet-%d, batch %d, %s, median of %d runs after %d warm-up runs%n", s.depth(), batch,
                device.kind() == Device.Kind.CPU ? Parallel.threads() + " threads" : "device " + device, repeats, warmup);
        System.out.printf("  dense   %9.3f ms  %9.1f images/s%n", denseMs, batch * 1000.0 / denseMs);
        if (masked != null) System.out.printf("  masked  %9.3f ms  %9.1f images/s%n", maskedMs, batch * 1000.0 / maskedMs);
        else System.out.println("  masked        n/a  (a packed or imported model has no masked network)");
        System.out.printf("  packed  %9.3f ms  %9.1f images/s%n", packedMs, batch * 1000.0 / packedMs);
        System.out.printf("speed-up %.2fx over dense%s; multiply-adds %,d -> %,d per image (ratio %.2fx)%n", denseMs / packedMs,
                masked == null ? "" : String.format(" (%.2fx over masked)", maskedMs / packedMs), packed.denseMacs(), packed.macs(), macRatio);
        if (stageNanos.length == 0) return 0;   // not timed per stage on a GPU (see measure)
        long total = Arrays.stream(stageNanos).sum();
        System.out.println("where time goes (packed, mean per run):");
        for (int i = 0; i < stageNanos.length; i++) {
            String macs = "";
            if (i >= 1 && i <= blocks) {
                PackedModel.BlockStats b = stats.get(i - 1);
                macs = String.format("  %,11d MACs/image (%5.1f%% of dense)  %6.1f GMAC/s", b.macs(), 100.0 * b.macs() / b.denseMacs(),
                        b.macs() * (double) batch / (stageNanos[i] / (double) repeats));
            }
            System.out.printf("  %-16s %8.3f ms %5.1f%%%s%n", names.get(i), stageNanos[i] / 1e6 / repeats, 100.0 * stageNanos[i] / total, macs);
        }
        return 0;
    }

    /** Packed graphs (architectures other than the CIFAR ResNets) have CPU plans only. */
    private static void requireCpu(Device device, Path ckpt) {
        if (device.kind() != Device.Kind.CPU) {
            throw new IllegalArgumentException("--device " + device + ": " + ckpt + " is a packed graph (not a CIFAR ResNet), which runs on the CPU only; use --device cpu");
        }
    }

    /** The dense network of the architecture, the masked one (may be null) and the packed graph, at {@code dims}. */
    private Integer benchGraph(Architectures.Spec spec, Module dense, Module masked, PackedGraph packed, int[] dims) {
        int[] shape = new int[dims.length + 1];
        shape[0] = batch;
        System.arraycopy(dims, 0, shape, 1, dims.length);
        Tensor x = Tensor.randn(new Generator(1), shape);
        Timing t = measure(dense, masked, packed, x, warmup, warmupSeconds, repeats, new long[0]);
        double macRatio = (double) packed.denseMacs() / packed.macs();
        if (json) {
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("checkpoint", ckpt.toAbsolutePath().toString());
            out.put("architecture", spec.baseName());
            out.put("imageSize", dims[dims.length - 1]);
            out.put("batch", batch);
            out.put("threads", Parallel.threads());
            out.put("repeats", repeats);
            out.put("denseMs", t.denseMs());
            out.put("maskedMs", masked == null ? null : t.maskedMs());
            out.put("packedMs", t.packedMs());
            out.put("speedup", t.speedup());
            out.put("maskedSpeedup", masked == null ? null : t.maskedMs() / t.packedMs());
            out.put("macRatio", macRatio);
            out.put("denseMacs", packed.denseMacs());
            out.put("packedMacs", packed.macs());
            out.put("denseImagesPerSecond", batch * 1000.0 / t.denseMs());
            out.put("packedImagesPerSecond", batch * 1000.0 / t.packedMs());
            out.put("maxBranches", packed.maxBranches());
            try {
                System.out.println(new ObjectMapper().writeValueAsString(out));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            return 0;
        }
        System.out.printf("%s at %dx%d, batch %d, %d threads, median of %d runs after warm-up%n", spec.displayName(), dims[dims.length - 2],
                dims[dims.length - 1], batch, Parallel.threads(), repeats);
        System.out.printf("  dense   %9.3f ms  %9.1f images/s%n", t.denseMs(), batch * 1000.0 / t.denseMs());
        if (masked != null) System.out.printf("  masked  %9.3f ms  %9.1f images/s%n", t.maskedMs(), batch * 1000.0 / t.maskedMs());
        else System.out.println("  masked        n/a  (a packed file has no masked network)");
        System.out.printf("  packed  %9.3f ms  %9.1f images/s%n", t.packedMs(), batch * 1000.0 / t.packedMs());
        System.out.printf("speed-up %.2fx over dense%s; multiply-adds %,d -> %,d per image (ratio %.2fx; goal: speed-up >= 0.8x the ratio = %.2fx)%n",
                t.speedup(), masked == null ? "" : String.format(" (%.2fx over masked)", t.maskedMs() / t.packedMs()), packed.denseMacs(), packed.macs(),
                macRatio, 0.8 * macRatio);
        return 0;
    }

    private static double time(Module m, Tensor x) {
        long t = System.nanoTime();
        finish(m.forward(x));
        return (System.nanoTime() - t) / 1e6;
    }

    /**
     * Waits for a forward's result: a GPU backend returns as soon as the work is queued, and reading the logits back
     * (a few kilobytes) waits for it. A CPU result is complete already.
     */
    private static void finish(Tensor y) {
        if (y.device().kind() != Device.Kind.CPU) y.toFloatArray();
    }

    static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        int n = s.length;
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }
}
