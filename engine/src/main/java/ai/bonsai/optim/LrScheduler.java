package ai.bonsai.optim;

import ai.bonsai.tensor.DType;
import ai.bonsai.tensor.Tensor;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Drives an optimiser's learning rate along an {@link LrSchedule}: call {@link #step()} once per epoch (or
 * once per iteration, with a schedule counted in iterations). On construction the optimiser's current rate
 * becomes the base rate and the rate for step 0 is applied, as PyTorch's schedulers do.
 *
 * <p>State is the step counter and the base rate ({@link #stateDict()}: {@code last_epoch} INT64,
 * {@code base_lr} FLOAT32); restoring it re-applies the scheduled rate, so a resumed run continues exactly.
 */
public final class LrScheduler {
    private final Optimizer optimizer;
    private final LrSchedule schedule;
    private float baseLr;
    private long epoch;

    public LrScheduler(Optimizer optimizer, LrSchedule schedule) {
        if (optimizer == null || schedule == null) throw new IllegalArgumentException("LrScheduler: optimizer and schedule must not be null");
        this.optimizer = optimizer;
        this.schedule = schedule;
        this.baseLr = optimizer.lr();
        apply();
    }

    /** Advances one step and sets the optimiser's rate for it. */
    public void step() {
        epoch++;
        apply();
    }

    /** Steps taken so far (PyTorch's last_epoch). */
    public long epoch() { return epoch; }

    public float baseLr() { return baseLr; }

    /** The rate the schedule gives for the current step (what the optimiser holds unless changed since). */
    public float lr() { return (float) schedule.lr(epoch, baseLr); }

    private void apply() {
        double lr = schedule.lr(epoch, baseLr);
        if (!(lr >= 0) || Double.isInfinite(lr)) throw new IllegalStateException("LrScheduler: schedule gave lr " + lr + " at step " + epoch);
        optimizer.setLr((float) lr);
    }

    public Map<String, Tensor> stateDict() {
        Map<String, Tensor> out = new LinkedHashMap<>();
        out.put("last_epoch", Tensor.ofLongs(new long[] {epoch}));
        out.put("base_lr", Tensor.scalar(baseLr));
        return out;
    }

    /** Restores the counter and base rate and sets the optimiser's rate for that step. */
    public void loadStateDict(Map<String, Tensor> state) {
        Tensor e = state.get("last_epoch"), b = state.get("base_lr");
        if (e == null || b == null || state.size() != 2) {
            throw new IllegalArgumentException("LrScheduler.loadStateDict: expected exactly the keys [last_epoch, base_lr], got " + state.keySet());
        }
        if (e.numel() != 1 || e.dtype() == DType.FLOAT32 || b.numel() != 1 || b.dtype() != DType.FLOAT32) {
            throw new IllegalArgumentException("LrScheduler.loadStateDict: expected an integer scalar last_epoch and a FLOAT32 scalar base_lr, got "
                    + e.dtype() + " " + e.shape() + " and " + b.dtype() + " " + b.shape());
        }
        long ep = e.toLongArray()[0];
        float base = b.item();
        if (ep < 0 || !(base >= 0)) throw new IllegalArgumentException("LrScheduler.loadStateDict: last_epoch " + ep + " and base_lr " + base + " must be >= 0");
        epoch = ep;
        baseLr = base;
        apply();
    }
}
