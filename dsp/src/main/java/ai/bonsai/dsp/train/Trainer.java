package ai.bonsai.dsp.train;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.data.DataLoader;
import ai.bonsai.data.ImageBatch;
import ai.bonsai.nn.Functional;
import ai.bonsai.nn.Module;
import ai.bonsai.optim.Optimizer;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Tensor;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One epoch of supervised training and the evaluation pass, shared by pretraining, DSP group learning and
 * fine-tuning. What differs between those is expressed as {@link Hooks}: the reference's "initialise before
 * the forward pass, process after every step".
 */
public final class Trainer {
    /** Extension points of a training step. */
    public interface Hooks {
        /** Before the forward pass (GroupWrapper.initialize). */
        default void beforeForward() {}

        /** After {@code optimizer.step()} (GroupWrapper.afterStep, PruneWrapper.afterStep). */
        default void afterStep(Tensor x, Tensor y) {}

        /** Extra text for the progress bar, e.g. the group-logit std or the pruned rates. */
        default String progressFields() { return ""; }

        Hooks NONE = new Hooks() {};
    }

    /** What one epoch measured. */
    public record EpochStats(double loss, double accuracy, int images, double seconds) {
        public double imagesPerSecond() { return images / Math.max(1e-9, seconds); }
    }

    private final Module model;
    private final Optimizer optimizer;
    private final Device device;
    private final float labelSmoothing;
    private final Hooks hooks;

    public Trainer(Module model, Optimizer optimizer, Device device, float labelSmoothing, Hooks hooks) {
        this.model = model;
        this.optimizer = optimizer;
        this.device = device;
        this.labelSmoothing = labelSmoothing;
        this.hooks = hooks == null ? Hooks.NONE : hooks;
    }

    /** Trains one epoch; {@code title} labels the progress bar ("epoch 3/164"). */
    public EpochStats trainEpoch(DataLoader loader, int epoch, String title, double bestAccuracy) {
        model.train();
        double lossSum = 0;
        long correct = 0;
        int seen = 0;
        long start = System.nanoTime();
        try (ProgressBar bar = progressBar(title, loader.batchesPerEpoch())) {
            for (ImageBatch b : loader.epoch(epoch)) {
                Tensor x = Tensor.of(b.images(), device, b.shape().dims());
                Tensor y = Tensor.ofLongs(b.labels(), b.n());
                hooks.beforeForward();
                Tensor logits = model.forward(x);
                Tensor loss = Functional.crossEntropy(logits, y, labelSmoothing);
                optimizer.zeroGrad();
                loss.backward();
                optimizer.step();
                hooks.afterStep(x, y);
                lossSum += loss.item() * b.n();
                correct += countCorrect(logits, b.labels());
                seen += b.n();
                double secs = (System.nanoTime() - start) / 1e9;
                bar.setExtraMessage(String.format("lr %.4g loss %.4f acc %.2f%% best %.2f%% %s%.0f img/s",
                        optimizer.lr(), lossSum / seen, 100.0 * correct / seen, Math.max(0, bestAccuracy),
                        withSpace(hooks.progressFields()), seen / Math.max(1e-9, secs)));
                bar.step();
            }
        }
        double secs = (System.nanoTime() - start) / 1e9;
        return new EpochStats(seen == 0 ? Double.NaN : lossSum / seen, seen == 0 ? Double.NaN : 100.0 * correct / seen, seen, secs);
    }

    private static String withSpace(String s) { return s == null || s.isEmpty() ? "" : s + " "; }

    /** Accuracy in percent and mean loss of {@code model} in eval mode. */
    public static EpochStats evaluate(Module model, DataLoader loader, Device device) {
        return evaluate(model, loader, device, null);
    }

    /**
     * As {@link #evaluate(Module, DataLoader, Device)}, also writing each prediction into {@code predictions}, at the
     * image's dataset index ({@link ImageBatch#examples()}): an image the loader skipped as unreadable leaves its slot
     * untouched.
     */
    public static EpochStats evaluate(Module model, DataLoader loader, Device device, int[] predictions) {
        boolean wasTraining = model.isTraining();
        model.eval();
        double lossSum = 0;
        long correct = 0;
        int seen = 0;
        long start = System.nanoTime();
        try (var scope = GradMode.noGrad()) {
            for (ImageBatch b : loader.epoch(0)) {
                Tensor logits = model.forward(Tensor.of(b.images(), device, b.shape().dims()));
                lossSum += Functional.crossEntropy(logits, Tensor.ofLongs(b.labels(), b.n())).item() * b.n();
                long[] pred = logits.argmax(1).toLongArray();
                for (int i = 0; i < b.n(); i++) {
                    if (pred[i] == b.labels()[i]) correct++;
                    // By dataset index where the loader says it (images it skipped as unreadable leave their slot as the
                    // caller filled it), else in loader order.
                    if (predictions != null) predictions[b.examples() != null ? b.examples()[i] : seen + i] = (int) pred[i];
                }
                seen += b.n();
            }
        } finally {
            model.train(wasTraining);
        }
        double secs = (System.nanoTime() - start) / 1e9;
        return new EpochStats(seen == 0 ? Double.NaN : lossSum / seen, seen == 0 ? Double.NaN : 100.0 * correct / seen, seen, secs);
    }

    static long countCorrect(Tensor logits, long[] labels) {
        long[] pred = logits.detach().argmax(1).toLongArray();
        long c = 0;
        for (int i = 0; i < labels.length; i++) if (pred[i] == labels[i]) c++;
        return c;
    }

    static ProgressBar progressBar(String title, int steps) {
        return new ProgressBarBuilder().setTaskName(title).setInitialMax(steps).setStyle(ProgressBarStyle.ASCII)
                .setUpdateIntervalMillis(System.console() == null ? 5000 : 250).setMaxRenderedLength(150)
                .continuousUpdate().build();
    }

    /** Fields of an epoch for the metrics log. */
    public static Map<String, Object> fields(int epoch, double lr, EpochStats train, EpochStats eval) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("epoch", epoch);
        m.put("lr", lr);
        m.put("trainLoss", train.loss());
        m.put("trainAccuracy", train.accuracy());
        m.put("evalLoss", eval.loss());
        m.put("evalAccuracy", eval.accuracy());
        m.put("trainImages", train.images());
        m.put("imagesPerSecond", train.imagesPerSecond());
        m.put("epochSeconds", train.seconds());
        return m;
    }
}
