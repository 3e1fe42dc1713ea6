package ai.bonsai.data;

import ai.bonsai.tensor.Generator;

/**
 * Derives independent seeds from a root seed and a path of indices (epoch, batch; or purpose, example), so
 * that every random stream in the data pipeline is a pure function of the root seed and its position, never
 * of the order in which threads happen to ask for it.
 */
final class Seeds {
    private Seeds() {}

    /** A well-mixed seed for position (a, b) under {@code seed}; each step is one SplitMix64 output. */
    static long derive(long seed, long a, long b) {
        long s = new Generator(seed).nextLong();
        s = new Generator(s ^ a).nextLong();
        return new Generator(s ^ b).nextLong();
    }
}
