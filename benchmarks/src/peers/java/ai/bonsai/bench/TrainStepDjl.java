package ai.bonsai.bench;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.pooling.Pool;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.pytorch.jni.LibUtils;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.initializer.XavierInitializer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import java.nio.FloatBuffer;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The peer of {@link TrainStep}: the same CIFAR ResNet-20 training step at batch 128 on DJL's PyTorch engine
 * (libtorch 2.7.1, CPU), built with DJL's blocks and trained through its {@link Trainer}, a
 * {@link GradientCollector} and its SGD (momentum 0.9, weight decay 1e-4, lr 0.1), on the same {@link TrainBatch}.
 * Compiled only with the Maven profile {@code peers}; run it next to Bonsai with
 * {@code BONSAI_BENCH_PROFILES=peers benchmarks/run TrainStep}.
 *
 * <p>Offline by construction: libtorch (pytorch-native-cpu, linux-x86_64) and DJL's JNI library (pytorch-jni) are
 * in the jar and are extracted to DJL's cache ({@code ~/.djl.ai}, or {@code DJL_CACHE_DIR}) on first use;
 * {@code -Dai.djl.offline=true} forbids downloads. The environment variables PYTORCH_VERSION, PYTORCH_FLAVOR and
 * PYTORCH_LIBRARY_PATH would make DJL download or load another libtorch, so setup refuses to run when they are set
 * and checks the version that actually loaded. PyTorch gets {@link #threads} intra-op threads, like Bonsai.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@OperationsPerInvocation(TrainBatch.BATCH)
@Warmup(iterations = 3, time = 5)
@Measurement(iterations = 5, time = 5)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xss4m", "-Xmx4g", "--enable-native-access=ALL-UNNAMED",
        "-Dai.djl.offline=true", "-Dai.djl.pytorch.num_interop_threads=1"})
public class TrainStepDjl {
    /**
     * PyTorch's intra-op (OpenMP) threads, matched to {@code TrainStep.threads}. Each value runs in its own fork and is
     * set before the engine loads. Its OpenMP workers spin at barriers, so on a loaded machine 2 threads can be
     * far slower than 1; {@code -p threads=1,2} shows that.
     */
    @Param({"2"})
    public int threads;

    /** The libtorch version of the pytorch-native-cpu jar in benchmarks/pom.xml. */
    static final String PYTORCH_VERSION = "2.7.1";

    private Model model;
    private Trainer trainer;
    private TrainBatch batch;
    private float lastLoss;

    @Setup(Level.Trial)
    public void setUp() {
        for (String v : List.of("PYTORCH_VERSION", "PYTORCH_FLAVOR", "PYTORCH_LIBRARY_PATH")) {
            if (System.getenv(v) != null) {
                throw new IllegalStateException("TrainStepDjl: unset " + v + " (=" + System.getenv(v) + "): it makes DJL download or load"
                        + " another libtorch instead of the bundled " + PYTORCH_VERSION + " cpu build");
            }
        }
        // Read by the engine when it starts, which is below: each JMH fork is a fresh JVM.
        System.setProperty("ai.djl.pytorch.num_threads", Integer.toString(threads));
        Engine engine = Engine.getEngine("PyTorch");
        if (!PYTORCH_VERSION.equals(engine.getVersion())) {
            throw new IllegalStateException("TrainStepDjl: loaded libtorch " + engine.getVersion() + ", expected the bundled " + PYTORCH_VERSION);
        }
        System.out.println("DJL " + Engine.getDjlVersion() + ", PyTorch " + engine.getVersion() + " from "
                + LibUtils.getLibtorchPath() + ", intra-op threads " + JniUtils.getNumThreads()
                + ", inter-op threads " + JniUtils.getNumInteropThreads());
        if (JniUtils.getNumThreads() != threads) {
            throw new IllegalStateException("TrainStepDjl: PyTorch runs " + JniUtils.getNumThreads() + " intra-op threads, asked for " + threads);
        }

        batch = TrainBatch.random(42);
        model = Model.newInstance("resnet20", Device.cpu(), "PyTorch");
        model.setBlock(resNet20());
        Optimizer sgd = Optimizer.sgd().setLearningRateTracker(Tracker.fixed(TrainBatch.LR)).optMomentum(TrainBatch.MOMENTUM)
                .optWeightDecays(TrainBatch.WEIGHT_DECAY).build();
        // Kaiming normal (fan_out) for the convolution and linear weights, as CifarResNet initialises them.
        DefaultTrainingConfig config = new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
                .optOptimizer(sgd)
                .optDevices(new Device[] {Device.cpu()})
                .optInitializer(new XavierInitializer(XavierInitializer.RandomType.GAUSSIAN, XavierInitializer.FactorType.OUT, 2),
                        Parameter.Type.WEIGHT);
        trainer = model.newTrainer(config);
        trainer.initialize(new Shape(TrainBatch.BATCH, TrainBatch.CHANNELS, TrainBatch.SIZE, TrainBatch.SIZE));

        float[] losses = new float[TrainBatch.CHECK_STEPS];
        for (int i = 0; i < losses.length; i++) losses[i] = step();
        TrainBatch.checkLearns("DJL PyTorch ResNet-20", losses);
    }

    /** A 3x3 (or 1x1) convolution without bias, padding r/2. */
    private static Block conv(int filters, int r, int stride) {
        return Conv2d.builder().setFilters(filters).setKernelShape(new Shape(r, r)).optStride(new Shape(stride, stride))
                .optPadding(new Shape(r / 2, r / 2)).optBias(false).build();
    }

    private static Block bn() { return BatchNorm.builder().build(); }

    /** conv_a, BN, ReLU, conv_b, BN, plus the shortcut (1x1 conv + BN where the shape changes), then ReLU. */
    private static Block basicBlock(int in, int out, int stride) {
        SequentialBlock residual = new SequentialBlock().add(conv(out, 3, stride)).add(bn()).add(Activation.reluBlock())
                .add(conv(out, 3, 1)).add(bn());
        Block shortcut = stride != 1 || in != out ? new SequentialBlock().add(conv(out, 1, stride)).add(bn()) : Blocks.identityBlock();
        return new ParallelBlock(
                outs -> new NDList(Activation.relu(outs.get(0).singletonOrThrow().add(outs.get(1).singletonOrThrow()))),
                List.of(residual, shortcut));
    }

    /** CifarResNet(20): 3x3 stem to 16 channels, 3 stages of 3 basic blocks (16, 32, 64), global average pool, linear. */
    static Block resNet20() {
        SequentialBlock net = new SequentialBlock().add(conv(16, 3, 1)).add(bn()).add(Activation.reluBlock());
        int in = 16;
        int[] widths = {16, 32, 64};
        for (int s = 0; s < 3; s++) {
            for (int b = 0; b < 3; b++) {
                net.add(basicBlock(in, widths[s], s > 0 && b == 0 ? 2 : 1));
                in = widths[s];
            }
        }
        return net.add(Pool.globalAvgPool2dBlock()).add(Blocks.batchFlattenBlock())
                .add(Linear.builder().setUnits(TrainBatch.CLASSES).build());
    }

    /**
     * One step. The batch is copied into fresh arrays of a per-step sub-manager (as Bonsai copies it into a fresh
     * tensor); every intermediate array of the step is attached to that manager and freed when it closes.
     */
    private float step() {
        try (NDManager stepManager = trainer.getManager().newSubManager()) {
            NDArray x = stepManager.create(FloatBuffer.wrap(batch.images),
                    new Shape(TrainBatch.BATCH, TrainBatch.CHANNELS, TrainBatch.SIZE, TrainBatch.SIZE));
            NDArray y = stepManager.create(batch.labels, new Shape(TrainBatch.BATCH));
            float loss;
            try (GradientCollector collector = trainer.newGradientCollector()) {
                NDList logits = trainer.forward(new NDList(x));
                NDArray l = trainer.getLoss().evaluate(new NDList(y), logits);
                collector.backward(l);
                loss = l.getFloat();
            }
            trainer.step();
            return loss;
        }
    }

    @Benchmark
    public float pytorch() {
        return lastLoss = step();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        trainer.close();
        model.close();
        if (!Float.isFinite(lastLoss)) throw new IllegalStateException("TrainStepDjl.pytorch: loss became " + lastLoss + " while timing");
    }
}
