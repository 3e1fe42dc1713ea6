package ai.bonsai.optim;

/**
 * Cosine annealing from the base rate to {@code etaMin} over {@code tMax} steps, PyTorch's
 * {@code CosineAnnealingLR} in its closed form: lr(t) = etaMin + (base - etaMin) * (1 + cos(pi * t / tMax)) / 2.
 * Past tMax the cosine simply continues (rising again), as PyTorch's closed form does.
 */
public final class CosineAnnealingLR implements LrSchedule {
    private final long tMax;
    private final double etaMin;

    public CosineAnnealingLR(long tMax, double etaMin) {
        if (tMax < 1) throw new IllegalArgumentException("CosineAnnealingLR: tMax must be >= 1, got " + tMax);
        if (!(etaMin >= 0)) throw new IllegalArgumentException("CosineAnnealingLR: etaMin must be >= 0, got " + etaMin);
        this.tMax = tMax;
        this.etaMin = etaMin;
    }

    @Override public double lr(long t, double baseLr) {
        return etaMin + (baseLr - etaMin) * (1 + Math.cos(Math.PI * t / tMax)) / 2;
    }

    @Override public String toString() { return "CosineAnnealingLR(tMax=" + tMax + ", etaMin=" + etaMin + ")"; }
}
