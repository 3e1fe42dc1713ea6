package ai.bonsai.dsp.train;

import ai.bonsai.data.DataLoader;
import ai.bonsai.io.Checkpoint;
import ai.bonsai.nn.Module;
import ai.bonsai.optim.LrScheduler;
import ai.bonsai.optim.Optimizer;
import ai.bonsai.tensor.Device;
import ai.bonsai.tensor.Tensor;
import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The epoch loop around a {@link Trainer}, with everything a long run needs: evaluation after every epoch,
 * the best checkpoint, a resume checkpoint after every epoch ({@code --resume} continues bit-exactly on the
 * CPU), metrics as JSON lines, and a PNG of the curves.
 *
 * <p>Files, for a run named {@code resnet20} in {@code saveDir}: {@code resnet20.safetensors} (best),
 * {@code resnet20.last.safetensors} (resume), {@code resnet20.metrics.jsonl} and {@code resnet20.png}.
 */
public final class TrainingRun {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** State a run's extensions (group logits, their optimiser, a random generator) keep across a resume. */
    public interface Extra {
        Map<String, Tensor> tensors();

        Map<String, String> metadata();

        void restore(Map<String, Tensor> tensors, Map<String, String> metadata);

        /**
         * Called after epoch {@code epoch} (1-based) was evaluated and the best checkpoint written, before the
         * resume checkpoint is: a change made here (fine-tuning's re-pruning at a cycle end) is what a resume sees.
         */
        default void afterEpoch(int epoch, TrainingRun run) {}

        Extra NONE = new Extra() {
            @Override public Map<String, Tensor> tensors() { return Map.of(); }

            @Override public Map<String, String> metadata() { return Map.of(); }

            @Override public void restore(Map<String, Tensor> tensors, Map<String, String> metadata) {}
        };
    }

    /**
     * @param name              file stem, e.g. "resnet20"
     * @param saveBestAfter     epochs (1-based) before this one never become "best" (DSP: 10)
     * @param tieIsBest         whether an accuracy equal to the best so far also becomes the new best, so the latest of
     *                          equals wins (cifar_finetune.py compares with {@code <=}; pretraining and DSP with {@code <})
     * @param metadata          fixed metadata (architecture, depth, seed, data, ...)
     * @param stopAfter         stop after this epoch (1-based) although the schedule spans {@code epochs}; resume later
     */
    public record Config(String name, Path saveDir, int epochs, int saveBestAfter, boolean tieIsBest, boolean resume, Device device,
                         Map<String, String> metadata, int stopAfter) {
        /** A run of all its epochs in which only a strictly higher accuracy is a new best. */
        public Config(String name, Path saveDir, int epochs, int saveBestAfter, boolean resume, Device device, Map<String, String> metadata) {
            this(name, saveDir, epochs, saveBestAfter, false, resume, device, metadata, epochs);
        }
    }

    public record Result(double bestAccuracy, int bestEpoch, double lastAccuracy, Path best, Path metrics, Path plot) {}

    private final Config config;
    private final PrintStream out;

    public TrainingRun(Config config, PrintStream out) {
        this.config = config;
        this.out = out;
    }

    public Path bestPath() { return config.saveDir.resolve(config.name + ".safetensors"); }

    public Path resumePath() { return config.saveDir.resolve(config.name + ".last.safetensors"); }

    public Path metricsPath() { return config.saveDir.resolve(config.name + ".metrics.jsonl"); }

    public Path plotPath() { return config.saveDir.resolve(config.name + ".png"); }

    public Result run(Module model, Optimizer optimizer, LrScheduler scheduler, Trainer trainer,
                      DataLoader train, DataLoader eval, Extra extra) {
        try {
            Files.createDirectories(config.saveDir);
        } catch (IOException e) {
            throw new UncheckedIOException("--save-dir " + config.saveDir + ": cannot create: " + e.getMessage(), e);
        }
        History h = new History();
        int startEpoch = 0;
        if (config.resume) {
            Path r = resumePath();
            if (!Files.exists(r)) {
                throw new IllegalArgumentException("--resume: no resume checkpoint " + r.toAbsolutePath() + " (it is written after every epoch)");
            }
            Checkpoint ck = Checkpoint.load(r);
            ck.loadModel(model, true);
            ck.loadOptimizer(optimizer);
            ck.loadScheduler(scheduler);
            extra.restore(ck.tensorsWithPrefix("extra."), ck.metadata());
            startEpoch = ck.requireInt("epoch");
            h = History.fromJson(ck.require("history"), r);
            out.println("resumed from " + r + " after epoch " + startEpoch + " (best " + String.format("%.2f", h.bestAccuracy) + "%)");
        } else {
            try {
                Files.deleteIfExists(metricsPath());
            } catch (IOException e) {
                throw new UncheckedIOException("metrics log " + metricsPath() + ": " + e.getMessage(), e);
            }
        }
        out.println("writing: " + bestPath() + " (best), " + resumePath() + " (resume), " + metricsPath() + ", " + plotPath());
        try (MetricsLog log = new MetricsLog(metricsPath())) {
            if (startEpoch == 0) {
                Map<String, Object> start = new LinkedHashMap<>(config.metadata);
                start.put("epochs", config.epochs);
                log.log("start", start);
            }
            int until = Math.min(config.epochs, config.stopAfter);
            for (int epoch = startEpoch; epoch < until; epoch++) {
                String title = String.format("%s epoch %d/%d", config.name, epoch + 1, config.epochs);
                double lr = optimizer.lr();
                Trainer.EpochStats t = trainer.trainEpoch(train, epoch, title, h.bestAccuracy);
                Trainer.EpochStats e = Trainer.evaluate(model, eval, config.device);
                scheduler.step();
                h.add(epoch + 1, t, e);
                boolean best = epoch + 1 >= config.saveBestAfter
                        && (e.accuracy() > h.bestAccuracy || (config.tieIsBest && e.accuracy() == h.bestAccuracy));
                if (best) {
                    h.bestAccuracy = e.accuracy();
                    h.bestEpoch = epoch + 1;
                }
                Map<String, Object> f = Trainer.fields(epoch + 1, lr, t, e);
                f.put("best", best);
                log.log("epoch", f);
                out.printf("%s: loss %.4f, train %.2f%%, eval %.2f%%%s, %.0f img/s%n", title, t.loss(), t.accuracy(), e.accuracy(),
                        best ? " (best)" : "", t.imagesPerSecond());
                Map<String, String> meta = metadata(epoch + 1, e.accuracy(), h, extra);
                if (best) Checkpoint.save(bestPath(), model, optimizer, scheduler, extra.tensors(), meta);
                extra.afterEpoch(epoch + 1, this);
                Checkpoint.save(resumePath(), model, optimizer, scheduler, extra.tensors(), metadata(epoch + 1, e.accuracy(), h, extra));
                Plots.trainingCurves(plotPath(), config.name, h.epochs, h.trainLoss, h.trainAcc, h.evalAcc);
            }
            if (until < config.epochs) {
                out.println("stopped after epoch " + until + " of " + config.epochs + " as asked; continue with --resume");
            }
            Map<String, Object> end = new LinkedHashMap<>();
            end.put("bestAccuracy", h.bestAccuracy);
            end.put("bestEpoch", h.bestEpoch);
            log.log("end", end);
        }
        double last = h.evalAcc.isEmpty() ? Double.NaN : h.evalAcc.get(h.evalAcc.size() - 1);
        return new Result(h.bestAccuracy, h.bestEpoch, last, bestPath(), metricsPath(), plotPath());
    }

    private Map<String, String> metadata(int epoch, double accuracy, History h, Extra extra) {
        Map<String, String> m = new LinkedHashMap<>(config.metadata);
        m.put("epoch", Integer.toString(epoch));
        m.put("accuracy", Double.toString(accuracy));
        m.put("bestAccuracy", Double.toString(h.bestAccuracy));
        m.put("bestEpoch", Integer.toString(h.bestEpoch));
        m.put("history", h.toJson());
        m.putAll(extra.metadata());
        return m;
    }

    /** The curves so far; kept in the checkpoint so a resumed run plots the whole run. */
    static final class History {
        final List<Double> epochs = new ArrayList<>(), trainLoss = new ArrayList<>(), trainAcc = new ArrayList<>(), evalAcc = new ArrayList<>();
        double bestAccuracy = Double.NEGATIVE_INFINITY;
        int bestEpoch = 0;

        void add(int epoch, Trainer.EpochStats t, Trainer.EpochStats e) {
            epochs.add((double) epoch);
            trainLoss.add(t.loss());
            trainAcc.add(t.accuracy());
            evalAcc.add(e.accuracy());
        }

        String toJson() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("epochs", epochs);
            m.put("trainLoss", trainLoss);
            m.put("trainAcc", trainAcc);
            m.put("evalAcc", evalAcc);
            m.put("bestAccuracy", bestAccuracy);
            m.put("bestEpoch", bestEpoch);
            try {
                return JSON.writeValueAsString(m);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        static History fromJson(String json, Path file) {
            try {
                Map<String, Object> m = JSON.readValue(json, new TypeReference<Map<String, Object>>() {});
                History h = new History();
                for (String k : List.of("epochs", "trainLoss", "trainAcc", "evalAcc")) {
                    Object v = m.get(k);
                    if (!(v instanceof List<?> l)) throw new IllegalArgumentException("missing list '" + k + "'");
                    List<Double> dst = switch (k) {
                        case "epochs" -> h.epochs;
                        case "trainLoss" -> h.trainLoss;
                        case "trainAcc" -> h.trainAcc;
                        default -> h.evalAcc;
                    };
                    for (Object o : l) dst.add(o instanceof Number n ? n.doubleValue() : Double.NaN);
                }
                h.bestAccuracy = m.get("bestAccuracy") instanceof Number n ? n.doubleValue() : Double.NEGATIVE_INFINITY;
                h.bestEpoch = m.get("bestEpoch") instanceof Number n ? n.intValue() : 0;
                return h;
            } catch (IOException | IllegalArgumentException e) {
                throw new IllegalArgumentException("checkpoint " + file + ": metadata 'history' is not valid: " + e.getMessage(), e);
            }
        }
    }
}
