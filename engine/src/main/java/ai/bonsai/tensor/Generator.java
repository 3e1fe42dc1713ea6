package ai.bonsai.tensor;

/**
 * The one seeded random source of a run. Every random draw (initialisation, shuffling, augmentation,
 * Gumbel noise) takes a Generator, so the same seed and the same thread count reproduce a run bit for bit.
 *
 * <p>It is SplitMix64 written out, rather than java.util's generators, for two reasons: its whole state is
 * one long that a checkpoint can store and restore ({@link #state()}), and the stream cannot change between
 * JDK releases. The normal draw is our own Box-Muller for the same reason.
 */
public final class Generator {
    private static final long GOLDEN = 0x9E3779B97F4A7C15L;
    private long state;

    public Generator(long seed) { this.state = seed; }

    /** The full state; {@code Generator.fromState(g.state())} continues exactly where {@code g} is. */
    public long state() { return state; }

    public static Generator fromState(long state) { return new Generator(state); }

    public long nextLong() {
        long z = (state += GOLDEN);
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** Uniform in [0, 1), 24 random bits. */
    public float nextFloat() { return (nextLong() >>> 40) * 0x1.0p-24f; }

    /** Uniform in [0, 1), 53 random bits. */
    public double nextDouble() { return (nextLong() >>> 11) * 0x1.0p-53; }

    /** Uniform in [0, bound), without modulo bias. */
    public int nextInt(int bound) {
        if (bound <= 0) throw new IllegalArgumentException("nextInt: bound must be positive, got " + bound);
        long r = nextLong() >>> 33;                      // 31 bits
        long limit = (1L << 31) - ((1L << 31) % bound);
        while (r >= limit) r = nextLong() >>> 33;
        return (int) (r % bound);
    }

    public boolean nextBoolean() { return nextLong() < 0; }

    /** Standard normal (Box-Muller; draws two uniforms per call so the state stays a single long). */
    public double nextGaussian() {
        double u1 = 1.0 - nextDouble();                  // (0, 1]
        double u2 = nextDouble();
        return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    }

    /** An independent child stream (for example one per data-loader batch), itself deterministic. */
    public Generator split() { return new Generator(nextLong()); }
}
