package ai.bonsai.dsp.train;

import ai.bonsai.autograd.GradMode;
import ai.bonsai.backend.StepArena;
import ai.bonsai.data.DataLoader;
import ai.bonsai.data.ImageBatch;
import ai.bonsai.io.CrashPoints;
import ai.bonsai.nn.Functional;
import ai.bonsai.nn.Module;
import ai.bonsai.optim.Optimizer;
import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Tensor;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

import java.io.PrintStream;
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

    /**
     * Where an epoch is: the steps done (1-based count; the next batch index) and the running sums over them. A
     * resume checkpoint written in the middle of an epoch keeps these, so the resumed epoch reports what an
     * uninterrupted one would.
     */
    public record Progress(int step, double lossSum, long correct, int seen, double seconds, int skipped) {
        public static final Progress START = new Progress(0, 0, 0, 0, 0, 0);

        public EpochStats stats() {
            return new EpochStats(seen == 0 ? Double.NaN : lossSum / seen, seen == 0 ? Double.NaN : 100.0 * correct / seen, seen, seconds);
        }
    }

    /** How an epoch ended: all its steps done, or {@code stopped} (a stop was requested) after {@code progress.step()}. */
    public record EpochOutcome(Progress progress, boolean stopped) {}

    /** Default for {@link #onNonFinite}: consecutive skipped steps after which skip-step gives up. */
    public static final int DEFAULT_MAX_SKIPS = 5;

    private final Module model;
    private final Optimizer optimizer;
    private final Device device;
    private final float labelSmoothing;
    private final Hooks hooks;
    private NonFinitePolicy nonFinite = NonFinitePolicy.STOP;
    private int maxSkips = DEFAULT_MAX_SKIPS;
    private int consecutiveSkips;
    private PrintStream log = System.out;
    /** The step's buffers, reused from one step to the next (see {@link StepArena}). */
    private final StepArena arena = new StepArena();

    public Trainer(Module model, Optimizer optimizer, Device device, float labelSmoothing, Hooks hooks) {
        this.model = model;
        this.optimizer = optimizer;
        this.device = device;
        this.labelSmoothing = labelSmoothing;
        this.hooks = hooks == null ? Hooks.NONE : hooks;
    }

    /**
     * What a step does when its loss, a gradient, a weight or a batch-norm statistic is NaN or infinite (see
     * {@link NonFinitePolicy}); {@code maxConsecutiveSkips} bounds skip-step. The check always runs: it reads the
     * loss, every gradient and every weight once per step, well under 1 % of a ResNet step.
     */
    public Trainer onNonFinite(NonFinitePolicy policy, int maxConsecutiveSkips) {
        if (maxConsecutiveSkips < 1) throw new IllegalArgumentException("--max-skips: expected a positive number, got " + maxConsecutiveSkips);
        this.nonFinite = policy;
        this.maxSkips = maxConsecutiveSkips;
        return this;
    }

    /** Where skipped steps are reported (default System.out). */
    public Trainer log(PrintStream log) {
        this.log = log;
        return this;
    }

    /** Trains one epoch; {@code title} labels the progress bar ("epoch 3/164"). */
    public EpochStats trainEpoch(DataLoader loader, int epoch, String title, double bestAccuracy) {
        return trainEpoch(loader, epoch, title, bestAccuracy, Progress.START, null).progress().stats();
    }

    /**
     * Trains epoch {@code epoch} (0-based) from batch {@code from.step()} on, adding to {@code from}'s sums. After
     * each step but the epoch's last, a requested {@code stop} (may be null) ends the epoch early.
     */
    public EpochOutcome trainEpoch(DataLoader loader, int epoch, String title, double bestAccuracy, Progress from, GracefulStop stop) {
        model.train();
        double lossSum = from.lossSum();
        long correct = from.correct();
        int seen = from.seen(), step = from.step(), skipped = from.skipped();
        int total = loader.batchesPerEpoch();
        long start = System.nanoTime();
        boolean stopped = false;
        try (ProgressBar bar = progressBar(title, total)) {
            bar.stepTo(step);
            for (ImageBatch b : loader.epoch(epoch, step)) {
                step++;
                Snapshot snap = nonFinite == NonFinitePolicy.SKIP_STEP ? new Snapshot(model, optimizer) : null;
                Tensor x = Tensor.of(b.images(), device, b.shape().dims());
                Tensor y = Tensor.ofLongs(b.labels(), b.n());
                hooks.beforeForward();
                float lossValue;
                long batchCorrect = 0;
                String bad;
                // Activations and their gradients live only inside this scope; their memory serves the next step.
                // What the step keeps (gradients of the weights, the loss and accuracy) is read or allocated outside
                // it, and the optimiser and the hooks, which may create state that lasts, run after it closes.
                try (var scope = arena.open()) {
                    Tensor logits = model.forward(x);
                    Tensor loss = Functional.crossEntropy(logits, y, labelSmoothing);
                    lossValue = loss.item();
                    bad = Float.isFinite(lossValue) ? null : "the loss (" + lossValue + ")";
                    if (bad == null) {
                        batchCorrect = countCorrect(logits, b.labels());
                        optimizer.zeroGrad();
                        loss.backward();
                    }
                }
                if (bad == null) bad = firstNonFinite(model.namedParameters(), true);
                if (bad == null) {
                    CrashPoints.reached("step", "epoch " + (epoch + 1) + " step " + step);
                    optimizer.step();
                    bad = firstNonFinite(model.stateDict(), false);
                }
                if (bad != null) {
                    String where = String.format("epoch %d, step %d of %d: the first non-finite tensor is %s; learning rate %s",
                            epoch + 1, step, total, bad, optimizer.lr());
                    if (snap == null) throw new NonFiniteException("non-finite value in " + where);
                    snap.restore(model, optimizer);
                    optimizer.zeroGrad();
                    skipped++;
                    consecutiveSkips++;
                    log.println("skipped a step (--on-nonfinite skip-step, update dropped): " + where + " (" + consecutiveSkips
                            + " in a row; giving up at " + maxSkips + ")");
                    if (consecutiveSkips >= maxSkips) {
                        throw new NonFiniteException("gave up after " + consecutiveSkips + " consecutive skipped steps (--max-skips "
                                + maxSkips + "); the last: non-finite value in " + where);
                    }
                } else {
                    consecutiveSkips = 0;
                    hooks.afterStep(x, y);
                    lossSum += lossValue * b.n();
                    correct += batchCorrect;
                    seen += b.n();
                }
                double secs = from.seconds() + (System.nanoTime() - start) / 1e9;
                bar.setExtraMessage(String.format("lr %.4g loss %.4f acc %.2f%% best %.2f%% %s%.0f img/s",
                        optimizer.lr(), lossSum / Math.max(1, seen), 100.0 * correct / Math.max(1, seen), Math.max(0, bestAccuracy),
                        withSpace(hooks.progressFields()), seen / Math.max(1e-9, secs)));
                bar.step();
                if (stop != null && stop.requested() && step < total) {
                    stopped = true;
                    break;
                }
            }
        }
        double secs = from.seconds() + (System.nanoTime() - start) / 1e9;
        return new EpochOutcome(new Progress(step, lossSum, correct, seen, secs, skipped), stopped);
    }

    /**
     * The first tensor in {@code tensors} (by name, in order) with a NaN or infinite value, described, or null.
     * {@code gradients}: look at each one's gradient (a missing gradient is fine) instead of its values.
     */
    static String firstNonFinite(Map<String, Tensor> tensors, boolean gradients) {
        if (finiteOnDevice(tensors, gradients)) return null;
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
            Tensor t = gradients ? e.getValue().grad() : e.getValue();
            if (t == null || t.dtype() != DType.FLOAT32) continue;
            float[] v = t.toFloatArray();
            for (int i = 0; i < v.length; i++) {
                if (!Float.isFinite(v[i])) {
                    return (gradients ? "the gradient of " : "") + e.getKey() + " (element " + i + " of " + t.shape() + " is " + v[i]
                            + (gradients ? ")" : ", after the optimiser step)");
                }
            }
        }
        return null;
    }

    /**
     * Whether every FLOAT32 tensor (or gradient) is finite, when all of them live on one device: checked there and
     * read back as one scalar, the sum of all their elements. A NaN or an infinity makes that sum non-finite (NaN and
     * inf survive additions, inf + -inf is NaN); a finite sum proves every element finite. A sum that overflows only
     * sends the caller to its element scan, which then finds nothing: slower, never wrong. This runs twice per step,
     * so the model is neither copied to the host (a GPU) nor copied at all (the CPU, where a read is a copy); only
     * when the answer is "no" does the caller's element scan find and name the tensor. False when the tensors are on
     * several devices.
     */
    private static boolean finiteOnDevice(Map<String, Tensor> tensors, boolean gradients) {
        Tensor acc = null;
        try (var scope = GradMode.noGrad()) {
            for (Tensor v : tensors.values()) {
                Tensor t = gradients ? v.grad() : v;
                if (t == null || t.dtype() != DType.FLOAT32) continue;
                if (acc != null && !acc.device().equals(t.device())) return false;
                Tensor s = t.detach().sum();
                acc = acc == null ? s : acc.add(s);
            }
        }
        if (acc == null) return false;     // nothing to check: the scan finds nothing either
        return Float.isFinite(acc.item());
    }

    /** Copies of the model's state and the optimiser's, taken before a step that skip-step may have to drop. */
    private static final class Snapshot {
        final Map<String, Tensor> model = new LinkedHashMap<>(), optimizer = new LinkedHashMap<>();

        Snapshot(Module m, Optimizer o) {
            m.stateDict().forEach((k, v) -> model.put(k, v.copy()));
            o.stateDict().forEach((k, v) -> optimizer.put(k, v.copy()));
        }

        void restore(Module m, Optimizer o) {
            m.loadStateDict(model, true);
            o.loadStateDict(optimizer);
        }
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
        return evaluate(model, loader, device, predictions, null);
    }

    /**
     * Evaluates this trainer's model between epochs with the buffers of its training steps: each batch's forward pass
     * runs in one scope of the step's {@link StepArena}. At the training batch size an inference forward needs no
     * more buffers of each size than a training step (the same activations, no gradients), so evaluation allocates
     * nothing new, where allocating afresh sent bursts of large arrays through the collector at every epoch's end.
     * A loader with larger batches grows the arena to what its forward pass needs.
     */
    public EpochStats evaluate(DataLoader loader) {
        return evaluate(model, loader, device, null, arena);
    }

    /** The arena of this trainer's steps (for tests). */
    StepArena arena() { return arena; }

    private static EpochStats evaluate(Module model, DataLoader loader, Device device, int[] predictions, StepArena arena) {
        boolean wasTraining = model.isTraining();
        model.eval();
        double lossSum = 0;
        long correct = 0;
        int seen = 0;
        long start = System.nanoTime();
        // With no arena given, none at all, not even the caller's: without gradients each activation is garbage as
        // soon as the next layer has read it, while a caller's arena would keep a whole forward pass alive until its
        // scope ends (several GiB for a ResNet-56 at batch 500). With the trainer's arena, one scope per batch.
        try (var scope = GradMode.noGrad(); var outside = StepArena.suspend()) {
            for (ImageBatch b : loader.epoch(0)) {
                Tensor logits;
                long[] pred;
                try (var batch = arena == null ? null : arena.open()) {
                    logits = model.forward(Tensor.of(b.images(), device, b.shape().dims()));
                    lossSum += Functional.crossEntropy(logits, Tensor.ofLongs(b.labels(), b.n())).item() * b.n();
                    pred = logits.argmax(1).toLongArray();
                }
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
