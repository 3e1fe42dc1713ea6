package ai.bonsai.cuda;

import ai.bonsai.backend.Backend;
import ai.bonsai.backend.Backends;
import ai.bonsai.backend.BinaryOp;
import ai.bonsai.backend.ConvGeometry;
import ai.bonsai.backend.ReduceOp;
import ai.bonsai.backend.UnaryOp;
import ai.bonsai.tensor.Buffer;
import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Device;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.function.BiFunction;

/**
 * The GPU half of scripts/gpu-check: every CUDA primitive against the CPU backend on the device (the same
 * comparisons the emulation tests make, at ResNet-20 sizes as well as awkward ones), with each block size, then
 * a ResNet-20 trained for 20 steps on both from the same initialisation and data (losses compared step by step),
 * then the time of a ResNet-20-sized convolution and GEMM on both. Writes a JSON report; exits 0 when every check
 * passed, 1 when one failed, 2 when there is no usable GPU (with the one-line reason).
 *
 * <p>Usage: {@code java -cp bonsai.jar ai.bonsai.cuda.GpuCheck [report.json]}
 */
public final class GpuCheck {
    static final float ATOL = 2e-4f, RTOL = 2e-4f;

    private final Backend cpu = Backends.of(Device.cpu());   // by device, as any caller: the CUDA module names no other backend
    private final CudaBackend gpu;
    private final List<String> results = new ArrayList<>();
    private int failures;

    /** The batch of the ResNet-20-sized checks and timings: 128 on a GPU; small where the device is emulated. */
    private final int batch;
    /** Image side of those checks: 32 on a GPU, 8 under emulation (a fiber per thread makes 32x32 take minutes). */
    private final int side;
    private final boolean emulated;

    private GpuCheck(CudaBackend gpu, boolean emulated) {
        this.gpu = gpu;
        this.emulated = emulated;
        this.batch = emulated ? 2 : 128;
        this.side = emulated ? 8 : 32;
    }

    public static void main(String[] args) throws IOException {
        Backend b;
        try {
            b = Backends.of(Device.cuda(0));
        } catch (RuntimeException e) {
            System.err.println("gpu-check: " + e.getMessage());
            System.exit(2);
            return;
        }
        int failures = run((CudaBackend) b, false, args.length > 0 ? Path.of(args[0]) : null);
        System.exit(failures == 0 ? 0 : 1);
    }

    /**
     * Every check on {@code gpu}; returns the number that failed and writes the JSON report when {@code report} is
     * not null. {@code emulated}: the CPU emulator stands in for the GPU (the emulation test runs this whole
     * program that way), with batch 2 instead of 128 and fewer steps, so it finishes in seconds.
     */
    static int run(CudaBackend gpu, boolean emulated, Path report) throws IOException {
        GpuCheck c = new GpuCheck(gpu, emulated);
        System.out.println("gpu-check: " + c.gpu.runtime().describe());
        // Under emulation forced blocks are slow (a fiber switch per thread at every barrier, a block per weight in
        // the weight gradient); the kernel tests already run every block size there.
        for (int block : emulated ? new int[] {0} : new int[] {0, 128, 1024}) {
            c.gpu.forceBlock(block);
            c.gpu.useCudnn(block == 0);   // forced blocks check our own convolution kernels even where cuDNN loads
            c.parity(block == 0 ? "launcher's blocks, cuDNN where loaded" : "block " + block + ", own kernels");
        }
        c.gpu.forceBlock(0);
        c.gpu.useCudnn(true);
        c.training();
        c.timings();
        c.trainStepTimings();
        String json = "{\"device\": \"" + c.gpu.runtime().describe().replace("\"", "'") + "\", \"failures\": " + c.failures
                + ", \"checks\": [\n  " + String.join(",\n  ", c.results) + "\n]}\n";
        if (report != null) {
            if (report.getParent() != null) Files.createDirectories(report.getParent());
            Files.writeString(report, json);
            System.out.println("gpu-check: report written to " + report);
        }
        System.out.println("gpu-check: " + (c.failures == 0 ? "all checks passed" : c.failures + " check(s) FAILED"));
        return c.failures;
    }

    /**
     * ResNet-20 (the published architecture, width 16) trained for 20 SGD steps at batch 32 on 32x32 images, on the
     * CPU and on the GPU from the same initialisation and the same batches (TrainingComparison, which the emulation
     * test also runs at a reduced size) with SGD at lr 0.01; the losses of steps 0 and 1 must agree to 1e-4
     * relative, every later one to 2e-2 (see TrainingComparison for why).
     */
    private void training() {
        System.out.println("training (ResNet-20, 20 steps, CPU vs GPU from the same init and data):");
        TrainingComparison.Result r;
        try {
            r = emulated ? TrainingComparison.run(gpu.device(), 8, 4, 2, 8, 3, 0.01f, 20)
                    : TrainingComparison.run(gpu.device(), 20, 16, 32, 32, 20, 0.01f, 20);
        } catch (RuntimeException e) {
            failures++;
            System.out.println("  FAIL training: " + e);
            results.add("{\"check\": \"training ResNet-20\", \"ok\": false, \"error\": \"" + String.valueOf(e.getMessage()).replace("\"", "'") + "\"}");
            return;
        }
        if (!r.ok()) failures++;
        System.out.println("  " + (r.ok() ? "ok  " : "FAIL") + " " + r.summary());
        results.add(String.format(Locale.ROOT, "{\"check\": \"training ResNet-20, 20 steps\", \"ok\": %b, \"worstSteps01Rel\": %.3e, "
                + "\"worstLaterRel\": %.3e, \"paramMaxAbsDiff\": %.3e, \"evalLogitsMaxAbsDiff\": %.3e, %s}", r.ok(), r.worstFirst(), r.worstLater(), r.paramDiff(), r.evalLogitDiff(),
                TrainingComparison.lossesJson(r)));
    }

    private static float[] rand(int n, long seed) {
        Random r = new Random(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = r.nextFloat() * 2 - 1;
        return x;
    }

    private void compare(String what, float[] cpuOut, float[] gpuOut) {
        double worst = 0;
        int bad = -1;
        for (int i = 0; i < cpuOut.length; i++) {
            float e = cpuOut[i], g = gpuOut[i];
            if (e == g || (Float.isNaN(e) && Float.isNaN(g))) continue;
            double excess = Math.abs(g - e) - (ATOL + RTOL * Math.abs(e));
            if (!(excess <= 0) && (bad < 0 || excess > worst)) { worst = excess; bad = i; }
        }
        boolean ok = cpuOut.length == gpuOut.length && bad < 0;
        if (!ok) failures++;
        String detail = bad < 0 ? "" : String.format(Locale.ROOT, " element %d: cpu %g gpu %g", bad, cpuOut[bad], gpuOut[bad]);
        System.out.println("  " + (ok ? "ok  " : "FAIL") + " " + what + detail);
        results.add("{\"check\": \"" + what + "\", \"ok\": " + ok + "}");
    }

    /** Runs op on both backends with the same inputs; the function returns the output buffer. */
    private void both(String what, BiFunction<Backend, Boolean, Buffer> op) {
        compare(what, cpu.toFloats(op.apply(cpu, false)), gpu.toFloats(op.apply(gpu, true)));
    }

    private void parity(String label) {
        System.out.println("parity (" + label + "):");
        for (int n : new int[] {1, 13, 207, emulated ? 4099 : 1 << 20}) {
            float[] x = rand(n, n);
            for (UnaryOp op : UnaryOp.values()) {
                float[] in = op == UnaryOp.LOG || op == UnaryOp.SQRT || op == UnaryOp.RSQRT ? abs(x) : x;
                both(op + " n=" + n, (b, g) -> { Buffer o = b.allocate(DType.FLOAT32, n); b.unary(op, b.fromFloats(in), o); return o; });
            }
            for (BinaryOp op : BinaryOp.values()) {
                float[] y = rand(n, n + 1);
                both(op + " n=" + n, (b, g) -> { Buffer o = b.allocate(DType.FLOAT32, n);
                    b.binary(op, b.fromFloats(op == BinaryOp.POW ? abs(x) : x), new int[] {n}, b.fromFloats(y), new int[] {n}, o, new int[] {n}); return o; });
            }
        }
        int batch = this.batch;
        int[] d = {batch, 64, 8, 8};
        float[] x = rand(batch * 64 * 64, 5);
        for (ReduceOp op : ReduceOp.values())
            both(op + " over (0,2,3) of " + java.util.Arrays.toString(d), (b, g) -> { Buffer o = b.allocate(DType.FLOAT32, 64);
                b.reduce(op, b.fromFloats(x), d, new boolean[] {true, false, true, true}, o); return o; });
        both("log-softmax " + batch + "x10", (b, g) -> { Buffer o = b.allocate(DType.FLOAT32, batch * 10); b.softmax(b.fromFloats(x), batch, 10, true, o); return o; });
        int side = this.side;
        for (ConvGeometry cg : new ConvGeometry[] {new ConvGeometry(batch, 16, side, side, 16, 3, 3, 1, 1, 1, 1, 1),
                emulated ? new ConvGeometry(batch, 8, side / 2, side / 2, 16, 3, 3, 2, 2, 1, 1, 1)
                        : new ConvGeometry(batch, 32, side / 2, side / 2, 64, 3, 3, 2, 2, 1, 1, 1), new ConvGeometry(3, 4, 13, 13, 6, 3, 3, 2, 2, 1, 1, 2)}) {
            float[] xi = rand(cg.n() * cg.c() * cg.h() * cg.w(), 7), w = rand(cg.k() * cg.cg() * cg.r() * cg.s(), 8);
            float[] dy = rand(cg.n() * cg.k() * cg.outH() * cg.outW(), 9);
            both("conv2d " + cg, (b, g) -> { Buffer o = b.allocate(DType.FLOAT32, dy.length); b.conv2d(cg, b.fromFloats(xi), b.fromFloats(w), null, o); return o; });
            both("conv2dBackwardData " + cg, (b, g) -> { Buffer o = b.allocate(DType.FLOAT32, xi.length); b.conv2dBackwardData(cg, b.fromFloats(dy), b.fromFloats(w), o); return o; });
            both("conv2dBackwardWeight " + cg, (b, g) -> { Buffer o = b.allocate(DType.FLOAT32, w.length); b.conv2dBackwardWeight(cg, b.fromFloats(xi), b.fromFloats(dy), o); return o; });
        }
        for (int t = 0; t < 4; t++) {
            boolean ta = (t & 1) != 0, tb = (t & 2) != 0;
            float[] a = rand(batch * 64, 10), bm = rand(64 * 10, 11);
            both("gemm " + batch + "x10x64 transA=" + ta + " transB=" + tb, (b, g) -> { Buffer o = b.allocate(DType.FLOAT32, batch * 10);
                b.gemm(ta, tb, 1, batch, 10, 64, 1f, b.fromFloats(a), 0, b.fromFloats(bm), 0, 0f, o); return o; });
        }
        float[] gamma = rand(64, 12), beta = rand(64, 13);
        both("batchNormTrain (" + batch + ", 64, 64)", (b, g) -> { Buffer y = b.allocate(DType.FLOAT32, x.length);
            b.batchNormTrain(b.fromFloats(x), batch, 64, 64, b.fromFloats(gamma), b.fromFloats(beta), b.allocate(DType.FLOAT32, 64),
                    b.fromFloats(abs(gamma)), 0.1f, 1e-5f, y, b.allocate(DType.FLOAT32, 64), b.allocate(DType.FLOAT32, 64)); return y; });
        // A packed block's conv_a at ResNet-20 stage 1: two branches over 8 of 16 channels each.
        float[] bx = rand(batch * 16 * side * side, 16), bw = rand(8 * 8 * 9, 17), bs = abs(rand(8, 18)), bsh = rand(8, 19);
        both("branchConv2d 2 branches 16->16 at " + side + "x" + side + ", batch " + batch, (b, g) -> {
            java.util.List<ai.bonsai.backend.BranchConv.Branch> br = java.util.List.of(
                    new ai.bonsai.backend.BranchConv.Branch(new int[] {0, 2, 4, 6, 8, 10, 12, 14}, new int[] {0, 1, 2, 3, 4, 5, 6, 7},
                            b.fromFloats(bw), b.fromFloats(bs), b.fromFloats(bsh), true),
                    new ai.bonsai.backend.BranchConv.Branch(new int[] {1, 3, 5, 7, 9, 11, 13, 15}, new int[] {8, 9, 10, 11, 12, 13, 14, 15},
                            b.fromFloats(bw), b.fromFloats(bs), b.fromFloats(bsh), false));
            Buffer y = b.allocate(DType.FLOAT32, bx.length);
            b.branchConv2d(new ai.bonsai.backend.BranchConv(16, 16, 3, 1, 1, br), b.fromFloats(bx), batch, side, side, y, false);
            return y; });
        // The fused pair (branch_pair): a packed block's conv_a then conv_b, ResNet-20 stage 3 added into its own
        // input (whole-image tile), stage 1 into another buffer (16x16 tiles) and stage 1 in place (through a temporary).
        int big = emulated ? 16 : 32;
        for (int[] sh : new int[][] {{64, 8, 1}, {16, big, 0}, {16, big, 1}}) {
            int ch = sh[0], hw = sh[1], half = ch / 2;
            boolean inPlace = sh[2] == 1;
            float[] px = rand(batch * ch * hw * hw, 20 + ch), pw = rand(half * half * 9, 21), ps = abs(rand(half, 22)), psh = rand(half, 23);
            float[] outShift = rand(ch, 24);
            both("branchConv2dPair 2+2 branches " + ch + "->" + ch + " at " + hw + "x" + hw + ", batch " + batch + (inPlace ? ", in place" : ""), (b, g) -> {
                int[] even = new int[half], odd = new int[half], lo = new int[half], hi = new int[half];
                for (int i = 0; i < half; i++) { even[i] = 2 * i; odd[i] = 2 * i + 1; lo[i] = i; hi[i] = half + i; }
                ai.bonsai.backend.BranchConv first = new ai.bonsai.backend.BranchConv(ch, ch, 3, 1, 1, java.util.List.of(
                        new ai.bonsai.backend.BranchConv.Branch(even, lo, b.fromFloats(pw), b.fromFloats(ps), b.fromFloats(psh), true),
                        new ai.bonsai.backend.BranchConv.Branch(odd, hi, b.fromFloats(pw), b.fromFloats(ps), b.fromFloats(psh), true)));
                ai.bonsai.backend.BranchConv second = new ai.bonsai.backend.BranchConv(ch, ch, 3, 1, 1, java.util.List.of(
                        new ai.bonsai.backend.BranchConv.Branch(lo, odd, b.fromFloats(pw), b.fromFloats(ps), b.fromFloats(psh), false),
                        new ai.bonsai.backend.BranchConv.Branch(hi, even, b.fromFloats(pw), b.fromFloats(ps), b.fromFloats(psh), false)),
                        b.fromFloats(outShift), true);
                Buffer in = b.fromFloats(px), y = inPlace ? in : b.fromFloats(px);
                b.branchConv2dPair(first, second, in, batch, hw, hw, y, true);
                return y; });
        }
        float[] wr = rand(64 * 32 * 9, 14), p = abs(rand(4 * 64, 15));
        both("groupRegularizer penalty (4 groups, 64x32x3x3)", (b, g) -> { Buffer pen = b.allocate(DType.FLOAT32, wr.length);
            b.groupRegularizer(b.fromFloats(wr), b.fromFloats(p), 4, 64, 32, 9, 1e-3f, pen, null, false, null); return pen; });
    }

    private static float[] abs(float[] x) {
        float[] y = new float[x.length];
        for (int i = 0; i < x.length; i++) y[i] = Math.abs(x[i]) + 0.01f;
        return y;
    }

    private void timings() {
        ConvGeometry cg = new ConvGeometry(batch, 16, side, side, 16, 3, 3, 1, 1, 1, 1, 1);
        for (Backend b : new Backend[] {cpu, gpu}) {
            Buffer x = b.fromFloats(rand(cg.n() * cg.c() * cg.h() * cg.w(), 1)), w = b.fromFloats(rand(16 * 16 * 9, 2));
            Buffer y = b.allocate(DType.FLOAT32, cg.n() * cg.k() * cg.outH() * cg.outW());
            double ms = time(() -> b.conv2d(cg, x, w, null, y), b);
            String name = b == cpu ? "cpu" : "cuda";
            System.out.printf(Locale.ROOT, "time: conv2d %s on %s: %.3f ms%n", cg, name, ms);
            results.add(String.format(Locale.ROOT, "{\"timing\": \"conv2d ResNet-20 stage 1, batch %d\", \"backend\": \"%s\", \"ms\": %.4f}", batch, name, ms));
        }
    }

    /**
     * The ResNet-20 training step at batch 128 (32x32, SGD with momentum 0.9 and weight decay 1e-4), as the PyTorch
     * peer (benchmarks/peers/torch_resnet20.py) times it: inputs already on the device, no value read
     * back inside the step, 5 warm-up steps, then the mean of 20 with one synchronisation at the end. The CPU figure
     * is the same step on this machine's cores, for scale.
     */
    private void trainStepTimings() {
        String net = emulated ? "ResNet-8 (width 4)" : "ResNet-20";
        for (Backend b : new Backend[] {gpu, cpu}) {
            Device dev = b.device();
            ai.bonsai.nn.Module model = TrainingComparison.resnet(emulated ? 8 : 20, emulated ? 4 : 16, new ai.bonsai.tensor.Generator(0)).to(dev);
            ai.bonsai.optim.SGD opt = new ai.bonsai.optim.SGD(model.parameters(), 0.1f, 0.9f, 0f, 1e-4f, false);
            ai.bonsai.tensor.Tensor x = ai.bonsai.tensor.Tensor.randn(new ai.bonsai.tensor.Generator(1), batch, 3, side, side).to(dev);
            long[] labels = new long[batch];
            for (int i = 0; i < labels.length; i++) labels[i] = i % 10;
            // Labels stay on the host, as in Trainer: cross-entropy checks their range there and uploads them
            // (asynchronously); labels on the device would be read back for that check, a wait in every step.
            ai.bonsai.tensor.Tensor y = ai.bonsai.tensor.Tensor.ofLongs(labels, labels.length);
            model.train();
            Runnable step = () -> {
                opt.zeroGrad();
                ai.bonsai.nn.Functional.crossEntropy(model.forward(x), y).backward();
                opt.step();
            };
            for (int i = 0; i < (emulated ? 1 : 5); i++) step.run();
            sync(b);
            int reps = emulated ? 1 : b == gpu ? 20 : 5;
            long t0 = System.nanoTime();
            for (int i = 0; i < reps; i++) step.run();
            sync(b);
            double ms = (System.nanoTime() - t0) / 1e6 / reps;
            String name = b == cpu ? "cpu" : "cuda";
            System.out.printf(Locale.ROOT, "time: %s training step, batch %d, on %s: %.3f ms (mean of %d)%n", net, batch, name, ms, reps);
            results.add(String.format(Locale.ROOT, "{\"timing\": \"%s training step, batch %d\", \"backend\": \"%s\", \"ms\": %.4f}", net, batch, name, ms));
        }
    }

    private double time(Runnable r, Backend b) {
        for (int i = 0; i < 3; i++) r.run();
        sync(b);
        int reps = 10;
        long t0 = System.nanoTime();
        for (int i = 0; i < reps; i++) r.run();
        sync(b);
        return (System.nanoTime() - t0) / 1e6 / reps;
    }

    private void sync(Backend b) { if (b == gpu) gpu.runtime().synchronize(); }
}
