package ai.bonsai.bench;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.dsp.group.GroupRegularizer;
import ai.bonsai.dsp.group.GroupWrapper;
import ai.bonsai.dsp.models.CifarResNet;
import ai.bonsai.dsp.prune.PrunableLayer;
import ai.bonsai.nn.Functional;
import ai.bonsai.optim.SGD;
import ai.bonsai.tensor.Generator;
import ai.bonsai.tensor.Tensor;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The cost of DSP group learning on ResNet-20 (CIFAR, batch 128), three benchmarks in one run:
 * <ul>
 *   <li>{@code plainIteration}: forward, loss, backward, SGD step (the pretraining iteration);</li>
 *   <li>{@code groupIteration}: the same plus {@link GroupWrapper#initialize()} and
 *       {@link GroupWrapper#afterStep} (look-ahead forward/backward, regulariser, Adam on the logits);</li>
 *   <li>{@code regularizerAllLayers}: only the regulariser work of one afterStep over all 18 prunable layers
 *       (soft penalty with pieces, soft penalty with dR/dp, the step-8 term, the hard penalty).</li>
 * </ul>
 * Goals: groupIteration at most 2.3x plainIteration, regularizerAllLayers under 5% of groupIteration.
 * Run: {@code java --add-modules jdk.incubator.vector -jar benchmarks/target/benchmarks.jar GroupLearningBench
 * -f 1 -wi 2 -i 3}. The setup runs one iteration of each kind and fails on a non-finite loss or logit.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xss4m", "-Xmx6g"})
@Warmup(iterations = 2)
@Measurement(iterations = 3)
public class GroupLearningBench {
    @Param({"128"})
    public int batch;

    @Param({"4"})
    public int groups;

    private CifarResNet model;
    private SGD optimizer;
    private GroupWrapper wrapper;
    private Tensor x, y;
    private List<PrunableLayer> layers;
    private GroupRegularizer[] regs;
    private Tensor[] soft, pgrad, diff;

    @Setup
    public void setup() {
        Generator g = new Generator(1);
        model = new CifarResNet(20, 10, g);
        optimizer = new SGD(model.parameters(), 0.05f, 0.9f, 1e-3f);
        layers = PrunableLayer.find(model);
        // T large so that alpha stays near its start; lambda as in the paper's ResNet-20 run.
        wrapper = new GroupWrapper(model, layers, optimizer, Functional::crossEntropy, 2e-3f, 1_000_000, groups, 0.5f,
                new Generator(2), GroupWrapper.DEFAULT_GROUP_LR, null);
        x = Tensor.randn(g, batch, 3, 32, 32);
        long[] labels = new long[batch];
        for (int i = 0; i < batch; i++) labels[i] = g.nextInt(10);
        y = Tensor.ofLongs(labels, batch);
        regs = new GroupRegularizer[layers.size()];
        soft = new Tensor[layers.size()];
        pgrad = new Tensor[layers.size()];
        diff = new Tensor[layers.size()];
        Generator noise = new Generator(3);
        for (int l = 0; l < layers.size(); l++) {
            PrunableLayer layer = layers.get(l);
            regs[l] = new GroupRegularizer(layer, groups);
            soft[l] = Functional.gumbelSoftmax(Tensor.zeros(groups, layer.filters()), 0.5f, 0, noise);
            pgrad[l] = Tensor.zeros(groups, layer.filters());
            diff[l] = Tensor.randn(noise, layer.conv().weight().dims()).mul(1e-3f);
        }
        check("plain", plainIteration());
        check("group", groupIteration());
        for (Tensor t : regularizerAllLayers()) for (float v : t.toFloatArray()) check("regulariser dR/dp", v);
        check("logit std", (float) wrapper.stats());
    }

    private static void check(String what, float v) {
        if (!Float.isFinite(v)) throw new IllegalStateException("GroupLearningBench setup: " + what + " gave " + v);
    }

    private float trainStep() {
        Tensor loss = Functional.crossEntropy(model.forward(x), y);
        optimizer.zeroGrad();
        loss.backward();
        optimizer.step();
        return loss.item();
    }

    @Benchmark
    public float plainIteration() { return trainStep(); }

    @Benchmark
    public float groupIteration() {
        wrapper.initialize();
        float loss = trainStep();
        wrapper.afterStep(x, y);
        return loss;
    }

    @Benchmark
    public Tensor[] regularizerAllLayers() {
        try (var scope = GradMode.noGrad()) {
            for (int l = 0; l < regs.length; l++) {
                Tensor w = layers.get(l).conv().weight();
                regs[l].compute(w, soft[l], null, false, true);           // step 1
                regs[l].compute(w, soft[l], pgrad[l], true, false);       // step 6
                regs[l].secondOrderAdd(w, diff[l], soft[l], pgrad[l]);    // step 8
                regs[l].hardPenalty(w, wrapper.logits(l));                // step 11
            }
        }
        return pgrad;                                                   // JMH consumes it: nothing is dead code
    }
}
