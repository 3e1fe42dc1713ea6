package ai.bonsai.backend;

/** Reductions over chosen axes. MEAN is SUM divided by the reduced count. */
public enum ReduceOp { SUM, MEAN, MAX }
