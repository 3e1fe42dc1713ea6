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

    /** Metadata keys of a resume checkpoint written in the middle of an epoch (absent at an epoch's end). */
    static final String STEP = "stepInEpoch", LOSS_SUM = "partialLossSum", CORRECT = "partialCorrect", SEEN = "partialSeen",
            SECONDS = "partialSeconds", SKIPPED = "partialSkipped";

    private final Config config;
    private final PrintStream out;
    private NonFinitePolicy nonFinite = NonFinitePolicy.STOP;
    private int maxSkips = Trainer.DEFAULT_MAX_SKIPS;
    private boolean handleSignals;
    private GracefulStop stop;

    public TrainingRun(Config config, PrintStream out) {
        this.config = config;
        this.out = out;
    }

    /** The divergence guard's policy for this run's trainer ({@link Trainer#onNonFinite}). */
    public TrainingRun onNonFinite(NonFinitePolicy policy, int maxConsecutiveSkips) {
        if (maxConsecutiveSkips < 1) throw new IllegalArgumentException("--max-skips: expected a positive number, got " + maxConsecutiveSkips);
        this.nonFinite = policy;
        this.maxSkips = maxConsecutiveSkips;
        return this;
    }

    /** Whether the run handles SIGINT and SIGTERM itself while it lasts ({@link GracefulStop}); the commands do. */
    public TrainingRun handleSignals(boolean on) {
        this.handleSignals = on;
        return this;
    }

    /** A stop the caller controls (a service stopping a run, tests); takes the place of signal handling. */
    public TrainingRun stopWith(GracefulStop stop) {
        this.stop = stop;
        return this;
    }

    public Path bestPath() { return config.saveDir.resolve(config.name + ".safetensors"); }

    public Path resumePath() { return config.saveDir.resolve(config.name + ".last.safetensors"); }

    public Path metricsPath() { return config.saveDir.resolve(config.name + ".metrics.jsonl"); }

    public Path plotPath() { return config.saveDir.resolve(config.name + ".png"); }

    public Result run(Module model, Optimizer optimizer, LrScheduler scheduler, Trainer trainer,
                      DataLoader train, DataLoader eval, Extra extra) {
        GracefulStop s = stop != null ? stop : handleSignals ? GracefulStop.install(System.err) : GracefulStop.manual();
        try {
            if (!s.notes().isEmpty()) out.println("note: " + s.notes());
            return run(model, optimizer, scheduler, trainer.onNonFinite(nonFinite, maxSkips).log(out), train, eval, extra, s);
        } finally {
            if (s != stop) s.close();
        }
    }

    private Result run(Module model, Optimizer optimizer, LrScheduler scheduler, Trainer trainer,
                       DataLoader train, DataLoader eval, Extra extra, GracefulStop stop) {
        try {
            Files.createDirectories(config.saveDir);
        } catch (IOException e) {
            throw new UncheckedIOException("--save-dir " + config.saveDir + ": cannot create: " + e.getMessage(), e);
        }
        removeStaleTemporaries();
        History h = new History();
        int startEpoch = 0;
        Trainer.Progress from = Trainer.Progress.START;
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
            from = progress(ck, r);
            out.println("resumed from " + r + " after epoch " + startEpoch
                    + (from.step() > 0 ? " and step " + from.step() + " of epoch " + (startEpoch + 1) : "")
                    + " (best " + String.format("%.2f", h.bestAccuracy) + "%)");
            MetricsLog.Repair fix = MetricsLog.repair(metricsPath(), startEpoch);
            if (fix.changed()) out.println("repaired " + metricsPath() + ": " + fix);
        } else {
            try {
                Files.deleteIfExists(metricsPath());
            } catch (IOException e) {
                throw new UncheckedIOException("metrics log " + metricsPath() + ": " + e.getMessage(), e);
            }
        }
        out.println("writing: " + bestPath() + " (best), " + resumePath() + " (resume), " + metricsPath() + ", " + plotPath());
        try (MetricsLog log = new MetricsLog(metricsPath())) {
            if (startEpoch == 0 && from.step() == 0) {
                Map<String, Object> start = new LinkedHashMap<>(config.metadata);
                start.put("epochs", config.epochs);
                log.log("start", start);
            }
            int until = Math.min(config.epochs, config.stopAfter);
            for (int epoch = startEpoch; epoch < until; epoch++) {
                String title = String.format("%s epoch %d/%d", config.name, epoch + 1, config.epochs);
                double lr = optimizer.lr();
                Trainer.EpochOutcome o;
                try {
                    o = trainer.trainEpoch(train, epoch, title, h.bestAccuracy, from, stop);
                } catch (NonFiniteException ex) {
                    throw new NonFiniteException(config.name + ": " + ex.getMessage() + ". Checkpoints left as they were: "
                            + (Files.exists(resumePath()) ? resumePath() + " (resume)" : "no resume checkpoint yet")
                            + (Files.exists(bestPath()) ? ", " + bestPath() + " (best)" : ""));
                }
                from = Trainer.Progress.START;
                if (o.stopped()) {
                    Trainer.Progress p = o.progress();
                    Map<String, String> meta = metadata(epoch, h.evalAcc.isEmpty() ? Double.NaN : h.evalAcc.get(h.evalAcc.size() - 1), h, extra);
                    meta.put(STEP, Integer.toString(p.step()));
                    meta.put(LOSS_SUM, Double.toString(p.lossSum()));
                    meta.put(CORRECT, Long.toString(p.correct()));
                    meta.put(SEEN, Integer.toString(p.seen()));
                    meta.put(SECONDS, Double.toString(p.seconds()));
                    meta.put(SKIPPED, Integer.toString(p.skipped()));
                    Checkpoint.save(resumePath(), model, optimizer, scheduler, extra.tensors(), meta);
                    throw stopped(stop, String.format("in epoch %d/%d after step %d of %d", epoch + 1, config.epochs, p.step(),
                            train.batchesPerEpoch()));
                }
                Trainer.EpochStats t = o.progress().stats();
                Trainer.EpochStats e = trainer.evaluate(eval);
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
                if (o.progress().skipped() > 0) f.put("skippedSteps", o.progress().skipped());
                log.log("epoch", f);
                out.printf("%s: loss %.4f, train %.2f%%, eval %.2f%%%s, %.0f img/s%n", title, t.loss(), t.accuracy(), e.accuracy(),
                        best ? " (best)" : "", t.imagesPerSecond());
                Map<String, String> meta = metadata(epoch + 1, e.accuracy(), h, extra);
                if (best) Checkpoint.save(bestPath(), model, optimizer, scheduler, extra.tensors(), meta);
                extra.afterEpoch(epoch + 1, this);
                Checkpoint.save(resumePath(), model, optimizer, scheduler, extra.tensors(), metadata(epoch + 1, e.accuracy(), h, extra));
                Plots.trainingCurves(plotPath(), config.name, h.epochs, h.trainLoss, h.trainAcc, h.evalAcc);
                if (stop.requested() && epoch + 1 < until) {
                    throw stopped(stop, String.format("after epoch %d/%d", epoch + 1, config.epochs));
                }
            }
            if (until < config.epochs) {
                out.println("stopped after epoch " + until + " of " + config.epochs + " as asked; continue with --resume");
            }
            Map<String, Object> end = new LinkedHashMap<>();
            end.put("bestAccuracy", h.bestAccuracy);
            end.put("bestEpoch", h.bestEpoch);
            // Peak RSS of the whole process so far (the run, and whatever the caller did before it), in MiB.
            PeakMemory.peakRssBytes().ifPresent(b -> end.put("peakRssMiB", PeakMemory.mib(b)));
            log.log("end", end);
        }
        String memory = PeakMemory.summary();
        if (!memory.isEmpty()) out.println(memory);
        double last = h.evalAcc.isEmpty() ? Double.NaN : h.evalAcc.get(h.evalAcc.size() - 1);
        return new Result(h.bestAccuracy, h.bestEpoch, last, bestPath(), metricsPath(), plotPath());
    }

    private RunStoppedException stopped(GracefulStop stop, String where) {
        return new RunStoppedException("stopped by " + stop.reason() + " " + where + "; the resume checkpoint " + resumePath().toAbsolutePath()
                + " holds that state", stop.exitCode(), resumePath());
    }

    /** The partial epoch a resume checkpoint holds (zero steps when it was written at an epoch's end). */
    private static Trainer.Progress progress(Checkpoint ck, Path file) {
        String step = ck.metadata().get(STEP);
        if (step == null) return Trainer.Progress.START;
        try {
            return new Trainer.Progress(Integer.parseInt(step), Double.parseDouble(ck.require(LOSS_SUM)), Long.parseLong(ck.require(CORRECT)),
                    Integer.parseInt(ck.require(SEEN)), Double.parseDouble(ck.require(SECONDS)), Integer.parseInt(ck.require(SKIPPED)));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("checkpoint " + file + ": the partial-epoch metadata is not numeric: " + e.getMessage(), e);
        }
    }

    /**
     * Deletes temporary files that a killed run left in the save folder (a checkpoint's {@code .NAME.PID-N.tmp} whose
     * process is gone, a plot's {@code NAME.png.tmp}): they are never read, and a run killed many times would pile them up.
     */
    private void removeStaleTemporaries() {
        try (var files = Files.list(config.saveDir)) {
            for (Path p : (Iterable<Path>) files::iterator) {
                String n = p.getFileName().toString();
                if (!n.endsWith(".tmp") || !n.contains(config.name)) continue;
                java.util.regex.Matcher m = java.util.regex.Pattern.compile("\\.(\\d+)-\\d+\\.tmp$").matcher(n);
                boolean ours = m.find() && n.startsWith(".");
                if (ours && ProcessHandle.of(Long.parseLong(m.group(1))).map(ProcessHandle::isAlive).orElse(false)) continue;
                if (ours || n.equals(config.name + ".png.tmp")) Files.deleteIfExists(p);
            }
        } catch (IOException | NumberFormatException e) {
            out.println("note: could not tidy temporary files in " + config.saveDir + ": " + e.getMessage());
        }
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
