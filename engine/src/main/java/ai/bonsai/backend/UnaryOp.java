package ai.bonsai.backend;

/** Element-wise functions of one argument. */
public enum UnaryOp { NEG, EXP, LOG, SQRT, RSQRT, ABS, RELU, SIGMOID, TANH, RECIPROCAL, SQUARE, SIGN }
