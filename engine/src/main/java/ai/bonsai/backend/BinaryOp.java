package ai.bonsai.backend;

/**
 * Element-wise functions of two arguments.
 * RELU_BACKWARD(g, x) = x > 0 ? g : 0, the ReLU gradient, fused so the backward pass needs no mask tensor.
 * GT(a, b) is 1 where a > b, else 0; EQ likewise.
 */
public enum BinaryOp { ADD, SUB, MUL, DIV, MAX, MIN, POW, GT, EQ, RELU_BACKWARD }
